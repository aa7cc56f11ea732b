// The common library: device selection and the options every lesson shares.
#include <malloc.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "common/device.h"
#include "common/lesson.h"
#include "tests/testing.h"

TEST(ParseDevice, CpuIsTheCpu) { EXPECT_EQ(common::parse_device("cpu"), torch::Device(torch::kCPU)); }

TEST(ParseDevice, AutoIsTryGpu) { EXPECT_EQ(common::parse_device("auto"), common::try_gpu()); }

TEST(ParseDevice, MalformedStringsAreRejectedByName) {
  for (const std::string bad : {"", "gpu", "CUDA", "cuda:", "cuda:x", "cuda:-1", "cpu:0", "cuda:1:2"}) {
    try {
      common::parse_device(bad);
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("'" + bad + "'"), std::string::npos) << e.what();
    }
  }
}

TEST(ParseDevice, CudaWithoutThatGpuIsAClearError) {
  const auto count = torch::cuda::is_available() ? torch::cuda::device_count() : 0;
  const std::string missing = "cuda:" + std::to_string(count);
  EXPECT_THROW(common::parse_device(missing), std::invalid_argument);
  if (count == 0) {
    try {
      common::parse_device("cuda");
      ADD_FAILURE() << "cuda accepted without CUDA";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("--device cpu"), std::string::npos) << e.what();
    }
  }
}

TEST(ParseDevice, ExistingGpusAreAccepted) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "CUDA is not available here";
  EXPECT_EQ(common::parse_device("cuda"), torch::Device(torch::kCUDA, 0));
  EXPECT_EQ(common::parse_device("cuda:0"), torch::Device(torch::kCUDA, 0));
}

TEST(TryGpu, FallsBackToCpuForAGpuThatIsNotThere) {
  EXPECT_EQ(common::try_gpu(1000), torch::Device(torch::kCPU));
  EXPECT_EQ(common::try_gpu(-1), torch::Device(torch::kCPU));
  if (!torch::cuda::is_available()) EXPECT_EQ(common::try_gpu(), torch::Device(torch::kCPU));
}

TEST(TryAllGpus, IsNeverEmpty) {
  const auto devices = common::try_all_gpus();
  ASSERT_FALSE(devices.empty());
  if (!torch::cuda::is_available()) {
    ASSERT_EQ(devices.size(), 1u);
    EXPECT_EQ(devices[0], torch::Device(torch::kCPU));
  } else {
    EXPECT_EQ(devices.size(), torch::cuda::device_count());
  }
}

// The options every lesson shares, through a real lesson binary.
struct CliCase {
  std::vector<std::string> args;
  std::string expected_in_error;
};

class LessonCli : public ::testing::TestWithParam<CliCase> {};

TEST_P(LessonCli, BadOptionsExitTwoWithOneErrorLine) {
  const auto& args = GetParam().args;
  std::vector<std::string> argv{MP_LESSON_BINARY};
  if (std::find(args.begin(), args.end(), "--out-dir") == args.end()) {
    argv.insert(argv.end(), {"--out-dir", testing_mp::fresh_dir().string()});
  }
  argv.insert(argv.end(), args.begin(), args.end());
  const auto result = testing_mp::run_program(argv);
  EXPECT_EQ(result.exit_code, common::kExitBadInput) << result.err;
  EXPECT_EQ(result.err.rfind("error: ", 0), 0u) << result.err;
  EXPECT_EQ(std::count(result.err.begin(), result.err.end(), '\n'), 1) << result.err;
  EXPECT_NE(result.err.find(GetParam().expected_in_error), std::string::npos) << result.err;
}

INSTANTIATE_TEST_SUITE_P(Cases, LessonCli,
                         ::testing::Values(CliCase{{"--no-such-flag"}, "--no-such-flag"},
                                           CliCase{{"--seed", "abc"}, "abc"}, CliCase{{"--seed", "-3"}, "-3"},
                                           CliCase{{"--device", "gpu"}, "'gpu'"},
                                           CliCase{{"--device", "cuda:99"}, "cuda:99"},
                                           CliCase{{"--out-dir", "/proc/version/x"}, "/proc/version/x"}));

TEST(LessonCli, HelpListsTheSharedOptionsAndExitsZero) {
  const auto result = testing_mp::run_program({MP_LESSON_BINARY, "--help"});
  EXPECT_EQ(result.exit_code, 0);
  for (const char* option : {"--device", "--seed", "--out-dir", "--help"}) {
    EXPECT_NE(result.out.find(option), std::string::npos) << option;
  }
}

TEST(LessonCli, DefaultsRunAndWriteValuesJson) {
  const auto dir = testing_mp::fresh_dir();
  const auto result = testing_mp::run_program({MP_LESSON_BINARY, "--out-dir", dir.string()});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_TRUE(std::filesystem::exists(dir / "values.json"));
}

// common/malloc_policy.cpp: every program of the suite keeps large blocks in glibc's heap. mallinfo2's hblks
// counts the blocks glibc took from mmap; AddressSanitizer replaces malloc, and it means nothing there.
#if defined(__SANITIZE_ADDRESS__)
#define MP_MALLOC_REPLACED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MP_MALLOC_REPLACED 1
#endif
#endif

TEST(MallocPolicy, ABlockOf16MiBComesFromTheHeap) {
#ifdef MP_MALLOC_REPLACED
  GTEST_SKIP() << "AddressSanitizer replaces malloc";
#endif
  const auto before = mallinfo2();
  void* block = std::malloc(size_t{16} << 20);
  ASSERT_NE(block, nullptr);
  const auto during = mallinfo2();
  std::free(block);
  EXPECT_EQ(during.hblks, before.hblks) << "the block was mapped, not taken from the heap";
}

TEST(MallocPolicy, WithoutItGlibcMapsTheSameBlock) {
#ifdef MP_MALLOC_REPLACED
  GTEST_SKIP() << "AddressSanitizer replaces malloc";
#endif
  // The test above, in a process of its own, first with the policy (passes), then with glibc as it is
  // (MP_MALLOC=glibc): there it fails, so it is the policy that passes it.
  const std::vector<std::string> argv{std::filesystem::read_symlink("/proc/self/exe").string(),
                                      "--gtest_filter=MallocPolicy.ABlockOf16MiBComesFromTheHeap"};
  EXPECT_EQ(testing_mp::run_program(argv).exit_code, 0);
  testing_mp::RunOptions glibc;
  glibc.environment = {"MP_MALLOC=glibc"};
  EXPECT_NE(testing_mp::run_program(argv, glibc).exit_code, 0);
}
