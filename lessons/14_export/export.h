#pragma once
// torch.export and AOTInductor from C++: the packages the build made, checked before they are loaded, the
// inputs they accept, and the tolerance against Python's eager output.
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <c10/util/hash.h>
#include <fmt/format.h>
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>
#include <torch/torch.h>
#include <CLI/CLI.hpp>

#include <nlohmann/json.hpp>

#include "common/lesson/device.h"
#include "common/lesson/options.h"
#include "common/lesson/print.h"
#include "common/weights/state_dict.h"

namespace export_lesson {

// Both sides compute each output as sums of 20 and 256 float32 products; only the order of the additions
// may differ (the package's own kernels, fused bias and ReLU, vectorised loops). Reordering a sum of n
// float32 terms moves it by at most about n * 2^-24 times the sum of the terms' magnitudes: for n = 256 and
// this model's terms (magnitudes below 1) that is under 1.6e-5 in the worst case, and the typical
// difference, which grows as sqrt(n), is near 1e-6. Hence rtol = atol = 1e-5.
inline constexpr double kRtol = 1e-5;
inline constexpr double kAtol = 1e-5;
// The input the MLP's package takes: [batch, 20] float32, with the batch dimension exported as dynamic
// between these bounds (torch.export.Dim("batch", min=1, max=1024) in the twin).
inline constexpr int64_t kFeatures = 20;
inline constexpr int64_t kMinBatch = 1;
inline constexpr int64_t kMaxBatch = 1024;
// The bounded FixedHiddenMLP's package was exported from one input, torch.rand(2, 20): its batch is fixed.
inline constexpr int64_t kFixedBatch = 2;

// Same shape and dtype, and allclose with the lesson's tolerance.
inline bool matches(const torch::Tensor& out, const torch::Tensor& expected) {
  return out.sizes() == expected.sizes() && out.scalar_type() == expected.scalar_type() &&
         torch::allclose(out, expected, kRtol, kAtol);
}

// An input a package can take, or an error naming where it came from and what to do: float32 of shape
// [batch, 20], the batch between the bounds the package was exported with. A package is native code that
// checks nothing, and AOTInductor's own error on a bad input is a page of backtrace.
inline void check_input(const torch::Tensor& X, const std::string& source, int64_t min_batch = kMinBatch,
                        int64_t max_batch = kMaxBatch) {
  if (X.scalar_type() != torch::kFloat)
    throw std::runtime_error(
        fmt::format("{}: the package takes float32 input, this is {}; convert it in "
                    "Python with x.float() before torch.save",
                    source, c10::toString(X.scalar_type())));
  const auto batch = min_batch == max_batch ? std::to_string(min_batch) : "batch";
  const auto bounds = min_batch == max_batch ? std::string("(exported with that one shape)")
                                             : fmt::format("with batch from {} to {} (its dynamic dimension)",
                                                           min_batch, max_batch);
  if (X.dim() != 2 || X.size(1) != kFeatures || X.size(0) < min_batch || X.size(0) > max_batch)
    throw std::runtime_error(fmt::format("{}: the package takes input of shape [{}, {}] {}, this is {}",
                                         source, batch, kFeatures, bounds, common::format_shape(X.sizes())));
}

inline std::string read_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw std::runtime_error(
        fmt::format("{}: cannot open it; the build makes it (scripts/build.sh)", path.string()));
  std::ostringstream bytes;
  bytes << in.rdbuf();
  if (in.bad()) throw std::runtime_error(fmt::format("{}: cannot read it", path.string()));
  return bytes.str();
}

// TMPDIR set to a folder for as long as it lives, then as it was (the lesson is one thread there).
class TemporaryDirectory {
 public:
  explicit TemporaryDirectory(const std::filesystem::path& dir) {
    if (const char* old = std::getenv("TMPDIR")) old_ = old;
    ::setenv("TMPDIR", dir.c_str(), 1);
  }
  ~TemporaryDirectory() {
    if (old_) {
      ::setenv("TMPDIR", old_->c_str(), 1);
    } else {
      ::unsetenv("TMPDIR");
    }
  }
  TemporaryDirectory(const TemporaryDirectory&) = delete;
  TemporaryDirectory& operator=(const TemporaryDirectory&) = delete;

 private:
  std::optional<std::string> old_;
};

// A package is a zip with a compiled shared library in it, which the loader maps and runs. So a package is
// loaded only when its bytes are those the build recorded (SHA-1, from CMake), and from a private copy of
// exactly those bytes, so that nothing can swap the file between the check and the load.
class Package {
 public:
  Package(const std::filesystem::path& path, const std::string& expected_sha1) {
    const auto bytes = read_bytes(path);
    if (bytes.empty()) throw std::runtime_error(fmt::format("{}: empty, not a package", path.string()));
    const auto sha1 = c10::sha1(bytes).str();
    if (sha1 != expected_sha1)
      throw std::runtime_error(
          fmt::format("{}: not the package this build made (SHA-1 {}, the build's is {}); a package is "
                      "native code, so this "
                      "lesson runs only its own: rebuild (scripts/build.sh) to make it again",
                      path.string(), sha1, expected_sha1));
    std::string dir_template = (std::filesystem::temp_directory_path() / "aoti-package-XXXXXX").string();
    if (mkdtemp(dir_template.data()) == nullptr)
      throw std::runtime_error(fmt::format("cannot make a private folder in {} for the package",
                                           std::filesystem::temp_directory_path().string()));
    private_dir_ = dir_template;
    const auto copy = private_dir_ / path.filename();
    {
      std::ofstream out(copy, std::ios::binary);
      out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
      if (!out.flush()) {
        remove_private_dir();
        throw std::runtime_error(fmt::format("{}: cannot write a private copy (disk full?)", copy.string()));
      }
    }
    try {
      // The loader unpacks the package into a folder of its own under TMPDIR, and leaves it behind when
      // it fails: made inside the private folder, it goes with it.
      const TemporaryDirectory inside(private_dir_);
      loader_ = std::make_unique<torch::inductor::AOTIModelPackageLoader>(copy.string());
    } catch (const std::exception& e) {
      remove_private_dir();
      throw std::runtime_error(
          fmt::format("{}: AOTInductor cannot load it: {}", path.string(), common::printable(e.what(), 400)));
    }
  }
  ~Package() {
    loader_.reset();
    remove_private_dir();
  }
  Package(const Package&) = delete;
  Package& operator=(const Package&) = delete;

  // The device the package was compiled for ("cpu", "cuda"), from its metadata.
  std::string device() {
    const auto metadata = loader_->get_metadata();
    const auto it = metadata.find("AOTI_DEVICE_KEY");
    return it == metadata.end() ? std::string("cpu") : it->second;
  }

  std::vector<torch::Tensor> run(const std::vector<torch::Tensor>& inputs) { return loader_->run(inputs); }

 private:
  void remove_private_dir() noexcept {
    std::error_code ignored;
    if (!private_dir_.empty()) std::filesystem::remove_all(private_dir_, ignored);
  }

  std::filesystem::path private_dir_;
  std::unique_ptr<torch::inductor::AOTIModelPackageLoader> loader_;
};

// What the twin recorded when the build ran it: the inputs, Python's eager outputs (eager.pt, read as data
// by the suite's weights-only reader) and what it did (export.json).
struct Recorded {
  int64_t seed = 0;
  std::string torch_version;
  std::string export_says;
  torch::Tensor X, Y, X1, Y1, X64, Y64, X_fixed, Y_fixed;

  static Recorded read(const std::filesystem::path& dir) {
    Recorded r;
    const auto json_path = dir / "export.json";
    try {
      const auto made = nlohmann::json::parse(read_bytes(json_path));
      r.seed = made.at("seed").get<int64_t>();
      r.torch_version = made.at("torch").get<std::string>();
      r.export_says = made.at("torch.export says").get<std::string>();
    } catch (const nlohmann::json::exception& e) {
      throw std::runtime_error(fmt::format("{}: not what the twin writes ({}); rebuild (scripts/build.sh)",
                                           json_path.string(), e.what()));
    }
    const auto eager_path = dir / "eager.pt";
    const auto value = common::read_value(eager_path);
    if (!value.isGenericDict())
      throw std::runtime_error(
          fmt::format("{}: not a dict of tensors; rebuild (scripts/build.sh)", eager_path.string()));
    const auto dict = value.toGenericDict();
    const auto tensor = [&](const char* key) {
      const auto it = dict.find(c10::IValue(std::string(key)));
      if (it == dict.end() || !it->value().isTensor())
        throw std::runtime_error(
            fmt::format("{}: no tensor '{}'; rebuild (scripts/build.sh)", eager_path.string(), key));
      return it->value().toTensor();
    };
    r.X = tensor("X"), r.Y = tensor("Y"), r.X1 = tensor("X1"), r.Y1 = tensor("Y1");
    r.X64 = tensor("X64"), r.Y64 = tensor("Y64"), r.X_fixed = tensor("X_fixed"),
    r.Y_fixed = tensor("Y_fixed");
    for (const auto& [key, X] :
         {std::pair<const char*, const torch::Tensor*>{"X", &r.X}, {"X1", &r.X1}, {"X64", &r.X64}})
      check_input(*X, fmt::format("{}: '{}'", eager_path.string(), key));
    check_input(r.X_fixed, fmt::format("{}: 'X_fixed'", eager_path.string()), kFixedBatch, kFixedBatch);
    return r;
  }
};

// The lesson's options: the common ones, where the build left the packages, and an input of the learner's.
// The twin ran at build time (data/python/14_export.py): its record is read as the options are checked,
// so that packages made with another seed are refused before the first cell.
struct Options : common::Options {
  Options(int argc, char** argv)
      : common::Options("14_export", "torch.export and AOTInductor: a model from Python, run from C++") {
    cli()
        .add_option("--package-dir", package_dir, "where the build left the packages and Python's outputs")
        ->capture_default_str();
    cli().add_option("--input", input,
                     "also run the MLP's package on this tensor (Python: torch.save(x, path), x of shape "
                     "[batch, 20], float32)");
    parse(argc, argv);
    recorded = Recorded::read(package_dir);
    if (recorded.seed != seed)
      throw std::runtime_error(
          fmt::format("the packages in {} hold the weights of seed {}, not {}: run without "
                      "--seed, or with --seed {}",
                      package_dir, recorded.seed, seed, recorded.seed));
  }
  std::string package_dir = MP_EXPORT_DIR;
  std::string input;
  Recorded recorded;
};

// The device a package runs on is the one it was compiled for: --device, when given, must name it.
inline torch::Device package_device(Package& package, const std::filesystem::path& path,
                                    const common::Options& options) {
  const torch::Device compiled_for(package.device());
  if (options.device_chosen() && options.device != compiled_for)
    throw std::runtime_error(
        fmt::format("{}: compiled for {}, and --device asks for {}; run it with --device {}", path.string(),
                    package.device(), common::device_name(options.device), package.device()));
  return compiled_for;
}

// --input: a tensor from Python's torch.save(x, path), read as data and checked as the MLP package's input.
inline torch::Tensor read_input(const std::string& path) {
  const auto value = common::read_value(std::filesystem::path(path));
  if (!value.isTensor())
    throw std::runtime_error(fmt::format("{}: holds a {}, not a tensor; write it with torch.save(x, path)",
                                         path, value.tagKind()));
  check_input(value.toTensor(), path);
  return value.toTensor();
}

}  // namespace export_lesson
