// Every lesson binary, given a bad flag, a bad value, an unwritable folder or a GPU that is not there,
// answers with one "error: ..." line and exit status 2, and leaves what was on disk as it was.
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "common/lesson.h"
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
  std::vector<std::string> args;  // "{out}" stands for the prepared output folder, "{file}" for a plain file
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
    all.push_back({binary, "unwritable_out_dir", {"--out-dir", "{file}/sub"}});
    all.push_back({binary, "missing_gpu", {"--out-dir", "{out}", "--device", missing_gpu}});
    if (name == "11_checkpoints") {
      all.push_back({binary, "negative_epochs", {"--out-dir", "{out}", "--epochs", "-1"}});
      all.push_back({binary, "non_numeric_epochs", {"--out-dir", "{out}", "--epochs", "abc"}});
      all.push_back({binary, "resume_without_checkpoint", {"--out-dir", "{out}", "--resume"}});
    }
    if (name == "09_file_io")
      all.push_back({binary, "load_missing_file", {"--out-dir", "{out}", "--load", "{out}/nope"}});
  }
  return all;
}

std::map<std::string, std::string> snapshot(const fs::path& dir) {
  std::map<std::string, std::string> files;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    std::ifstream in(entry.path(), std::ios::binary);
    files[fs::relative(entry.path(), dir).string()] =
        entry.is_regular_file()
            ? std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>())
            : "<dir>";
  }
  return files;
}

}  // namespace

class CliErrors : public ::testing::TestWithParam<Case> {};

TEST_P(CliErrors, OneErrorLineExitTwoDiskUntouched) {
  const auto dir = testing_mp::fresh_dir();
  const auto out = dir / "out";
  const auto file = dir / "plain-file";
  fs::create_directories(out);
  std::ofstream(out / "keep.txt") << "the learner's file";
  std::ofstream(file) << "not a folder";
  const auto before = snapshot(dir);

  std::vector<std::string> argv{GetParam().binary};
  for (auto arg : GetParam().args) {
    for (const auto& [token, value] :
         {std::pair<std::string, std::string>{"{out}", out.string()}, {"{file}", file.string()}}) {
      if (const auto at = arg.find(token); at != std::string::npos) arg.replace(at, token.size(), value);
    }
    argv.push_back(arg);
  }
  const auto result = testing_mp::run_program(argv);
  EXPECT_EQ(result.exit_code, common::kExitBadInput) << result.err;
  EXPECT_EQ(result.signal, 0);
  EXPECT_EQ(result.err.rfind("error: ", 0), 0u) << result.err;
  EXPECT_EQ(std::count(result.err.begin(), result.err.end(), '\n'), 1) << result.err;
  EXPECT_EQ(snapshot(dir), before) << "the failed run changed the disk";
}

INSTANTIATE_TEST_SUITE_P(EveryLesson, CliErrors, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           auto name =
                               fs::path(info.param.binary).filename().string() + "_" + info.param.what;
                           for (auto& c : name) {
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           }
                           return name;
                         });
