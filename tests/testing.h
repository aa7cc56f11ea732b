#pragma once
// Test helpers: one place for tensor comparisons that print both tensors, the devices a test runs on,
// running a lesson's real binary with the arguments the tests share, and reading what it recorded.
#include <sys/types.h>

#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>

namespace testing_mp {

// Exact equality (same shape, dtype and every element), printing both tensors when they differ.
::testing::AssertionResult tensors_equal(const torch::Tensor& actual, const torch::Tensor& expected);

// torch::allclose with the tolerances written out at the call, printing both tensors when they differ.
::testing::AssertionResult tensors_close(const torch::Tensor& actual, const torch::Tensor& expected,
                                         double rtol, double atol);

// {cpu} ∪ try_all_gpus(), as strings for test parameters ("cpu", "cuda:0", ...). Always lists "cuda:0"
// so that a machine without CUDA reports the CUDA instances as skipped rather than leaving them out.
std::vector<std::string> devices_under_test();

std::pair<std::optional<torch::Device>, std::string> device_or_reason(const std::string& spec);

// Base of tests that run once per device: SetUp skips, saying why, when the device is absent here.
class OnDevice : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override;
  const torch::Device& device() const { return device_; }

 private:
  torch::Device device_{torch::kCPU};
};

// Instance names such as "cpu" and "cuda_0".
std::string device_test_name(const ::testing::TestParamInfo<std::string>& info);

#define MP_INSTANTIATE_ON_DEVICES(Suite)                                                            \
  INSTANTIATE_TEST_SUITE_P(Devices, Suite, ::testing::ValuesIn(::testing_mp::devices_under_test()), \
                           ::testing_mp::device_test_name)

// A suite whose TEST_P tests run once on each device under test (device() is the one). A class name cannot
// be parenthesized.
// NOLINTBEGIN(bugprone-macro-parentheses)
#define MP_TEST_ON_DEVICES(Suite)                 \
  class Suite : public ::testing_mp::OnDevice {}; \
  MP_INSTANTIATE_ON_DEVICES(Suite)
// NOLINTEND(bugprone-macro-parentheses)

struct RunResult {
  int exit_code = -1;  // -1 when it did not exit normally (a signal)
  int signal = 0;
  bool timed_out = false;  // killed with SIGKILL after RunOptions::timeout_seconds
  bool killed = false;     // killed with SIGKILL once RunOptions::kill_when_exists appeared
  double seconds = 0;      // wall time
  long max_rss_kb = 0;     // peak resident memory, from wait4
  std::string out;
  std::string err;
};

struct RunOptions {
  double timeout_seconds = 300;
  // Where stderr goes: "" captures it into RunResult::err; "closed" starts the program with no fd 2;
  // any other value is a path opened for writing (e.g. "/dev/full").
  std::string stderr_to;
  // When set, the program is killed with SIGKILL from outside, as a pulled plug would, as soon as this
  // file exists (polled every millisecond). RunResult::killed says whether that happened.
  std::filesystem::path kill_when_exists;
  // "NAME=value" entries added to the program's environment (a launcher's variables).
  std::vector<std::string> environment;
  // Called with the program's pid every millisecond while it runs, until it returns true: a test's own
  // action from outside, such as killing one of the program's children.
  std::function<bool(pid_t)> watch;
};

// Runs a program with arguments (no shell) and captures its exit status, stdout and stderr. A program
// still running after the timeout is killed, and the result says so.
RunResult run_program(const std::vector<std::string>& argv, const RunOptions& options = {});

// What a lesson recorded for the parity check: out_dir/values.json, or an exception naming the file.
nlohmann::json read_values(const std::filesystem::path& out_dir);

// A lesson's run as a learner sees it: how it ended, what it printed, and the folder its files are in.
struct LessonRun : RunResult {
  std::filesystem::path out_dir;  // the --out-dir it was given; empty when it had none
  nlohmann::json values() const { return read_values(out_dir); }
};

// Runs a lesson with its options from outside, as a learner does: argv[0] is its binary, or a launcher
// (torchrun, ip netns exec) whose command line holds the binary and its options.
LessonRun run_lesson(const std::vector<std::string>& argv, const RunOptions& options = {});

// Removes the entries of dir whose names sort after `last`: with zero-padded step numbers in the names,
// what a run leaves when it stops right after writing `last`.
void remove_entries_after(const std::filesystem::path& dir, const std::string& last);

// A fresh empty folder under the build tree, named after the running test.
std::filesystem::path fresh_dir(const std::string& tag = "");

// A file's bytes ("" when it cannot be read).
std::string read_text(const std::filesystem::path& path);

// Every entry under dir, by its path relative to dir: a file with its bytes, a folder as "<dir>".
std::map<std::string, std::string> snapshot(const std::filesystem::path& dir);

// Whether text holds a byte a terminal would obey (C0 controls other than one final newline, DEL, ESC
// sequences, C1 controls), a line or paragraph separator, or a bidirectional override: what a program
// prints from a file must be escaped first.
bool has_control_bytes(const std::string& text);

// Lesson 11's training run as the checkpoint and fault tests use it: `binary` on the CPU into out_dir,
// 512 examples in batches of 32 (16 steps an epoch), a checkpoint every 5 steps.
std::vector<std::string> training_args(const std::string& binary, const std::filesystem::path& out_dir,
                                       const std::string& epochs = "3");

// Lesson 11's shortest run that resumes: 64 examples in batches of 32 (2 steps an epoch), a checkpoint
// every step, so that a resume after epoch 1 starts from the checkpoint of step 2.
std::vector<std::string> short_training_args(const std::string& binary, const std::filesystem::path& out_dir,
                                             const std::string& epochs);

// Lesson 13's run: `binary` on the CPU into out_dir with world_size ranks, each waiting at most 10 s for
// the others, then `extra`.
std::vector<std::string> distributed_args(const std::string& binary, const std::filesystem::path& out_dir,
                                          int world_size, const std::vector<std::string>& extra = {});

// args with `extra` appended.
std::vector<std::string> with(std::vector<std::string> args, const std::vector<std::string>& extra);

// args with an option's value changed, or the option added when it is not there.
std::vector<std::string> changed(std::vector<std::string> args, const std::string& option,
                                 const std::string& value);

// A change to a checkpoint as read. Dicts and lists share their contents, so a change to a dict reached
// through another changes the whole checkpoint.
using Change = std::function<void(c10::impl::GenericDict&)>;

// A copy of a real checkpoint (any torch.save file of a dict) with a change, written as `to`.
void plant(const std::filesystem::path& from, const std::filesystem::path& to, const Change& change);

// The process whose parent is `parent` and whose command line and environment (NUL-separated, as /proc
// gives them) `match` accepts, or 0.
pid_t child_of(pid_t parent,
               const std::function<bool(const std::string& cmdline, const std::string& environ)>& match);

// The error of common::load_state_dict(module, path), or "" when it loaded.
std::string load_error(torch::nn::Module& module, const std::filesystem::path& path);

// The python3 that has Debian's python3-torch, or an empty string (then tests that need it skip).
std::string python_with_torch();

}  // namespace testing_mp
