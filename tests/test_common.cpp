// The common library: device selection and the options every lesson shares.
#include <malloc.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include <c10/core/CPUAllocator.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "common/lesson/device.h"
#include "common/lesson/lesson.h"
#include "common/lesson/print.h"
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
  const auto result = testing_mp::run_lesson(argv);
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
  const auto result = testing_mp::run_lesson({MP_LESSON_BINARY, "--help"});
  EXPECT_EQ(result.exit_code, 0);
  for (const char* option : {"--device", "--seed", "--out-dir", "--help"}) {
    EXPECT_NE(result.out.find(option), std::string::npos) << option;
  }
}

TEST(LessonCli, DefaultsRunAndWriteValuesJson) {
  const auto dir = testing_mp::fresh_dir();
  const auto result = testing_mp::run_lesson({MP_LESSON_BINARY, "--out-dir", dir.string()});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_TRUE(std::filesystem::exists(result.out_dir / "values.json"));
}

// common/lesson/malloc_policy.cpp: every program of the suite keeps large blocks in glibc's heap. mallinfo2's
// hblks counts the blocks glibc took from mmap; AddressSanitizer replaces malloc, and it means nothing there.
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

namespace {

// Runs one test of this program in a process of its own, first with the policy, then with glibc and LibTorch
// as they are (MP_MALLOC=glibc): it must pass the first time and fail the second, so that it is the policy
// that passes it.
void expect_only_the_policy_passes(const std::string& test) {
  const std::vector<std::string> argv{std::filesystem::read_symlink("/proc/self/exe").string(),
                                      "--gtest_filter=" + test};
  EXPECT_EQ(testing_mp::run_program(argv).exit_code, 0);
  testing_mp::RunOptions glibc;
  glibc.environment = {"MP_MALLOC=glibc"};
  EXPECT_NE(testing_mp::run_program(argv, glibc).exit_code, 0);
}

}  // namespace

TEST(MallocPolicy, WithoutItGlibcMapsTheSameBlock) {
#ifdef MP_MALLOC_REPLACED
  GTEST_SKIP() << "AddressSanitizer replaces malloc";
#endif
  expect_only_the_policy_passes("MallocPolicy.ABlockOf16MiBComesFromTheHeap");
}

// The front for tensor blocks of 1 MiB and more that common/lesson/malloc_policy.cpp puts before LibTorch's
// CPU allocator. A fresh anonymous mapping is all zeros, so a new tensor that still shows the bytes of one
// freed before it came from a kept block.
namespace {

constexpr int64_t kLargeFloats = int64_t{16} << 20;  // 64 MiB, the activations of batch 4096 at width 4096

bool shows(const torch::Tensor& t, float value) { return t.eq(value).all().item<bool>(); }

}  // namespace

TEST(LargeBlocks, AFreedBlockServesTheNextTensorOfItsSize) {
#ifdef MP_MALLOC_REPLACED
  GTEST_SKIP() << "AddressSanitizer replaces malloc, and the policy leaves LibTorch's allocator alone there";
#endif
  torch::empty({kLargeFloats}).fill_(7);
  EXPECT_TRUE(shows(torch::empty({kLargeFloats}), 7)) << "the block was mapped again, not kept";
}

TEST(LargeBlocks, WithoutThePolicyEachTensorIsMappedAfresh) {
#ifdef MP_MALLOC_REPLACED
  GTEST_SKIP() << "AddressSanitizer replaces malloc";
#endif
  expect_only_the_policy_passes("LargeBlocks.AFreedBlockServesTheNextTensorOfItsSize");
}

TEST(LargeBlocks, ARequestOfAnotherSizeFirstGivesKeptBlocksBack) {
#ifdef MP_MALLOC_REPLACED
  GTEST_SKIP() << "AddressSanitizer replaces malloc";
#endif
  torch::empty({kLargeFloats}).fill_(7);
  ASSERT_TRUE(shows(torch::empty({kLargeFloats}), 7));
  // 80 MiB finds no block of its size: the kept 64 MiB one is given back before 80 MiB are mapped, and when
  // the 80 MiB tensor is freed, the next 64 MiB request gives that one back in turn.
  torch::empty({kLargeFloats + (int64_t{4} << 20)}).fill_(3);
  EXPECT_TRUE(shows(torch::empty({kLargeFloats}), 0)) << "a kept block outlived a request it did not fit";
}

TEST(LargeBlocks, AtMostOneGiBIsKept) {
#ifdef MP_MALLOC_REPLACED
  GTEST_SKIP() << "AddressSanitizer replaces malloc";
#endif
  // 34 tensors of 32 MiB live at once, 1.1 GiB, then all freed. Each block is 34 MiB with its header and
  // rounding, so at most 30 of them fit in 1 GiB; the rest must have been given back.
  constexpr int64_t kFloats = int64_t{8} << 20;
  constexpr size_t kMapped = size_t{34} << 20;
  std::vector<torch::Tensor> live;
  live.reserve(34);
  for (int i = 0; i < 34; ++i) live.push_back(torch::empty({kFloats}).fill_(5));
  live.clear();
  for (int i = 0; i < 34; ++i) live.push_back(torch::empty({kFloats}));
  const auto kept =
      std::count_if(live.begin(), live.end(), [](const torch::Tensor& t) { return shows(t, 5); });
  EXPECT_GT(kept, 0);
  EXPECT_LE(static_cast<size_t>(kept) * kMapped, size_t{1} << 30) << kept << " blocks were kept";
}

TEST(LargeBlocks, ATensorNoMemoryCanHoldFailsWithLibTorchsOwnError) {
#ifdef MP_MALLOC_REPLACED
  GTEST_SKIP() << "AddressSanitizer aborts on such a request rather than failing it";
#endif
  // 2^62 bytes: no mapping succeeds, and the request ends in LibTorch's allocator, which throws.
  EXPECT_THROW(torch::empty({int64_t{1} << 60}), c10::Error);
  torch::empty({kLargeFloats}).fill_(7);
  EXPECT_TRUE(shows(torch::empty({kLargeFloats}), 7)) << "the front stopped keeping blocks after the failure";
}

TEST(LargeBlocks, RawAllocationsGoBackToTheSideTheyCameFrom) {
  // LibTorch's raw interface hands a block back by its address alone; a small block belongs to LibTorch's
  // own allocator and a large one to the front, and freeing either through the other would crash.
  c10::Allocator* allocator = c10::GetCPUAllocator();
  for (const size_t bytes : {size_t{64}, size_t{1} << 20, size_t{40} << 20}) {
    void* block = allocator->raw_allocate(bytes);
    ASSERT_NE(block, nullptr);
    std::memset(block, 1, bytes);
    allocator->raw_deallocate(block);
  }
}

TEST(LargeBlocks, PythonGetsTheSamePolicyFromTheLibrary) {
#ifdef MP_MALLOC_REPLACED
  GTEST_SKIP() << "a library built with AddressSanitizer loads only into an instrumented process";
#endif
  const std::string python = testing_mp::python_with_torch();
  if (python.empty()) GTEST_SKIP() << "no Python with PyTorch";
  // Without the library, Python's second tensor is a fresh mapping; with it, the kept block.
  const std::string script = R"(
import ctypes, sys, torch
def second_shows_first():
    torch.empty(16 << 20).fill_(7)
    return bool((torch.empty(16 << 20) == 7).all())
print(second_shows_first())
ctypes.CDLL(sys.argv[1])
print(second_shows_first())
)";
  const auto result = testing_mp::run_program(
      {python, "-c", script, std::string(MP_BINARY_DIR) + "/lib/libmodelos_malloc.so"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.out, "False\nTrue\n");
}

TEST(Printable, EscapesEveryCharacterPythonDoesNotCallPrintable) {
  EXPECT_EQ(common::printable("a\xe2\x80\xa8"
                              "b"),
            "a\\u2028b");                                   // line separator
  EXPECT_EQ(common::printable("\xe2\x80\xa9"), "\\u2029");  // paragraph separator
  EXPECT_EQ(common::printable("\xe2\x80\xae"
                              "abc"),
            "\\u202eabc");                                  // right-to-left override
  EXPECT_EQ(common::printable("\xe2\x81\xa6"), "\\u2066");  // left-to-right isolate
  EXPECT_EQ(common::printable("\xef\xbb\xbf"
                              "x"),
            "\\ufeffx");                                            // byte order mark
  EXPECT_EQ(common::printable("\xe2\x80\x8b"), "\\u200b");          // zero-width space
  EXPECT_EQ(common::printable("\xc2\xa0"), "\\u00a0");              // no-break space
  EXPECT_EQ(common::printable("\xee\x80\x80"), "\\ue000");          // private use
  EXPECT_EQ(common::printable("\xf3\xa0\x80\x81"), "\\U000e0001");  // language tag
  EXPECT_EQ(common::printable("\xef\xbf\xbf"), "\\uffff");          // noncharacter
  EXPECT_EQ(common::printable("\x1b[31m\x07"), "\\x1b[31m\\x07");   // C0
  EXPECT_EQ(common::printable("\xc2\x85"), "\\xc2\\x85");           // C1
}

TEST(Printable, KeepsLettersOfEveryScriptAndSymbols) {
  const std::string text = "pesos ñandú 中文 Ελληνικά 😀 → ∑ €";
  EXPECT_EQ(common::printable(text), text);
}
