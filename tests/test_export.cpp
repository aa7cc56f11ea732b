// Outcomes of lesson 14: the package AOTInductor compiled from Python runs from C++ and gives Python's eager
// output within the stated tolerance (a check that can fail), and only the build's own packages run: any
// other file, a wrong input or a wrong seed is one error line and exit status 2.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "common/weights/state_dict.h"
#include "lessons/09_file_io/file_io.h"
#include "lessons/14_export/export.h"
#include "lessons/14_export/packages.h"
#include "tests/testing.h"

namespace fs = std::filesystem;
namespace ex = export_lesson;

namespace {

const fs::path kDir = MP_EXPORT_DIR;

// The lesson with `extra` options, into a folder of its own.
testing_mp::LessonRun run_export(const std::vector<std::string>& extra) {
  return testing_mp::run_lesson(
      testing_mp::with({MP_LESSON_BINARY, "--out-dir", testing_mp::fresh_dir("export-out").string()}, extra));
}

void expect_one_error_line(const testing_mp::RunResult& result, const std::string& needle) {
  EXPECT_EQ(result.exit_code, 2) << result.err;
  EXPECT_EQ(result.err.rfind("error: ", 0), 0u) << result.err;
  EXPECT_EQ(std::count(result.err.begin(), result.err.end(), '\n'), 1) << result.err;
  EXPECT_NE(result.err.find(needle), std::string::npos) << result.err;
}

// A copy of the build's folder, to change one thing in.
fs::path copy_of_build_dir() {
  const auto dir = testing_mp::fresh_dir("export-packages");
  for (const auto& entry : fs::directory_iterator(kDir))
    fs::copy(entry.path(), dir / entry.path().filename());
  return dir;
}

}  // namespace

TEST(Export, PackageOutputsEqualPythonsEagerOutputs) {
  const auto result = run_export({"--device", "cpu"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  for (const char* name : {"X", "X1", "X64"}) {
    EXPECT_NE(result.out.find(
                  fmt::format("package({}) equals Python's eager output (rtol 1e-5, atol 1e-5): True", name)),
              std::string::npos)
        << result.out;
  }
  EXPECT_NE(result.out.find("Y_clone == Y: True"), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("fused package(X) equals Python's eager output (rtol 1e-5, atol 1e-5): True"),
            std::string::npos)
      << result.out;
  EXPECT_NE(result.out.find("bounded package(X) equals the while loop's output (rtol 1e-5, atol 1e-5): True"),
            std::string::npos)
      << result.out;
}

TEST(Export, TheToleranceCheckCanFail) {
  const auto recorded = ex::Recorded::read(kDir);
  ex::Package mlp(kDir / "mlp.pt2", MP_MLP_PACKAGE_SHA1);
  const auto out = mlp.run({recorded.X64})[0];
  ASSERT_TRUE(ex::matches(out, recorded.Y64));
  // One value moved by three times the tolerance is caught; by a third of it, it is not.
  auto far = recorded.Y64.clone();
  far[5][3] += 3 * (ex::kAtol + ex::kRtol * far[5][3].abs().item<double>());
  EXPECT_FALSE(ex::matches(out, far));
  auto near = recorded.Y64.clone();
  near[5][3] += (ex::kAtol + ex::kRtol * near[5][3].abs().item<double>()) / 3;
  EXPECT_TRUE(ex::matches(out, near));
  // Other shapes or dtypes never match, however close the values.
  EXPECT_FALSE(ex::matches(out.slice(0, 0, 63), recorded.Y64.slice(0, 0, 64)));
  EXPECT_FALSE(ex::matches(out.to(torch::kDouble), recorded.Y64));
}

TEST(Export, ThePackageRunsAtEveryBatchSizeItsDimensionAllows) {
  const auto recorded = ex::Recorded::read(kDir);
  ex::Package mlp(kDir / "mlp.pt2", MP_MLP_PACKAGE_SHA1);
  // The lesson 09 class with the same parameters computes what the package computes.
  file_io::MLP clone;
  common::load_state_dict(*clone, kDir / "mlp.params");
  torch::NoGradGuard no_grad;
  for (const int64_t batch : {ex::kMinBatch, int64_t{7}, int64_t{333}, ex::kMaxBatch}) {
    const auto X = torch::randn({batch, ex::kFeatures});
    EXPECT_TRUE(ex::matches(mlp.run({X})[0], clone->forward(X))) << "batch " << batch;
  }
}

TEST(Export, TheFusedPackageRunsOnlyWhereLesson12sLibraryIsLoaded) {
  // This test program does not link lesson 12's library, so the operator the package calls is unknown here.
  ASSERT_FALSE(c10::Dispatcher::singleton().findSchema({"modelos::linear_relu", ""}).has_value());
  const auto recorded = ex::Recorded::read(kDir);
  EXPECT_THROW(
      {
        ex::Package fused(kDir / "fused_mlp.pt2", MP_FUSED_PACKAGE_SHA1);
        fused.run({recorded.X});
      },
      std::exception);
  // The lesson, which links it, runs the same package (PackageOutputsEqualPythonsEagerOutputs).
}

TEST(Export, BatchBoundsAreTheTwins) {
  const auto twin = testing_mp::read_text(fs::path(MP_SOURCE_DIR) / "data/python/14_export.py");
  std::smatch match;
  ASSERT_TRUE(std::regex_search(twin, match, std::regex(R"(Dim\("batch", min=(\d+), max=(\d+)\))")));
  EXPECT_EQ(std::stoll(match[1]), ex::kMinBatch);
  EXPECT_EQ(std::stoll(match[2]), ex::kMaxBatch);
}

TEST(Export, OnlyTheBuildsOwnPackagesRun) {
  // The opposite case first: an unchanged copy of the build's folder runs.
  const auto same = copy_of_build_dir();
  const auto ok = run_export({"--package-dir", same.string()});
  ASSERT_EQ(ok.exit_code, 0) << ok.err;

  const auto changed = copy_of_build_dir();
  {
    std::fstream f(changed / "mlp.pt2", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(1000);
    f.put('\x7f');
  }
  expect_one_error_line(run_export({"--package-dir", changed.string()}), "not the package this build made");

  // The other package in the MLP's place: a real package, not this one.
  const auto swapped = copy_of_build_dir();
  fs::copy_file(swapped / "fixed_hidden_mlp.pt2", swapped / "mlp.pt2", fs::copy_options::overwrite_existing);
  expect_one_error_line(run_export({"--package-dir", swapped.string()}), "not the package this build made");

  const auto truncated = copy_of_build_dir();
  fs::resize_file(truncated / "fixed_hidden_mlp.pt2", 0);
  expect_one_error_line(run_export({"--package-dir", truncated.string()}), "empty, not a package");

  const auto missing = copy_of_build_dir();
  fs::remove(missing / "mlp.pt2");
  expect_one_error_line(run_export({"--package-dir", missing.string()}), "mlp.pt2: cannot open it");

  expect_one_error_line(run_export({"--package-dir", "/nonexistent/14_export"}),
                        "export.json: cannot open it");
}

TEST(Export, WrongInputIsOneErrorLine) {
  const auto dir = testing_mp::fresh_dir("export-inputs");
  const auto write = [&](const std::string& name, const c10::IValue& value) {
    common::save_for_python(value, dir / name);
    return (dir / name).string();
  };
  // The opposite case: a [3, 20] float32 tensor runs.
  const auto good = run_export({"--input", write("good.pt", torch::rand({3, 20}))});
  ASSERT_EQ(good.exit_code, 0) << good.err;
  EXPECT_NE(good.out.find("good.pt) = "), std::string::npos) << good.out;

  expect_one_error_line(run_export({"--input", write("wide.pt", torch::rand({3, 21}))}), "this is [3, 21]");
  expect_one_error_line(run_export({"--input", write("flat.pt", torch::rand({20}))}), "this is [20]");
  expect_one_error_line(run_export({"--input", write("empty.pt", torch::rand({0, 20}))}), "this is [0, 20]");
  expect_one_error_line(run_export({"--input", write("huge.pt", torch::rand({ex::kMaxBatch + 1, 20}))}),
                        fmt::format("this is [{}, 20]", ex::kMaxBatch + 1));
  expect_one_error_line(run_export({"--input", write("double.pt", torch::rand({3, 20}, torch::kDouble))}),
                        "float32 input, this is Double");
  c10::impl::GenericList list(c10::TensorType::get());
  list.push_back(torch::rand({3, 20}));
  expect_one_error_line(run_export({"--input", write("list.pt", list)}), "not a tensor");
  expect_one_error_line(run_export({"--input", (dir / "absent.pt").string()}), "absent.pt");
}

// eager.pt is input too: each tensor it gives a package is checked against what that package was exported
// for before the package runs (a package checks nothing: AOTInductor's own error is a page of backtrace).
TEST(Export, EagerPtsInputsAreCheckedBeforeAPackageRunsThem) {
  const auto with_changed = [](const char* key, const torch::Tensor& value) {
    const auto dir = copy_of_build_dir();
    auto dict = common::read_value(dir / "eager.pt").toGenericDict();
    dict.insert_or_assign(std::string(key), value);
    common::save_for_python(dict, dir / "eager.pt");
    return run_export({"--package-dir", dir.string()});
  };
  // The opposite case: eager.pt written again with its own X_fixed runs.
  const auto recorded = ex::Recorded::read(kDir);
  const auto same = with_changed("X_fixed", recorded.X_fixed);
  ASSERT_EQ(same.exit_code, 0) << same.err;

  expect_one_error_line(with_changed("X_fixed", torch::rand({0, 20})),
                        "'X_fixed': the package takes input of "
                        "shape [2, 20] (exported with that one "
                        "shape), this is [0, 20]");
  expect_one_error_line(with_changed("X_fixed", torch::rand({3, 7})), "'X_fixed': the package takes input");
  expect_one_error_line(with_changed("X_fixed", torch::rand({3, 20})), "this is [3, 20]");
  expect_one_error_line(with_changed("X_fixed", torch::ones({2, 20}, torch::kLong)),
                        "'X_fixed': the package takes float32 input, this is Long");
  expect_one_error_line(with_changed("X1", torch::rand({1, 7})), "'X1': the package takes input");
  expect_one_error_line(with_changed("X64", torch::rand({64, 20}, torch::kDouble)),
                        "'X64': the package takes "
                        "float32 input");
}

TEST(Export, AnotherSeedOrDeviceIsRefused) {
  const auto recorded = ex::Recorded::read(kDir);
  expect_one_error_line(run_export({"--seed", std::to_string(recorded.seed + 1)}),
                        fmt::format("hold the weights of seed {}", recorded.seed));
  // Where there is a GPU the CPU package says so; where there is none, --device says that instead.
  expect_one_error_line(run_export({"--device", "cuda"}), "cuda");
}
