// Hostile weights files (made by tests/hostile/make_hostile.py at build time, each aimed at one check)
// given to the real lessons: every one is refused with one error line naming the file and what it
// found, exit status 2, no signal, within seconds, within bounded memory, the output folder unchanged,
// and nothing from the file run. And the contrast: LibTorch's own torch::load runs the same file's code.
#include <fstream>
#include <map>

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "common/lesson.h"
#include "common/serialize.h"
#include "tests/testing.h"

namespace fs = std::filesystem;

namespace {

const fs::path kHostile = fs::path(MP_BINARY_DIR) / "hostile";

// Seconds a refusal may take: parsing stops at the first bad byte, so even the 68 MB file is refused in
// about a second here; 20 s leaves room for a loaded CI machine.
constexpr double kTimeLimit = 20;
// Peak memory above a normal run of the same lesson: the largest file is refused before its pickle is
// read, and the memo and stack limits keep the machine's own memory under about 60 MB.
constexpr long kExtraMemoryKb = 100L * 1024;

std::map<std::string, std::string> cases() {
  std::ifstream in(kHostile / "cases.json");
  if (!in) return {};
  return nlohmann::json::parse(in).get<std::map<std::string, std::string>>();
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::map<std::string, std::string> snapshot(const fs::path& dir) {
  std::map<std::string, std::string> files;
  for (const auto& entry : fs::recursive_directory_iterator(dir))
    if (entry.is_regular_file()) files[fs::relative(entry.path(), dir)] = read_text(entry.path());
  return files;
}

std::vector<std::string> case_names() {
  std::vector<std::string> names;
  for (const auto& [name, expected] : cases()) names.push_back(name);
  return names;
}

}  // namespace

TEST(HostileFiles, AreThere) {
  // The generator runs at build time; an empty table would make every test below vanish, not fail.
  EXPECT_GE(cases().size(), 20u) << "run the build: it writes " << (kHostile / "cases.json");
}

class HostileFile : public ::testing::TestWithParam<std::string> {};

TEST_P(HostileFile, IsRefusedByLoadWithOneErrorAndNothingChanged) {
  const auto file = kHostile / (GetParam() + ".pt");
  const auto expected = cases().at(GetParam());
  const auto marker = kHostile / "marker-refused";
  fs::remove(marker);
  const auto out_dir = testing_mp::fresh_dir("out");
  const auto good = testing_mp::run_program({MP_FILE_IO_BINARY, "--out-dir", out_dir.string()});
  ASSERT_EQ(good.exit_code, 0) << good.err;
  const auto before = snapshot(out_dir);

  testing_mp::RunOptions options;
  options.timeout_seconds = kTimeLimit;
  const auto bad = testing_mp::run_program(
      {MP_FILE_IO_BINARY, "--out-dir", out_dir.string(), "--load", file.string()}, options);
  EXPECT_FALSE(bad.timed_out) << "still running after " << kTimeLimit << " s";
  EXPECT_EQ(bad.signal, 0);
  EXPECT_EQ(bad.exit_code, common::kExitBadInput) << bad.err;
  EXPECT_EQ(bad.err.rfind("error: ", 0), 0u) << bad.err;
  EXPECT_EQ(std::count(bad.err.begin(), bad.err.end(), '\n'), 1) << bad.err;
  EXPECT_NE(bad.err.find(file.string()), std::string::npos)
      << "the error does not name the file: " << bad.err;
  EXPECT_NE(bad.err.find(expected), std::string::npos) << "expected '" << expected << "' in: " << bad.err;
  EXPECT_LE(bad.max_rss_kb, good.max_rss_kb + kExtraMemoryKb)
      << "peak " << bad.max_rss_kb << " KB against " << good.max_rss_kb << " KB for a normal run";
  EXPECT_EQ(snapshot(out_dir), before) << "the failed run changed the output folder";
  EXPECT_FALSE(fs::exists(marker)) << "code from the file ran: it wrote " << marker;
}

INSTANTIATE_TEST_SUITE_P(Cases, HostileFile, ::testing::ValuesIn(case_names()),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(HostileFile);

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

TEST(HostileFiles, ResumeSkipsAPlantedCheckpointWithoutRunningIt) {
  const auto file = kHostile / "setstate_writes.pt";
  if (!fs::exists(file)) GTEST_SKIP() << "python3-torch is missing, so no TorchScript archive was made";
  const auto marker = kHostile / "marker-refused";
  fs::remove(marker);
  const auto out_dir = testing_mp::fresh_dir();
  const std::vector<std::string> args{MP_CHECKPOINTS_BINARY,
                                      "--device",
                                      "cpu",
                                      "--out-dir",
                                      out_dir.string(),
                                      "--examples",
                                      "64",
                                      "--batch-size",
                                      "32",
                                      "--checkpoint-every",
                                      "1"};
  auto first = args;
  first.insert(first.end(), {"--epochs", "1"});
  ASSERT_EQ(testing_mp::run_program(first).exit_code, 0);
  // The newest name in the folder, so that --resume tries it first.
  fs::copy_file(file, out_dir / "checkpoints" / "checkpoint-00000099.pt");
  auto resume = args;
  resume.insert(resume.end(), {"--epochs", "2", "--resume"});
  const auto result = testing_mp::run_program(resume);
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.err.find("warning: skipping checkpoint-00000099.pt"), std::string::npos) << result.err;
  EXPECT_NE(result.err.find("defines __setstate__"), std::string::npos) << result.err;
  EXPECT_NE(result.out.find("resumed from checkpoint-00000002.pt"), std::string::npos) << result.out;
  EXPECT_FALSE(fs::exists(marker)) << "code from the planted checkpoint ran";
}
