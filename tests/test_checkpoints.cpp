// Outcomes of the checkpoint lesson: what a checkpoint holds, training that learns, and a resume after a
// crash that ends bit-identical to a run that never stopped.
#include <unistd.h>

#include <csignal>
#include <fstream>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "common/lesson/lesson.h"
#include "common/weights/state_dict.h"
#include "lessons/11_checkpoints/checkpoints.h"
#include "tests/testing.h"

namespace fs = std::filesystem;
using testing_mp::run_lesson;
using testing_mp::tensors_equal;
using testing_mp::with;

namespace {

// 512 examples in batches of 32: 16 steps an epoch, 48 in three epochs, a checkpoint every 5 steps.
std::vector<std::string> train_args(const fs::path& out_dir) {
  return testing_mp::training_args(MP_LESSON_BINARY, out_dir);
}

common::StateDict final_params(const fs::path& out_dir) {
  return common::read_state_dict(out_dir / "final.params");
}

void expect_same_state(const common::StateDict& actual, const common::StateDict& expected) {
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(actual[i].first, expected[i].first);
    EXPECT_TRUE(tensors_equal(actual[i].second, expected[i].second)) << expected[i].first;
  }
}

// Trains on all of `data` for `epochs`, a checkpoint every `checkpoint_every` steps into dir: the loss of
// each epoch.
std::vector<double> epoch_losses(torch::nn::Sequential& model, torch::optim::SGD& optimizer,
                                 const checkpoints::Dataset& data, int64_t epochs, int64_t checkpoint_every,
                                 const fs::path& dir) {
  checkpoints::TrainOptions options;
  options.settings.epochs = epochs;
  options.settings.examples = data.X.size(0);
  options.checkpoint_every = checkpoint_every;
  options.checkpoint_dir = dir;
  std::vector<double> losses;
  checkpoints::train(model, optimizer, data, options, {}, [&](const auto& r) { losses.push_back(r.loss); },
                     {});
  return losses;
}

// The final parameters of an uninterrupted run, made once for the whole file.
const common::StateDict& uninterrupted() {
  static const common::StateDict state = [] {
    // One folder per process: ctest runs tests of this file in parallel processes.
    const auto dir =
        fs::path(MP_BINARY_DIR) / "test-output" / ("checkpoints-uninterrupted-" + std::to_string(getpid()));
    fs::remove_all(dir);
    const auto result = run_lesson(train_args(dir));
    if (result.exit_code != 0) throw std::runtime_error("uninterrupted run failed: " + result.err);
    return final_params(dir);
  }();
  return state;
}

}  // namespace

TEST(Checkpoints, ContentsRoundTrip) {
  const auto data = checkpoints::make_dataset(64, 0);
  auto model = checkpoints::make_mlp();
  auto optimizer = checkpoints::make_optimizer(model, 0.05);
  checkpoints::TrainOptions options;
  options.settings.epochs = 1;
  options.settings.examples = 64;   // 2 steps an epoch
  options.checkpoint_every = 1000;  // none written during training
  options.checkpoint_dir = testing_mp::fresh_dir();
  checkpoints::train(model, optimizer, data, options, {}, [](const auto&) {}, {});
  const checkpoints::Progress progress{1, 2, at::detail::getDefaultCPUGenerator().get_state()};
  const auto path = options.checkpoint_dir / common::checkpoint::file_name(2);
  common::checkpoint::save(path, *model, optimizer, progress, options.settings);

  auto fresh = checkpoints::make_mlp();
  auto fresh_optimizer = checkpoints::make_optimizer(fresh, 0.05);
  ASSERT_FALSE(torch::equal(fresh->parameters()[0], model->parameters()[0]));
  const auto loaded = common::checkpoint::load(path, *fresh, fresh_optimizer).progress;
  EXPECT_EQ(loaded.epoch, 1);
  EXPECT_EQ(loaded.step, 2);
  EXPECT_TRUE(tensors_equal(loaded.rng_state, progress.rng_state));
  for (size_t i = 0; i < model->parameters().size(); ++i) {
    EXPECT_TRUE(tensors_equal(fresh->parameters()[i], model->parameters()[i]));
  }
  // The momentum buffers came along: one more identical step keeps the two models identical. Without
  // them (a fresh optimizer) the same step lands elsewhere.
  auto step = [&](torch::nn::Sequential& m, torch::optim::Optimizer& opt) {
    opt.zero_grad();
    torch::nn::functional::cross_entropy(m->forward(data.X), data.y).backward();
    opt.step();
  };
  auto no_momentum = checkpoints::make_mlp();
  common::load_state_dict(*no_momentum, common::state_dict(*model), "model");
  auto no_momentum_optimizer = checkpoints::make_optimizer(no_momentum, 0.05);
  step(model, optimizer);
  step(fresh, fresh_optimizer);
  step(no_momentum, no_momentum_optimizer);
  for (size_t i = 0; i < model->parameters().size(); ++i) {
    EXPECT_TRUE(tensors_equal(fresh->parameters()[i], model->parameters()[i]));
  }
  EXPECT_FALSE(torch::equal(no_momentum->parameters()[0], model->parameters()[0]));
}

TEST(Checkpoints, TrainingLossFalls) {
  const auto data = checkpoints::make_dataset(1024, 0);
  auto model = checkpoints::make_mlp();
  auto optimizer = checkpoints::make_optimizer(model, 0.05);
  const auto losses = epoch_losses(model, optimizer, data, 5, 1000000, testing_mp::fresh_dir());
  ASSERT_EQ(losses.size(), 5u);
  // Chance level is ln(10) = 2.30; the last epoch's loss must be below half the first's.
  EXPECT_LT(losses.back(), 0.5 * losses.front()) << "first " << losses.front() << ", last " << losses.back();
}

// 4096 examples: 128 steps an epoch, 384 in all, so that a kill from outside lands well before the end.
std::vector<std::string> long_train_args(const fs::path& out_dir) {
  return testing_mp::changed(train_args(out_dir), "--examples", "4096");
}

class ResumeAfterKill : public ::testing::TestWithParam<int> {};

TEST_P(ResumeAfterKill, EndsBitIdenticalToAnUninterruptedRun) {
  const auto reference = testing_mp::fresh_dir("reference");
  ASSERT_EQ(run_lesson(long_train_args(reference)).exit_code, 0);
  // SIGKILL from outside once the checkpoint of step GetParam() is on disk: the process is somewhere
  // after it, mid-step or mid-write. Rare on a loaded machine: it finished first; then try again.
  fs::path dir;
  testing_mp::RunResult killed;
  for (int attempt = 0; attempt < 3 && !killed.killed; ++attempt) {
    dir = testing_mp::fresh_dir();
    testing_mp::RunOptions options;
    options.kill_when_exists = dir / "checkpoints" / common::checkpoint::file_name(GetParam());
    killed = run_lesson(long_train_args(dir), options);
  }
  ASSERT_TRUE(killed.killed) << "every run ended before the kill";
  ASSERT_EQ(killed.signal, SIGKILL) << killed.err;
  ASSERT_FALSE(fs::exists(dir / "final.params"));
  const auto resumed = run_lesson(with(long_train_args(dir), {"--resume"}));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_NE(resumed.out.find("resumed from"), std::string::npos) << resumed.out;
  expect_same_state(final_params(dir), final_params(reference));
}

// Early, right after an epoch starts, mid-epoch, and in the last epoch.
INSTANTIATE_TEST_SUITE_P(KillPoints, ResumeAfterKill, ::testing::Values(5, 130, 200, 300));

TEST(Checkpoints, ResumedRunDiffersWhenTheCheckpointIsIgnored) {
  // The opposite case: restarting from scratch with another seed ends elsewhere, so equality above is
  // not a property of any two runs.
  const auto dir = testing_mp::fresh_dir();
  ASSERT_EQ(run_lesson(with(train_args(dir), {"--seed", "1"})).exit_code, 0);
  EXPECT_FALSE(torch::equal(final_params(dir)[0].second, uninterrupted()[0].second));
}

TEST(Checkpoints, TruncatedNewestCheckpointFallsBackToThePreviousOne) {
  const auto dir = testing_mp::fresh_dir();
  // The disk as a run stopped right after step 30 leaves it (no pruning, so that older ones remain).
  ASSERT_EQ(run_lesson(with(train_args(dir), {"--keep", "100"})).exit_code, 0);
  testing_mp::remove_entries_after(dir / "checkpoints", common::checkpoint::file_name(30));
  fs::remove(dir / "final.params");
  const auto found = common::checkpoint::list(dir / "checkpoints");
  ASSERT_GE(found.size(), 2u);
  fs::resize_file(found[0], fs::file_size(found[0]) / 2);
  const auto resumed = run_lesson(with(train_args(dir), {"--resume"}));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_NE(resumed.err.find("warning: skipping " + found[0].filename().string()), std::string::npos)
      << resumed.err;
  EXPECT_NE(resumed.out.find("resumed from " + found[1].filename().string()), std::string::npos)
      << resumed.out;
  expect_same_state(final_params(dir), uninterrupted());
}

TEST(Checkpoints, KeepIsHonoured) {
  const auto dir = testing_mp::fresh_dir();
  ASSERT_EQ(run_lesson(with(train_args(dir), {"--keep", "2"})).exit_code, 0);
  const auto found = common::checkpoint::list(dir / "checkpoints");
  ASSERT_EQ(found.size(), 2u);
  // The newest two: steps 45 and 40 of 48.
  EXPECT_EQ(found[0].filename(), common::checkpoint::file_name(45));
  EXPECT_EQ(found[1].filename(), common::checkpoint::file_name(40));
}

// Damaged checkpoints named for later steps, for an earlier one and for a step the run writes again: the
// resumed run keeps the newest honest ones, replaces the one it writes again, and removes no damaged one.
TEST(Checkpoints, PruningKeepsTheNewestHonestCheckpointsAndEveryDamagedOne) {
  for (const std::string keep : {"1", "2"}) {
    const auto dir = testing_mp::fresh_dir(keep);
    const auto checkpoints = dir / "checkpoints";
    ASSERT_EQ(run_lesson(with(train_args(dir), {"--keep", "100"})).exit_code, 0);
    testing_mp::remove_entries_after(checkpoints, common::checkpoint::file_name(20));
    fs::remove(dir / "final.params");
    const auto honest = testing_mp::read_text(checkpoints / common::checkpoint::file_name(20));
    const auto damage = [&](int64_t step, size_t size) {
      std::ofstream(checkpoints / common::checkpoint::file_name(step), std::ios::binary)
          << honest.substr(0, size);
    };
    damage(90, honest.size() / 2);  // cut short
    damage(95, honest.size());      // whole, but named for another step
    damage(30, 100);                // the run writes step 30 over it
    damage(10, honest.size() / 3);  // older than the one resumed from
    const auto resumed = run_lesson(with(train_args(dir), {"--resume", "--keep", keep}));
    ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
    EXPECT_NE(resumed.out.find("resumed from " + common::checkpoint::file_name(20)), std::string::npos)
        << resumed.out;
    // The older damaged file is named once, when pruning first meets it.
    const auto named = [&](int64_t step) {
      const auto name = "warning: keeping " + common::checkpoint::file_name(step) + ", which does not load";
      size_t n = 0;
      for (auto at = resumed.err.find(name); at != std::string::npos; at = resumed.err.find(name, at + 1))
        ++n;
      return n;
    };
    EXPECT_EQ(named(10), 1u) << resumed.err;
    EXPECT_EQ(named(90), 0u) << "already named when --resume skipped it:\n" << resumed.err;

    std::vector<std::string> left;
    for (const auto& path : common::checkpoint::list(checkpoints)) left.push_back(path.filename().string());
    std::vector<std::string> expected{common::checkpoint::file_name(95), common::checkpoint::file_name(90),
                                      common::checkpoint::file_name(45)};
    if (keep == "2") expected.push_back(common::checkpoint::file_name(40));
    expected.push_back(common::checkpoint::file_name(10));
    EXPECT_EQ(left, expected) << "--keep " << keep;
    expect_same_state(final_params(dir), uninterrupted());

    // The folder still resumes: from the newest honest checkpoint.
    const auto again = run_lesson(with(train_args(dir), {"--resume", "--keep", keep}));
    ASSERT_EQ(again.exit_code, 0) << again.err;
    EXPECT_NE(again.out.find("resumed from " + common::checkpoint::file_name(45)), std::string::npos)
        << again.out;
  }
}

// Only the temporaries the suite's own writer leaves for a checkpoint are swept; a learner's files that
// look like temporaries, and a link, stay.
TEST(Checkpoints, TheSweepRemovesOnlyTheSuitesOwnTemporaries) {
  const auto dir = testing_mp::fresh_dir();
  const auto checkpoints = dir / "checkpoints";
  ASSERT_EQ(run_lesson(with(train_args(dir), {"--keep", "100"})).exit_code, 0);
  testing_mp::remove_entries_after(checkpoints, common::checkpoint::file_name(20));
  const std::string ours = ".checkpoint-00000099.pt.tmp-0badf00d";
  const std::vector<std::string> learners{".notes.txt.tmp-0badf00d",
                                          ".checkpoint-00000099.pt.tmp-0BADF00D",
                                          ".checkpoint-00000099.pt.tmp-0badf00d1",
                                          ".final.params.tmp-12345678",
                                          ".checkpoint-99.pt.tmp-0badf00d",
                                          "notes.tmp-0badf00d"};
  for (const auto& name : learners) std::ofstream(checkpoints / name) << "a learner's file";
  std::ofstream(checkpoints / ours) << "half a checkpoint";
  fs::create_symlink(checkpoints / learners[0], checkpoints / ".checkpoint-00000098.pt.tmp-0badf00d");
  const auto resumed = run_lesson(with(train_args(dir), {"--resume", "--keep", "100"}));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_NE(resumed.out.find("removed 1 temporary file(s)"), std::string::npos) << resumed.out;
  EXPECT_FALSE(fs::exists(checkpoints / ours));
  for (const auto& name : learners)
    EXPECT_EQ(testing_mp::read_text(checkpoints / name), "a learner's file") << name;
  EXPECT_TRUE(fs::is_symlink(checkpoints / ".checkpoint-00000098.pt.tmp-0badf00d"));
}

TEST(Checkpoints, FinalParamsLoadThroughTheStrictLoader) {
  auto model = checkpoints::make_mlp();
  ASSERT_NO_THROW(common::load_state_dict(*model, uninterrupted(), "final.params"));
}

TEST(Checkpoints, ResumeWithoutACheckpointIsAnError) {
  const auto result = run_lesson(with(train_args(testing_mp::fresh_dir()), {"--resume"}));
  EXPECT_EQ(result.exit_code, common::kExitBadInput);
  EXPECT_EQ(result.err.rfind("error: --resume: no checkpoint", 0), 0u) << result.err;
}

MP_TEST_ON_DEVICES(Checkpoints);

TEST_P(Checkpoints, TrainsAndSavesACheckpointThatLoadsBack) {
  const auto data = checkpoints::make_dataset(256, 0);
  auto model = checkpoints::make_mlp();
  model->to(device());
  auto optimizer = checkpoints::make_optimizer(model, 0.05);
  const auto dir = testing_mp::fresh_dir();
  const auto losses = epoch_losses(model, optimizer, data, 2, 8, dir);
  ASSERT_EQ(losses.size(), 2u);
  EXPECT_LT(losses[1], losses[0]);
  const auto found = common::checkpoint::list(dir);
  ASSERT_FALSE(found.empty());
  auto fresh = checkpoints::make_mlp();
  fresh->to(device());
  auto fresh_optimizer = checkpoints::make_optimizer(fresh, 0.05);
  EXPECT_EQ(common::checkpoint::load(found[0], *fresh, fresh_optimizer).progress.step, 16);
  EXPECT_EQ(fresh->parameters()[0].device(), device());
  // Training goes on from it: the restored momentum buffers sit on the parameters' device.
  fresh_optimizer.zero_grad();
  torch::nn::functional::cross_entropy(fresh->forward(data.X.to(device())), data.y.to(device())).backward();
  EXPECT_NO_THROW(fresh_optimizer.step());
}
