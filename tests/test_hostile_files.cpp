// Hostile weights files (made by tests/hostile/make_hostile.py at build time, each aimed at one check)
// given to the real lessons: every one is refused with one error line naming the file and what it
// found, exit status 2, no signal, within seconds, within bounded memory, the output folder unchanged,
// and nothing from the file run. And the contrast: LibTorch's own torch::load runs the same file's code.
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <fstream>
#include <map>

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "common/files/files.h"
#include "common/lesson/lesson.h"
#include "common/training/checkpoint.h"
#include "common/weights/state_dict.h"
#include "common/weights/weights.h"
#include "tests/testing.h"

namespace fs = std::filesystem;

namespace {

const fs::path kHostile = fs::path(MP_BINARY_DIR) / "hostile";

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MP_UNDER_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) && !defined(MP_UNDER_ASAN)
#define MP_UNDER_ASAN 1
#endif
#ifdef MP_UNDER_ASAN
// Under AddressSanitizer every allocation carries redzones, freed memory waits in a quarantine and code
// runs about three times slower: the bounds below are the normal build's, scaled by what ASan itself costs.
constexpr double kSanitizerCost = 3;
#else
constexpr double kSanitizerCost = 1;
#endif
// A refusal may take at most this much longer than a normal run of the same lesson (LibTorch's start-up
// is in both): parsing stops at the first bad byte, and every value read is drawn from one budget.
constexpr double kExtraSeconds = 2 * kSanitizerCost;
// Peak memory above a normal run of the same lesson: the reader's budget is 64 MiB, and nothing it does
// is allowed past it.
constexpr long kExtraMemoryKb = static_cast<long>(100 * 1024 * kSanitizerCost);
// An error line longer than this is a file's bytes spilled onto the terminal: names are cut, lists capped.
constexpr size_t kLongestLine = 2000;

std::map<std::string, std::string> table(const std::string& name) {
  std::ifstream in(kHostile / name);
  if (!in) return {};
  return nlohmann::json::parse(in).get<std::map<std::string, std::string>>();
}

std::vector<std::string> keys(const std::map<std::string, std::string>& cases) {
  std::vector<std::string> names;
  names.reserve(cases.size());
  for (const auto& [name, value] : cases) names.push_back(name);
  return names;
}

// A normal run of a program, once per test binary: the yardstick of time and memory.
const testing_mp::RunResult& normal_run(const std::vector<std::string>& argv) {
  static std::map<std::vector<std::string>, testing_mp::RunResult> runs;
  auto found = runs.find(argv);
  if (found == runs.end()) found = runs.emplace(argv, testing_mp::run_lesson(argv)).first;
  return found->second;
}

// What every refusal must be: one error line naming the file, holding `expected`, safe for a terminal,
// within the time and memory of a normal run plus the bounds above.
void expect_bounded_refusal(const testing_mp::RunResult& bad, const testing_mp::RunResult& good,
                            const fs::path& file, const std::string& expected, const std::string& prefix) {
  EXPECT_FALSE(bad.timed_out) << "still running after its time limit";
  EXPECT_EQ(bad.signal, 0);
  EXPECT_NE(bad.err.find(prefix), std::string::npos) << bad.err.substr(0, 2000);
  EXPECT_NE(bad.err.find(file.string()), std::string::npos)
      << "the message does not name the file: " << bad.err.substr(0, 2000);
  EXPECT_NE(bad.err.find(expected), std::string::npos)
      << "expected '" << expected << "' in: " << bad.err.substr(0, 2000);
  EXPECT_FALSE(testing_mp::has_control_bytes(bad.err)) << "raw control bytes from the file reached stderr";
  EXPECT_LE(bad.err.size(), kLongestLine) << "an error of " << bad.err.size() << " bytes";
  EXPECT_LE(bad.seconds, good.seconds + kExtraSeconds)
      << bad.seconds << " s against " << good.seconds << " s";
  EXPECT_LE(bad.max_rss_kb, good.max_rss_kb + kExtraMemoryKb)
      << "peak " << bad.max_rss_kb << " KB against " << good.max_rss_kb << " KB for a normal run";
}

// A normal run of lesson 09, made once for all the test processes of this build (ctest runs each case in
// a process of its own) and remade when the lesson is rebuilt: its time and memory, and the folder it
// wrote. A lock file makes the processes that start together wait for the one that runs it.
const testing_mp::RunResult& shared_normal_file_io_run(fs::path& written) {
  static testing_mp::RunResult run;
  static bool done = false;
  const fs::path dir = fs::path(MP_BINARY_DIR) / "test-output" / "hostile-normal-09_file_io";
  written = dir / "out";
  if (done) return run;
  fs::create_directories(dir);
  const int lock = ::open((dir / "lock").c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
  if (lock < 0 || ::flock(lock, LOCK_EX) != 0)
    throw std::runtime_error("cannot lock " + (dir / "lock").string());
  const auto record = dir / "run.json";
  std::error_code error;
  const bool fresh = fs::exists(record) &&
                     fs::last_write_time(record, error) > fs::last_write_time(MP_FILE_IO_BINARY, error);
  if (fresh) {
    std::ifstream in(record);
    const auto saved = nlohmann::json::parse(in);
    run.exit_code = saved.at("exit_code");
    run.seconds = saved.at("seconds");
    run.max_rss_kb = saved.at("max_rss_kb");
  } else {
    fs::remove_all(written);
    run = testing_mp::run_lesson({MP_FILE_IO_BINARY, "--device", "cpu", "--out-dir", written.string()});
    common::write_file_atomically(
        record,
        nlohmann::json{{"exit_code", run.exit_code}, {"seconds", run.seconds}, {"max_rss_kb", run.max_rss_kb}}
            .dump());
  }
  ::flock(lock, LOCK_UN);
  ::close(lock);
  done = true;
  return run;
}

// Lesson 09's --load of the file, into a folder that holds what a normal run writes: refused with exit
// status 2 and one bounded error line, and the folder left as it was.
void expect_load_refused(const fs::path& file, const std::string& expected) {
  fs::path normal_dir;
  const auto& good = shared_normal_file_io_run(normal_dir);
  ASSERT_EQ(good.exit_code, 0) << good.err;
  const auto out_dir = testing_mp::fresh_dir("out");
  fs::copy(normal_dir, out_dir, fs::copy_options::recursive);
  const auto before = testing_mp::snapshot(out_dir);
  ASSERT_GT(before.size(), 5u) << "the normal run wrote nothing to compare with";
  testing_mp::RunOptions options;
  options.timeout_seconds = good.seconds + 20;
  const auto bad = testing_mp::run_lesson(
      {MP_FILE_IO_BINARY, "--device", "cpu", "--out-dir", out_dir.string(), "--load", file.string()},
      options);
  EXPECT_EQ(bad.exit_code, common::kExitBadInput) << bad.err.substr(0, 2000);
  EXPECT_EQ(bad.err.rfind("error: ", 0), 0u) << bad.err.substr(0, 2000);
  EXPECT_EQ(std::count(bad.err.begin(), bad.err.end(), '\n'), 1) << bad.err.substr(0, 2000);
  expect_bounded_refusal(bad, good, file, expected, "error: ");
  EXPECT_EQ(testing_mp::snapshot(out_dir), before) << "the failed run changed the output folder";
}

}  // namespace

TEST(HostileFiles, AreThere) {
  // The generator runs at build time; an empty table would make every test below vanish, not fail.
  EXPECT_GE(table("cases.json").size(), 50u) << "run the build: it writes " << (kHostile / "cases.json");
  EXPECT_GE(table("resume_cases.json").size(), 10u);
}

class HostileFile : public ::testing::TestWithParam<std::string> {};

TEST_P(HostileFile, IsRefusedByLoadWithOneErrorAndNothingChanged) {
  const auto file = kHostile / (GetParam() + ".pt");
  const auto expected = table("cases.json").at(GetParam());
  const auto marker = kHostile / "marker-refused";
  fs::remove(marker);
  expect_load_refused(file, expected);
  EXPECT_FALSE(fs::exists(marker)) << "code from the file ran: it wrote " << marker;
}

INSTANTIATE_TEST_SUITE_P(Cases, HostileFile, ::testing::ValuesIn(keys(table("cases.json"))),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(HostileFile);

// Crafted safetensors files (tests/hostile/make_safetensors.py), each refused by Python's safetensors
// itself when it was made: the lesson refuses every one the same way as a hostile zip. Those Python reads
// are read the same way by the suite (the test safetensors.agree_with_python).
const fs::path kHostileSafetensors = fs::path(MP_BINARY_DIR) / "hostile-safetensors";

std::vector<std::string> refused_by_python() {
  std::ifstream in(kHostileSafetensors / "cases.json");
  if (!in) return {};
  const auto cases = nlohmann::json::parse(in);
  std::vector<std::string> refused;
  for (const auto& [name, verdict] : cases.items())
    if (verdict.at("python") == "refused") refused.push_back(name);
  return refused;
}

TEST(HostileSafetensors, AreThereWithPythonsVerdicts) {
  std::ifstream in(kHostileSafetensors / "cases.json");
  ASSERT_TRUE(in) << "run the build: it writes " << (kHostileSafetensors / "cases.json");
  const auto cases = nlohmann::json::parse(in);
  ASSERT_GE(cases.size(), 100u);
  if (cases.begin()->at("python").is_null())
    GTEST_SKIP()
        << "the build's Python has no safetensors to give its verdicts (scripts/install-deps.sh puts it "
           "in .venv)";
  EXPECT_GE(refused_by_python().size(), 100u)
      << "run the build with a Python that has safetensors (scripts/install-deps.sh makes .venv): it writes "
      << (kHostileSafetensors / "cases.json");
}

class HostileSafetensors : public ::testing::TestWithParam<std::string> {};

TEST_P(HostileSafetensors, IsRefusedByLoadAsPythonRefusesIt) {
  expect_load_refused(kHostileSafetensors / GetParam(), "");
}

INSTANTIATE_TEST_SUITE_P(Cases, HostileSafetensors, ::testing::ValuesIn(refused_by_python()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string name = info.param;
                           for (auto& c : name)
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           return name;
                         });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(HostileSafetensors);

// The same causes through the other reading path: any value (read_value), as --resume reads a checkpoint.
// A planted newest checkpoint is skipped with one warning naming it, and the run resumes from the honest one.
class HostileCheckpoint : public ::testing::TestWithParam<std::string> {};

std::vector<std::string> resume_args(const fs::path& out_dir, const std::string& epochs) {
  return testing_mp::short_training_args(MP_CHECKPOINTS_BINARY, out_dir, epochs);
}

TEST_P(HostileCheckpoint, IsSkippedByResumeWithAWarningNamingIt) {
  const auto planted = kHostile / table("resume_cases.json").at(GetParam());
  const auto out_dir = testing_mp::fresh_dir();
  // The honest run and the yardstick are made once, in the first test's folder, and shared by the rest.
  static const fs::path shared = testing_mp::fresh_dir("shared");
  const auto honest = shared / "honest";
  static const bool made = [&] {
    fs::remove_all(honest);
    return testing_mp::run_lesson(resume_args(honest, "1")).exit_code == 0;
  }();
  ASSERT_TRUE(made);
  // The yardstick: the same resume with no planted file, on a copy of the honest folder, once.
  const auto copy_of_honest = [&](const fs::path& to) {
    fs::remove_all(to);
    fs::copy(honest, to, fs::copy_options::recursive);
  };
  auto yardstick = resume_args(shared / "yardstick", "2");
  yardstick.emplace_back("--resume");
  static const bool copied = (copy_of_honest(shared / "yardstick"), true);
  ASSERT_TRUE(copied);
  const auto& good = normal_run(yardstick);
  ASSERT_EQ(good.exit_code, 0) << good.err;
  ASSERT_NE(good.out.find("resumed from checkpoint-00000002.pt"), std::string::npos) << good.out;
  copy_of_honest(out_dir);
  const auto name = common::checkpoint::file_name(99);
  // A hard link: a copy of a sparse file of 1 GiB would fill the disk with its zeros.
  std::error_code linked;
  fs::create_hard_link(planted, out_dir / "checkpoints" / name, linked);
  if (linked) fs::copy_file(planted, out_dir / "checkpoints" / name);
  auto args = resume_args(out_dir, "2");
  args.emplace_back("--resume");
  testing_mp::RunOptions options;
  options.timeout_seconds = good.seconds + 20;
  const auto marker = kHostile / "marker-refused";
  fs::remove(marker);
  const auto result = testing_mp::run_lesson(args, options);
  EXPECT_EQ(result.exit_code, 0) << result.err.substr(0, 2000);
  EXPECT_FALSE(fs::exists(marker)) << "code from the planted checkpoint ran: it wrote " << marker;
  expect_bounded_refusal(result, good, out_dir / "checkpoints" / name, "warning: skipping " + name,
                         "warning: ");
  EXPECT_NE(result.out.find("resumed from checkpoint-00000002.pt"), std::string::npos) << result.out;
}

INSTANTIATE_TEST_SUITE_P(Cases, HostileCheckpoint, ::testing::ValuesIn(keys(table("resume_cases.json"))),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(HostileCheckpoint);

TEST(HostileFiles, TorchLoadRunsTheFilesSetstateWhileTheReaderRunsNothing) {
  const auto file = kHostile / "setstate_writes_demo.pt";
  if (!fs::exists(file)) GTEST_SKIP() << "python3-torch is missing, so no TorchScript archive was made";
  const auto marker = kHostile / "marker-torch-load";
  fs::remove(marker);
  // The weights-only reader refuses the file and runs nothing.
  EXPECT_THROW(common::read_state_dict(file), std::runtime_error);
  EXPECT_FALSE(fs::exists(marker));
  // LibTorch's own torch::load hands the archive to TorchScript, which runs __setstate__: here it writes
  // a file, and it could as well loop for ever or fill the memory.
  auto module = std::make_shared<torch::nn::Module>();
  try {
    torch::load(module, file.string());
  } catch (const c10::Error&) {
    // Whether or not it then fits the module, the code has already run.
  }
  EXPECT_TRUE(fs::exists(marker)) << "torch::load did not run the planted __setstate__";
  fs::remove(marker);
}

// Python reads a storage whole, however little of it a tensor views; the reader keeps only the parts its
// tensors reach once more than 64 MiB of it would be reached by none, with the same values.
TEST(HostileFiles, SmallViewsOfAHugeStorageKeepOnlyWhatTheyReach) {
  const auto dir = testing_mp::fresh_dir();
  constexpr int64_t kElements = 20 << 20;  // 80 MiB of int32
  const auto big = torch::arange(kElements, torch::kInt);
  const auto last = big.narrow(0, kElements - 5, 5);
  const auto first = big.narrow(0, 0, 3);
  common::save_for_python(c10::ivalue::Tuple::create({last, first}), dir / "views.pt");
  const auto read = common::read_value(dir / "views.pt").toTupleRef().elements();
  EXPECT_TRUE(torch::equal(read[0].toTensor(), last));
  EXPECT_TRUE(torch::equal(read[1].toTensor(), first));
  for (const auto& t : read) EXPECT_LT(t.toTensor().storage().nbytes(), 1u << 20);

  // The opposite case: a storage with less than 64 MiB unreached is read whole, and shared, as Python
  // reads it.
  const auto most = big.narrow(0, 0, kElements - (8 << 20));
  common::save_for_python(c10::ivalue::Tuple::create({most, last}), dir / "most.pt");
  const auto whole = common::read_value(dir / "most.pt").toTupleRef().elements();
  EXPECT_EQ(whole[0].toTensor().storage().nbytes(), static_cast<size_t>(kElements) * 4);
  EXPECT_TRUE(whole[0].toTensor().storage().is_alias_of(whole[1].toTensor().storage()));
  EXPECT_TRUE(torch::equal(whole[1].toTensor(), last));
}

// A view that holds two elements but reaches across the whole storage would cost the whole storage: it is
// refused, naming the file.
TEST(HostileFiles, AViewReachingAcrossAHugeStorageIsRefused) {
  const auto dir = testing_mp::fresh_dir();
  constexpr int64_t kElements = 20 << 20;
  const auto big = torch::arange(kElements, torch::kInt);
  common::save_for_python(big.as_strided({2}, {kElements - 1}), dir / "strided.pt");
  try {
    common::read_value(dir / "strided.pt");
    FAIL() << "read";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find((dir / "strided.pt").string()), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("hold 8 bytes of storage data/0 but reach across 83886080 bytes"),
              std::string::npos)
        << e.what();
  }
}

// PyTorch finds the archive's folder in the first 511 bytes of the first entry's name (miniz's limit): a
// folder of 510 bytes loads, one of 511 is refused, as PyTorch refuses it.
TEST(HostileFiles, AFolderNameLoadsUpTo510BytesAsInPyTorch) {
  const std::string pickle = "\x80\x02K\x07.";  // the int 7
  const auto archive = [&](size_t folder) {
    return common::weights::make_archive(std::string(folder, 'a'),
                                         {{"data.pkl", pickle}, {"version", "3\n"}});
  };
  EXPECT_EQ(common::read_value(archive(510), "510.pt").toInt(), 7);
  for (const size_t folder : {511, 512, 60000}) {
    try {
      common::read_value(archive(folder), "long.pt");
      ADD_FAILURE() << folder << " bytes: read";
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find("more than the 511 bytes of a name PyTorch reads"),
                std::string::npos)
          << e.what();
    }
  }
}
