// Crafted checkpoints, given to both training lessons: each a genuine checkpoint with one field changed.
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "common/training/checkpoint.h"
#include "tests/testing.h"

namespace fs = std::filesystem;
using testing_mp::Change;
using testing_mp::plant;
using testing_mp::with;

// Crafted checkpoints: a genuine checkpoint of each lesson with one field changed to what no run writes (a
// type, an integer at its limit, a learning rate, a generator state, a momentum buffer, the optimizer's
// group, a key), given to lesson 11 and to lesson 13 alike. Each is skipped with
// common/training/checkpoint.cpp's reason for it, and the run resumes from the honest checkpoint before it.
namespace {

// A lesson that resumes from <out-dir>/checkpoints, with what it prints when it resumed from the honest
// checkpoint of step 2 (the end of epoch 1 of 64 examples in batches of 32).
struct Lesson {
  std::string name;
  std::string binary;
  std::function<std::vector<std::string>(const fs::path& out_dir, const std::string& epochs)> args;
  std::vector<std::string> resumed_from_honest;
};

// Lesson 13 where this LibTorch builds it (a pip torch ships no Gloo headers).
std::vector<Lesson> lessons() {
  std::vector<Lesson> all{{"Checkpoints",
                           MP_CHECKPOINTS_BINARY,
                           [](const fs::path& out_dir, const std::string& epochs) {
                             return testing_mp::short_training_args(MP_CHECKPOINTS_BINARY, out_dir, epochs);
                           },
                           {"resumed from checkpoint-00000002.pt: epoch 2, step 2\n"}}};
#ifdef MP_DISTRIBUTED_BINARY
  all.push_back({"Distributed",
                 MP_DISTRIBUTED_BINARY,
                 [](const fs::path& out_dir, const std::string& epochs) {
                   return testing_mp::distributed_args(
                       MP_DISTRIBUTED_BINARY, out_dir, 1,
                       {"--examples", "64", "--batch-size", "32", "--epochs", epochs});
                 },
                 {"[rank 0] resumed from checkpoint-00000002.pt\n",
                  "[rank 0] resumed from rank 0's checkpoint: epoch 2, step 2\n"}});
#endif
  return all;
}

// The last checkpoint of an honest run of 2 epochs (epoch 2 of 2, step 4): each crafted file is a copy of
// it, under its own name, so that only the one change lies.
constexpr int64_t kSourceStep = 4;

// An honest run's folder as a run stopped after step 2 leaves it, and the genuine checkpoint of step 4
// that came after (kept outside the folder). Made once per lesson, and copied for each case.
struct Honest {
  fs::path out_dir;
  fs::path source;
  std::string error;
};

// ctest runs every case in a process of its own: the honest run is shared between them through a folder
// named for the lesson's binary as built (its time), made by the first process under a lock.
const Honest& honest(const Lesson& lesson) {
  static std::map<std::string, Honest> made;
  if (const auto found = made.find(lesson.name); found != made.end()) return found->second;
  Honest h;
  const auto built = fs::last_write_time(lesson.binary).time_since_epoch().count();
  const auto dir = fs::path(MP_BINARY_DIR) / "test-output" / "crafted-honest" /
                   fmt::format("{}-{:x}", lesson.name, static_cast<uint64_t>(built));
  fs::create_directories(dir.parent_path());
  const int lock = open((dir.string() + ".lock").c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
  flock(lock, LOCK_EX);
  h.out_dir = dir / "out";
  h.source = dir / common::checkpoint::file_name(kSourceStep);
  if (fs::exists(dir / "ready")) {
    close(lock);  // the lock goes with it
    return made.emplace(lesson.name, h).first->second;
  }
  fs::remove_all(dir);
  fs::create_directories(dir);
  const auto r = testing_mp::run_lesson(lesson.args(h.out_dir, "2"));
  const auto checkpoints = h.out_dir / "checkpoints";
  if (r.exit_code != 0) {
    h.error = "the honest run failed: " + r.err;
  } else if (!fs::exists(checkpoints / common::checkpoint::file_name(2)) ||
             !fs::exists(checkpoints / common::checkpoint::file_name(kSourceStep))) {
    h.error = "the honest run did not write the checkpoints of steps 2 and 4:\n" + r.out;
  } else {
    fs::rename(checkpoints / common::checkpoint::file_name(kSourceStep), h.source);
    testing_mp::remove_entries_after(checkpoints, common::checkpoint::file_name(2));
    std::ofstream(dir / "ready") << "made by " << getpid() << "\n";
  }
  close(lock);
  return made.emplace(lesson.name, h).first->second;
}

// A copy of the honest folder with a crafted checkpoint planted, and a resume from it with 2 epochs.
testing_mp::RunResult resume_with_planted(const Lesson& lesson, const fs::path& out_dir, const fs::path& name,
                                          const Change& change) {
  const auto& made = honest(lesson);
  fs::copy(made.out_dir, out_dir, fs::copy_options::recursive);
  plant(made.source, out_dir / "checkpoints" / name, change);
  testing_mp::RunOptions options;
  options.timeout_seconds = 60;
  return testing_mp::run_lesson(with(lesson.args(out_dir, "2"), {"--resume"}), options);
}

// The value at a path of dict keys and list indices in a checkpoint.
c10::IValue at(const c10::impl::GenericDict& checkpoint, const std::vector<c10::IValue>& path) {
  c10::IValue value = checkpoint;
  for (const auto& key : path) {
    value =
        value.isList() ? value.toList().get(static_cast<size_t>(key.toInt())) : value.toGenericDict().at(key);
  }
  return value;
}

// Sets the last key of `path` in the dict that the keys before it reach, to a value made from the honest
// checkpoint (or adds the key).
Change set(std::vector<c10::IValue> path, std::function<c10::IValue(const c10::impl::GenericDict&)> make) {
  return [path = std::move(path), make = std::move(make)](c10::impl::GenericDict& checkpoint) {
    const auto value = make(checkpoint);
    at(checkpoint, {path.begin(), path.end() - 1}).toGenericDict().insert_or_assign(path.back(), value);
  };
}

Change set(std::vector<c10::IValue> path, c10::IValue value) {
  return set(std::move(path), [value](const c10::impl::GenericDict&) { return value; });
}

// A tensor of the honest checkpoint, changed.
Change set_tensor(std::vector<c10::IValue> path, std::function<torch::Tensor(const torch::Tensor&)> change) {
  auto where = path;
  return set(std::move(path),
             [where = std::move(where), change = std::move(change)](const c10::impl::GenericDict& checkpoint)
                 -> c10::IValue { return change(at(checkpoint, where).toTensor()); });
}

// An entry of optimizer.state under another key, holding parameter 0's momentum buffer.
Change add_state_key(int64_t key) {
  return [key](c10::impl::GenericDict& checkpoint) {
    auto state = at(checkpoint, {"optimizer", "state"}).toGenericDict();
    state.insert(key, state.at(int64_t{0}));
  };
}

c10::IValue int_list(const std::vector<int64_t>& values) {
  c10::impl::GenericList list(c10::IntType::get());
  for (const auto v : values) list.push_back(v);
  return list;
}

struct Crafted {
  std::string name;
  Change change;
  std::string reason;  // in the warning that skips it, as common/training/checkpoint.cpp words it
  int64_t name_step = kSourceStep;
};

void PrintTo(const Crafted& crafted, std::ostream* os) { *os << crafted.name; }
void PrintTo(const Lesson& lesson, std::ostream* os) { *os << lesson.name; }

c10::IValue str(const char* s) { return c10::IValue(std::string(s)); }

// The optimizer's one parameter group, and a key in it.
std::vector<c10::IValue> group() { return {"optimizer", "param_groups", int64_t{0}}; }
std::vector<c10::IValue> in_group(const char* key) {
  auto path = group();
  path.emplace_back(std::string(key));
  return path;
}

std::vector<Crafted> wrong_types() {
  return {
      {"EpochIsAStr", set({"epoch"}, str("2")), "'epoch' is a str, not an int"},
      {"StepIsAFloat", set({"step"}, 4.0), "'step' is a float, not an int"},
      {"SettingsLrIsAStr", set({"settings", "lr"}, str("0.05")), "'settings.lr' is a str, not a number"},
      {"ModelIsAList",
       set({"model"},
           [](const c10::impl::GenericDict& checkpoint) -> c10::IValue {
             c10::impl::GenericList tensors(c10::AnyType::get());
             for (const auto& entry : at(checkpoint, {"model"}).toGenericDict())
               tensors.push_back(entry.value());
             return tensors;
           }),
       "model is a list, not a dict"},
      {"ParamGroupsIsADict",
       set({"optimizer", "param_groups"}, [](const c10::impl::GenericDict& c) { return at(c, group()); }),
       "'optimizer.param_groups' is not a list of one group"},
      {"RngStateIsAnInt", set({"rng_state"}, int64_t{5056}), "'rng_state' is a int, not a tensor"},
      {"ModelEntryIsAnInt", set({"model", "0.weight"}, int64_t{7}),
       "model['0.weight'] is a int, not a tensor"},
  };
}

std::vector<Crafted> numbers_out_of_range() {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
  return {
      // Integers at their limits.
      {"BatchSizeIsInt64Max", set({"settings", "batch_size"}, kMax),
       "its setting 'batch_size' is 9223372036854775807, outside [1, 1000000]"},
      {"ExamplesIsInt64Max", set({"settings", "examples"}, kMax),
       "its setting 'examples' is 9223372036854775807, outside [10, 100000000]"},
      {"EpochsIsInt64Max", set({"settings", "epochs"}, kMax),
       "its setting 'epochs' is 9223372036854775807, outside [1, 100000]"},
      {"BatchSizeIsInt64Min", set({"settings", "batch_size"}, kMin),
       "its setting 'batch_size' is -9223372036854775808, outside [1, 1000000]"},
      // A name of 19 digits is no checkpoint's name: the step's own check must refuse it.
      {"StepIsInt64Max", set({"step"}, kMax), "its field 'step' is 9223372036854775807, outside [0, "},
      {"StepIsMinusOne", set({"step"}, int64_t{-1}), "its field 'step' is -1, outside [0, "},
      {"EpochIsMinusOne", set({"epoch"}, int64_t{-1}), "its field 'epoch' is -1, outside [0, 2]"},
      {"EpochIsInt64Min", set({"epoch"}, kMin), "its field 'epoch' is -9223372036854775808, outside [0, 2]"},
      // A seed no --seed gives is damage, not "a run with other settings" (which stops the resume).
      {"SeedIsMinusOne", set({"settings", "seed"}, int64_t{-1}),
       "its setting 'seed' is -1, outside [0, 9223372036854775807]"},
      {"SeedIsInt64Min", set({"settings", "seed"}, kMin),
       "its setting 'seed' is -9223372036854775808, outside [0, 9223372036854775807]"},
      {"NamedForAnotherStep", [](c10::impl::GenericDict&) {}, "it says step 4, its name another", 5},
      // Learning rates.
      {"SettingsLrIsNaN", set({"settings", "lr"}, std::numeric_limits<double>::quiet_NaN()),
       "its setting 'lr' is nan, outside [1e-06, 10]"},
      {"SettingsLrIsNegative", set({"settings", "lr"}, -0.05),
       "its setting 'lr' is -0.05, outside [1e-06, 10]"},
      {"SettingsLrIsInfinite", set({"settings", "lr"}, std::numeric_limits<double>::infinity()),
       "its setting 'lr' is inf, outside [1e-06, 10]"},
      {"GroupLrDiffersFromSettings", set(in_group("lr"), 0.1),
       "'optimizer.param_groups[0].lr' is 0.1, its settings say 0.05"},
  };
}

std::vector<Crafted> wrong_state() {
  const std::vector<c10::IValue> buffer0{"optimizer", "state", int64_t{0}, "momentum_buffer"};
  return {
      // Generator states: torch.get_rng_state() gives 5056 bytes.
      {"RngStateOf5055Bytes",
       set_tensor({"rng_state"}, [](const torch::Tensor& t) { return t.narrow(0, 0, 5055); }),
       "'rng_state' is not a generator state: a Byte tensor of shape [5055]"},
      {"RngStateOf5057Bytes",
       set_tensor({"rng_state"},
                  [](const torch::Tensor& t) {
                    return torch::cat({t, t.narrow(0, 0, 1)});
                  }),
       "'rng_state' is not a generator state: a Byte tensor of shape [5057]"},
      {"RngStateIsFloat",
       set_tensor({"rng_state"}, [](const torch::Tensor& t) { return t.to(torch::kFloat); }),
       "'rng_state' is not a generator state: a Float tensor of shape [5056]"},
      {"RngStateIs2D",
       set_tensor({"rng_state"},
                  [](const torch::Tensor& t) {
                    return t.view({2, 2528});
                  }),
       "'rng_state' is not a generator state: a Byte tensor of shape [2, 2528]"},
      // Momentum buffers: the model has 4 parameters.
      {"StateKeyIsPastTheParameters", add_state_key(4),
       "'optimizer.state' has the key 4, not the index of one of the model's 4 parameters"},
      {"StateKeyIsMinusOne", add_state_key(-1),
       "'optimizer.state' has the key -1, not the index of one of the model's 4 parameters"},
      {"MomentumBufferHasAnotherShape",
       set_tensor(buffer0, [](const torch::Tensor& t) { return t.unsqueeze(0); }),
       "the momentum buffer of parameter 0 is Float [1, "},
      {"MomentumBufferIsDouble",
       set_tensor(buffer0, [](const torch::Tensor& t) { return t.to(torch::kDouble); }),
       "the momentum buffer of parameter 0 is Double ["},
      // The optimizer's group.
      {"GroupMomentumIsHalf", set(in_group("momentum"), 0.5),
       "'optimizer.param_groups[0].momentum' is 0.5, this lesson's SGD has 0.9"},
      {"GroupIsNesterov", set(in_group("nesterov"), true), "'optimizer.param_groups[0].nesterov' differs"},
      {"GroupIsFused", set(in_group("fused"), true),
       "'optimizer.param_groups[0].fused' is True: a fused SGD, which LibTorch does not have"},
      {"GroupParamsLeaveOneOut", set(in_group("params"), int_list({0, 1, 2})),
       "'optimizer.param_groups[0].params' is not the indices 0..3 of the model's 4 parameters"},
      {"GroupHasAnUnknownKey", set(in_group("unknown_option"), 1.0),
       "optimizer.param_groups[0] holds 'unknown_option', which this lesson does not know"},
      // The checkpoint itself.
      {"UnknownTopLevelKey", set({"notes"}, str("hand-edited")),
       "the checkpoint holds 'notes', which this lesson does not know"},
  };
}

std::vector<Crafted> crafted_checkpoints() {
  auto all = wrong_types();
  for (auto part : {numbers_out_of_range(), wrong_state()}) all.insert(all.end(), part.begin(), part.end());
  return all;
}

std::string line_starting(const std::string& text, const std::string& prefix) {
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);)
    if (line.rfind(prefix, 0) == 0) return line;
  return "";
}

}  // namespace

// The crafted file, unchanged, is a checkpoint both lessons resume from: whatever makes a case below
// skipped is its one change.
class CraftedCheckpointSource : public ::testing::TestWithParam<Lesson> {};

TEST_P(CraftedCheckpointSource, UnchangedIsTheOneResumedFrom) {
  const auto& lesson = GetParam();
  ASSERT_EQ(honest(lesson).error, "");
  const auto name = common::checkpoint::file_name(kSourceStep);
  const auto r = resume_with_planted(lesson, testing_mp::fresh_dir(), name, [](c10::impl::GenericDict&) {});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err.find("skipping"), std::string::npos) << r.err;
  EXPECT_NE(r.out.find("resumed from " + name), std::string::npos) << r.out;
}

INSTANTIATE_TEST_SUITE_P(Lessons, CraftedCheckpointSource, ::testing::ValuesIn(lessons()),
                         [](const ::testing::TestParamInfo<Lesson>& info) { return info.param.name; });

class CraftedCheckpoint : public ::testing::TestWithParam<std::tuple<Lesson, Crafted>> {};

TEST_P(CraftedCheckpoint, IsSkippedForItsOneLieAndTheHonestOneResumes) {
  const auto& [lesson, crafted] = GetParam();
  ASSERT_EQ(honest(lesson).error, "");
  const auto name = common::checkpoint::file_name(crafted.name_step);
  const auto out_dir = testing_mp::fresh_dir();
  const auto r = resume_with_planted(lesson, out_dir, name, crafted.change);
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.signal, 0);
  EXPECT_NE(r.exit_code, -1) << "ended by a signal";
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto warning = line_starting(r.err, "warning: skipping " + name + ": ");
  ASSERT_NE(warning, "") << "no warning skipping " << name << " in:\n" << r.err;
  EXPECT_NE(warning.find((out_dir / "checkpoints" / name).string()), std::string::npos) << warning;
  EXPECT_NE(warning.find(crafted.reason), std::string::npos) << "expected '" << crafted.reason << "' in:\n"
                                                             << warning;
  for (const auto& line : lesson.resumed_from_honest)
    EXPECT_NE(r.out.find(line), std::string::npos) << "expected '" << line << "' in:\n" << r.out;
}

INSTANTIATE_TEST_SUITE_P(Table, CraftedCheckpoint,
                         ::testing::Combine(::testing::ValuesIn(lessons()),
                                            ::testing::ValuesIn(crafted_checkpoints())),
                         [](const ::testing::TestParamInfo<std::tuple<Lesson, Crafted>>& info) {
                           return std::get<0>(info.param).name + "_" + std::get<1>(info.param).name;
                         });
