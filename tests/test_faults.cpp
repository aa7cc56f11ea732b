// Faults lose nothing: a really full disk, a file truncated while it loads, a huge sparse file,
// checkpoints that lie, a resume under other settings, symlink loops, and SIGKILL from outside at random
// moments while checkpoints are written. Everything on real files and real processes. The table of crafted
// checkpoints, for both training lessons, is test_crafted_checkpoints.cpp.
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <random>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "common/compat.h"
#include "common/lesson/lesson.h"
#include "common/safetensors/safetensors.h"
#include "common/training/checkpoint.h"
#include "common/weights/state_dict.h"
#include "lessons/11_checkpoints/checkpoints.h"
#include "tests/testing.h"

namespace fs = std::filesystem;
using testing_mp::tensors_equal;

namespace {

std::vector<std::string> train_args(const fs::path& out_dir, const std::string& epochs = "3") {
  return testing_mp::training_args(MP_CHECKPOINTS_BINARY, out_dir, epochs);
}
using testing_mp::changed;
using testing_mp::with;

const std::string& uninterrupted_final_params() {
  static const std::string bytes = [] {
    const auto dir =
        fs::path(MP_BINARY_DIR) / "test-output" / ("faults-uninterrupted-" + std::to_string(getpid()));
    fs::remove_all(dir);
    const auto result = testing_mp::run_lesson(train_args(dir));
    if (result.exit_code != 0) throw std::runtime_error("uninterrupted run failed: " + result.err);
    return testing_mp::read_text(dir / "final.params");
  }();
  return bytes;
}

int count_temporaries(const fs::path& dir) {
  int n = 0;
  for (const auto& entry : fs::recursive_directory_iterator(dir))
    if (entry.path().filename().string().find(".tmp-") != std::string::npos) ++n;
  return n;
}

// Runs a lesson into a real, full tmpfs (tests/faults/full_disk.sh in a private mount namespace).
testing_mp::RunResult on_a_full_disk(const std::string& binary, const std::string& first,
                                     const std::string& second) {
  const auto mount_point = testing_mp::fresh_dir("mnt");
  return testing_mp::run_program({"unshare", "-m", "sh",
                                  (fs::path(MP_SOURCE_DIR) / "tests" / "faults" / "full_disk.sh").string(),
                                  mount_point.string(), binary, first, second});
}

void skip_unless_root() {
  if (geteuid() != 0) GTEST_SKIP() << "not root: a private tmpfs needs root (CI runs the suite as root)";
}

void expect_refused_on_full_disk(const testing_mp::RunResult& r) {
  if (r.exit_code == 77) GTEST_SKIP() << "cannot mount a tmpfs here: " << r.out << r.err;
  if (r.err.rfind("unshare:", 0) == 0) {
    // In a chroot (scripts/debian-root.sh) "/" is no mount point, so no private namespace can be made.
    GTEST_SKIP() << "no private mount namespace here: " << r.err;
  }
  EXPECT_NE(r.out.find("exit=2\n"), std::string::npos) << r.out << r.err;
  EXPECT_NE(r.out.find("files: same\n"), std::string::npos) << "files from the good run changed:\n" << r.out;
  EXPECT_NE(r.out.find("tmp=0\n"), std::string::npos) << "temporary files left:\n" << r.out;
  const auto err = r.out.substr(r.out.find("stderr:\n") + 8);
  EXPECT_EQ(err.rfind("error: cannot write ", 0), 0u) << err;
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
  EXPECT_NE(err.find("No space left on device"), std::string::npos) << err;
}

}  // namespace

TEST(Faults, FileIoOnAFullDiskExitsTwoAndKeepsTheGoodFiles) {
  skip_unless_root();
  expect_refused_on_full_disk(on_a_full_disk(MP_FILE_IO_BINARY, "", ""));
}

TEST(Faults, CheckpointsOnAFullDiskExitTwoAndKeepTheGoodCheckpoints) {
  skip_unless_root();
  expect_refused_on_full_disk(
      on_a_full_disk(MP_CHECKPOINTS_BINARY, "--device cpu --epochs 1 --examples 512 --checkpoint-every 5",
                     "--device cpu --epochs 2 --examples 512 --checkpoint-every 5 --resume"));
}

namespace {

// 25 million parameters (100 MB): loading takes tens of milliseconds, and a second process truncates the
// file at several moments during it. A mapped file would end this process with SIGBUS; read with pread,
// the load either finishes first or fails with an error that names the file.
void expect_truncation_is_an_error(
    const std::string& name, const std::function<void(const torch::nn::Module&, const fs::path&)>& save) {
  struct Big : torch::nn::Module {
    Big() { register_parameter("w", torch::rand({5000, 5000})); }
  };
  Big saved;
  int errors = 0;
  for (const int delay_us : {0, 2000, 5000, 10000, 20000, 40000}) {
    const auto path = testing_mp::fresh_dir() / name;
    save(saved, path);
    Big target;
    const pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      usleep(static_cast<useconds_t>(delay_us));
      _exit(truncate(path.c_str(), 4096) == 0 ? 0 : 1);
    }
    const auto start = std::chrono::steady_clock::now();
    try {
      common::load_state_dict(target, path);
    } catch (const std::runtime_error& e) {
      ++errors;
      EXPECT_NE(std::string(e.what()).find(path.string()), std::string::npos) << e.what();
    }
    EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 10);
    int status = 0;
    waitpid(child, &status, 0);
  }
  EXPECT_GT(errors, 0) << "no truncation landed before the load ended; the check proved nothing";
}

}  // namespace

TEST(Faults, AFileTruncatedWhileItLoadsIsAnErrorNotASignal) {
  expect_truncation_is_an_error("big.params", [](const torch::nn::Module& module, const fs::path& path) {
    common::save_state_dict(module, path);
  });
}

TEST(Faults, ASafetensorsFileTruncatedWhileItLoadsIsAnErrorNotASignal) {
  expect_truncation_is_an_error("big.safetensors", [](const torch::nn::Module& module, const fs::path& path) {
    common::safetensors::save_file(common::state_dict(module), path);
  });
}

TEST(Faults, AHugeSparseFileIsRefusedWithinSeconds) {
  const auto path = testing_mp::fresh_dir() / "huge.pt";
  { std::ofstream(path) << "PK\x03\x04"; }
  fs::resize_file(path, 20ULL << 30);  // 20 GB, sparse: no disk used
  testing_mp::RunOptions options;
  options.timeout_seconds = 20;
  const auto r = testing_mp::run_lesson(
      {MP_FILE_IO_BINARY, "--out-dir", (testing_mp::fresh_dir() / "out").string(), "--load", path.string()},
      options);
  fs::remove(path);
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.exit_code, common::kExitBadInput) << r.err;
  EXPECT_NE(r.err.find(path.string()), std::string::npos) << r.err;
  EXPECT_LT(r.seconds, 10) << "only the file's end is read before it is refused";
}

namespace {

// A copy of a real checkpoint with top-level fields changed, under a newer name so that --resume tries it
// first.
void plant(const fs::path& from, int64_t name_step,
           const std::vector<std::pair<std::string, c10::IValue>>& changes) {
  testing_mp::plant(from, from.parent_path() / common::checkpoint::file_name(name_step),
                    [&](c10::impl::GenericDict& checkpoint) {
                      for (const auto& [key, value] : changes) checkpoint.insert_or_assign(key, value);
                    });
}

}  // namespace

TEST(Faults, ResumeSkipsCheckpointsThatLieAndEndsBitIdentical) {
  const auto dir = testing_mp::fresh_dir();
  // The disk as a run stopped right after step 30 leaves it (no pruning, so that older ones remain).
  ASSERT_EQ(testing_mp::run_lesson(with(train_args(dir), {"--keep", "100"})).exit_code, 0);
  const auto ckpt = dir / "checkpoints";
  testing_mp::remove_entries_after(ckpt, common::checkpoint::file_name(30));
  fs::remove(dir / "final.params");
  const auto good = ckpt / common::checkpoint::file_name(30);
  ASSERT_TRUE(fs::exists(good));
  // 16 steps an epoch. Each planted file is sound as a file and lies in one way only.
  plant(good, 40, {{"step", int64_t{-99999}}});
  plant(good, 41,
        {{"epoch", int64_t{2}}, {"step", int64_t{41}}, {"rng_state", torch::zeros({10}, torch::kByte)}});
  plant(good, 42, {{"epoch", int64_t{99}}, {"step", int64_t{42}}});
  constexpr int64_t kFarStep = int64_t{99} * 16;
  plant(good, kFarStep, {{"epoch", int64_t{99}}, {"step", kFarStep}});
  // The newest of all: a folder named like a checkpoint, and a symlink loop.
  fs::create_directory(ckpt / common::checkpoint::file_name(50));
  fs::create_symlink(common::checkpoint::file_name(51), ckpt / common::checkpoint::file_name(51));

  const auto resumed = testing_mp::run_lesson(with(train_args(dir), {"--resume"}));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  for (const char* expected :
       {"skipping checkpoint-00000040.pt", "skipping checkpoint-00000041.pt",
        "skipping checkpoint-00000042.pt", "skipping checkpoint-00001584.pt",
        "skipping checkpoint-00000050.pt", "skipping checkpoint-00000051.pt", "generator state",
        "'step' is -99999, outside [0, 48]", "past the end of its run of 3 epochs"}) {
    EXPECT_NE(resumed.err.find(expected), std::string::npos) << expected << " not in:\n" << resumed.err;
  }
  EXPECT_NE(resumed.out.find("resumed from checkpoint-00000030.pt"), std::string::npos) << resumed.out;
  EXPECT_EQ(testing_mp::read_text(dir / "final.params"), uninterrupted_final_params());
}

TEST(Faults, ResumeUnderOtherSettingsIsAnErrorNamingEachOne) {
  const auto dir = testing_mp::fresh_dir();
  // The disk as a run stopped right after step 10 leaves it.
  ASSERT_EQ(testing_mp::run_lesson(with(train_args(dir), {"--keep", "100"})).exit_code, 0);
  testing_mp::remove_entries_after(dir / "checkpoints", common::checkpoint::file_name(10));
  fs::remove(dir / "final.params");
  const auto before = testing_mp::read_text(dir / "checkpoints" / common::checkpoint::file_name(10));
  for (const auto& [option, value, named] : std::vector<std::tuple<std::string, std::string, std::string>>{
           {"--batch-size", "8", "--batch-size was 32"},
           {"--examples", "1024", "--examples was 512"},
           {"--seed", "5", "--seed was 0"},
           {"--lr", "0.1", "--lr was 0.05"}}) {
    const auto r = testing_mp::run_lesson(with(changed(train_args(dir), option, value), {"--resume"}));
    EXPECT_EQ(r.exit_code, common::kExitBadInput) << option << ": " << r.err;
    EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << r.err;
    EXPECT_NE(r.err.find(named), std::string::npos) << r.err;
  }
  EXPECT_EQ(testing_mp::read_text(dir / "checkpoints" / common::checkpoint::file_name(10)), before);
}

TEST(Faults, ResumeWithNoMoreEpochsSaysTheRunIsCompleteAndTrainsNothing) {
  const auto dir = testing_mp::fresh_dir();
  ASSERT_EQ(testing_mp::run_lesson(train_args(dir)).exit_code, 0);
  const auto final_before = testing_mp::read_text(dir / "final.params");
  // The last checkpoint (step 45) is in epoch 3 of 3; ask for 2.
  const auto r = testing_mp::run_lesson(with(train_args(dir, "2"), {"--resume"}));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("already complete"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("Epoch ["), std::string::npos) << "it trained:\n" << r.out;
  EXPECT_EQ(testing_mp::read_text(dir / "final.params"), final_before);
}

TEST(Faults, KilledFromOutsideAtRandomMomentsResumesBitIdenticalAndCleansUp) {
  // A checkpoint at every step, so that most kills land inside a checkpoint write. The moments are drawn
  // from a fixed seed; the process does not know they are coming.
  // 2048 examples for 6 epochs: 384 steps, each about a millisecond here with its checkpoint, so a kill
  // 0-60 ms after a checkpoint appears lands mid-run.
  const auto run_args = [](const fs::path& out) {
    auto args = changed(train_args(out), "--checkpoint-every", "1");
    return changed(changed(args, "--examples", "2048"), "--epochs", "6");
  };
  const auto reference_dir = testing_mp::fresh_dir("reference");
  ASSERT_EQ(testing_mp::run_lesson(run_args(reference_dir)).exit_code, 0);
  const auto dir = testing_mp::fresh_dir();
  const auto args = run_args(dir);
  std::mt19937 rng(12345);
  std::uniform_int_distribution<int> delay_ms(0, 60);
  const auto newest = [&] {
    const auto found = fs::exists(dir / "checkpoints") ? common::checkpoint::list(dir / "checkpoints")
                                                       : std::vector<fs::path>{};
    return found.empty() ? fs::path() : found.front();
  };
  int kills = 0, leftovers = 0;
  for (int round = 0; round < 4; ++round) {
    const bool have =
        fs::exists(dir / "checkpoints") && !common::checkpoint::list(dir / "checkpoints").empty();
    // Once the run has written a new checkpoint (it is training, whatever its start-up took, under a
    // sanitizer too), a random moment later.
    const auto before = newest();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    testing_mp::RunOptions options;
    options.watch = [&](pid_t child) {
      if (newest() == before && std::chrono::steady_clock::now() < deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms(rng)));
      kill(child, SIGKILL);
      return true;
    };
    const auto run = testing_mp::run_lesson(have ? with(args, {"--resume"}) : args, options);
    kills += run.signal == SIGKILL ? 1 : 0;
    if (fs::exists(dir / "checkpoints")) leftovers += count_temporaries(dir / "checkpoints");
  }
  ASSERT_GE(kills, 2) << "the runs ended before the kills; the check proved little";
  // Whether or not a kill landed inside a write, the next run must clear what one leaves: the temporary
  // file beside the checkpoint it was writing.
  fs::create_directories(dir / "checkpoints");
  std::ofstream(dir / "checkpoints" / ".checkpoint-00000099.pt.tmp-0badf00d") << "half a checkpoint";
  const auto finished = testing_mp::run_lesson(with(args, {"--resume"}));
  ASSERT_EQ(finished.exit_code, 0) << finished.err;
  EXPECT_EQ(testing_mp::read_text(dir / "final.params"),
            testing_mp::read_text(reference_dir / "final.params"));
  EXPECT_EQ(count_temporaries(dir), 0) << "temporary files survived a successful resume";
  std::cout << kills << " kills, " << leftovers << " temporary files seen after them\n";
}
