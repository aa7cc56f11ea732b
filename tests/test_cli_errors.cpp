// Every lesson binary, given a bad flag, a bad value, an unwritable folder or a GPU that is not there,
// answers with one "error: ..." line and exit status 2, and leaves what was on disk as it was.
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "common/lesson/lesson.h"
#include "tests/testing.h"

namespace fs = std::filesystem;

namespace {

std::vector<std::string> lesson_binaries() {
  std::vector<std::string> binaries;
  std::stringstream list(MP_LESSON_BINARIES);
  for (std::string path; std::getline(list, path, ',');) binaries.push_back(path);
  return binaries;
}

struct Case {
  std::string binary;
  std::string what;
  // "{out}" stands for the prepared output folder, "{file}" for a plain file, "{fifo}" for a FIFO (kept
  // outside the folder whose contents are compared: reading it would block).
  std::vector<std::string> args;
};

std::vector<Case> cases() {
  const std::string missing_gpu =
      "cuda:" + std::to_string(torch::cuda::is_available() ? torch::cuda::device_count() : 7);
  std::vector<Case> all;
  for (const auto& binary : lesson_binaries()) {
    const auto name = fs::path(binary).filename().string();
    all.push_back({binary, "unknown_flag", {"--out-dir", "{out}", "--no-such-flag"}});
    all.push_back({binary, "negative_seed", {"--out-dir", "{out}", "--seed", "-1"}});
    all.push_back({binary, "non_numeric_seed", {"--out-dir", "{out}", "--seed", "abc"}});
    all.push_back({binary, "seed_beyond_int64", {"--out-dir", "{out}", "--seed", "99999999999999999999"}});
    all.push_back({binary, "unwritable_out_dir", {"--out-dir", "{file}/sub"}});
    all.push_back({binary, "missing_gpu", {"--out-dir", "{out}", "--device", missing_gpu}});
    if (name == "11_checkpoints" || name == "13_distributed") {
      // CLI11's Range lets NaN through: every floating-point option refuses it, and the infinities.
      for (const char* value : {"nan", "NaN", "-nan", "inf", "-inf", "infinity", "1e999"})
        all.push_back({binary, std::string("lr_") + value, {"--out-dir", "{out}", "--lr", value}});
    }
    if (name == "13_distributed") {
      for (const char* value : {"nan", "inf", "-inf"})
        all.push_back({binary, std::string("timeout_") + value, {"--out-dir", "{out}", "--timeout", value}});
    }
    if (name == "11_checkpoints") {
      all.push_back({binary, "negative_epochs", {"--out-dir", "{out}", "--epochs", "-1"}});
      all.push_back({binary, "non_numeric_epochs", {"--out-dir", "{out}", "--epochs", "abc"}});
      all.push_back({binary, "resume_without_checkpoint", {"--out-dir", "{out}", "--resume"}});
      // A failed run leaves no new folder behind: "fresh" must not appear in the snapshot.
      all.push_back({binary, "resume_into_a_new_folder", {"--out-dir", "{out}/fresh", "--resume"}});
    }
    if (name == "09_file_io") {
      all.push_back({binary, "load_missing_file", {"--out-dir", "{out}", "--load", "{out}/nope"}});
      all.push_back({binary, "load_fifo", {"--out-dir", "{out}/fresh", "--load", "{fifo}"}});
      all.push_back({binary, "load_device", {"--out-dir", "{out}/fresh", "--load", "/dev/zero"}});
      all.push_back({binary, "load_plain_text", {"--out-dir", "{out}/fresh", "--load", "{file}"}});
    }
  }
  return all;
}

// Found by GoogleTest through the argument's namespace: names the case instead of dumping its bytes.
void PrintTo(const Case& c, std::ostream* os) {
  *os << fs::path(c.binary).filename().string() << " " << c.what;
}

}  // namespace

class CliErrors : public ::testing::TestWithParam<Case> {
 protected:
  // Prepares the folder, the plain file and the FIFO, and returns the case's command line.
  std::vector<std::string> prepare() {
    const auto fifo_dir = testing_mp::fresh_dir("fifo");
    const auto fifo = fifo_dir / "pipe";
    mkfifo(fifo.c_str(), 0644);
    fs::create_directories(out_);
    std::ofstream(out_ / "keep.txt") << "the learner's file";
    std::ofstream(file_) << "not a folder";
    std::vector<std::string> argv{GetParam().binary};
    for (auto arg : GetParam().args) {
      for (const auto& [token, value] : {std::pair<std::string, std::string>{"{out}", out_.string()},
                                         {"{file}", file_.string()},
                                         {"{fifo}", fifo.string()}}) {
        if (const auto at = arg.find(token); at != std::string::npos) arg.replace(at, token.size(), value);
      }
      argv.push_back(arg);
    }
    return argv;
  }

  fs::path dir_ = testing_mp::fresh_dir();
  fs::path out_ = dir_ / "out";
  fs::path file_ = dir_ / "plain-file";
};

TEST_P(CliErrors, OneErrorLineExitTwoDiskUntouched) {
  const auto argv = prepare();
  const auto before = testing_mp::snapshot(dir_);
  testing_mp::RunOptions options;
  options.timeout_seconds = 30;  // a FIFO must be refused, not waited on
  const auto result = testing_mp::run_lesson(argv, options);
  EXPECT_FALSE(result.timed_out);
  EXPECT_EQ(result.exit_code, common::kExitBadInput) << result.err;
  EXPECT_EQ(result.signal, 0);
  EXPECT_EQ(result.err.rfind("error: ", 0), 0u) << result.err;
  EXPECT_EQ(std::count(result.err.begin(), result.err.end(), '\n'), 1) << result.err;
  EXPECT_LT(result.err.size(), 300u) << "an error line a person can read: " << result.err;
  EXPECT_EQ(testing_mp::snapshot(dir_), before) << "the failed run changed the disk";
}

// The error path is the same code for every bad input of a kind; one parse error and one run-time error
// per lesson (and each lesson's own file errors) cover it.
class CliErrorsWithoutStderr : public CliErrors {};

TEST_P(CliErrorsWithoutStderr, ExitTwoEvenWithStderrClosedOrFull) {
  // Nowhere to write the error must not turn exit 2 into an abort (SIGABRT, exit 134).
  const auto argv = prepare();
  for (const char* stderr_to : {"closed", "/dev/full"}) {
    testing_mp::RunOptions options;
    options.timeout_seconds = 30;
    options.stderr_to = stderr_to;
    const auto result = testing_mp::run_lesson(argv, options);
    EXPECT_EQ(result.signal, 0) << "stderr " << stderr_to;
    EXPECT_EQ(result.exit_code, common::kExitBadInput) << "stderr " << stderr_to;
  }
}

std::string case_name(const ::testing::TestParamInfo<Case>& info) {
  auto name = fs::path(info.param.binary).filename().string() + "_" + info.param.what;
  for (auto& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return name;
}

INSTANTIATE_TEST_SUITE_P(EveryLesson, CliErrors, ::testing::ValuesIn(cases()), case_name);

std::vector<Case> error_path_cases() {
  std::vector<Case> some;
  for (const auto& c : cases()) {
    if (c.what == "non_numeric_seed" || c.what == "unwritable_out_dir" || c.what == "load_device" ||
        c.what == "resume_without_checkpoint")
      some.push_back(c);
  }
  return some;
}

INSTANTIATE_TEST_SUITE_P(EveryLesson, CliErrorsWithoutStderr, ::testing::ValuesIn(error_path_cases()),
                         case_name);
