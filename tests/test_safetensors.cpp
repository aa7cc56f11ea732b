// safetensors in C++: the lesson's cell, loading with the zip path's rules, what the format does not
// check, and the writer's refusals. Agreement with Python's safetensors, byte for byte and file for file,
// is tested by tests/safetensors_interop.py and tests/fuzz/agree_with_python.py --safetensors.
#include <fstream>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "common/safetensors/safetensors.h"
#include "common/weights/state_dict.h"
#include "lessons/09_file_io/file_io.h"
#include "tests/testing.h"

namespace fs = std::filesystem;
namespace st = common::safetensors;
using testing_mp::load_error;
using testing_mp::tensors_equal;

namespace {

struct Custom : torch::nn::Module {
  Custom(const std::vector<std::pair<std::string, std::vector<int64_t>>>& shapes,
         torch::Dtype dtype = torch::kFloat) {
    for (const auto& [name, shape] : shapes) register_parameter(name, torch::randn(shape, dtype));
  }
};

std::string save_error(const common::StateDict& tensors, const fs::path& path) {
  try {
    st::save_file(tensors, path);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

void write_bytes(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
}

// The byte offset of the first run of `count` copies of `value` in `bytes`.
size_t find_run(const std::string& bytes, float value, int count) {
  const std::string one(reinterpret_cast<const char*>(&value), sizeof value);
  std::string run;
  for (int i = 0; i < count; ++i) run += one;
  return bytes.find(run);
}

}  // namespace

TEST(FileIoSafetensors, TheLessonsFileLoadsIntoAFreshMLPWithEqualOutputs) {
  const auto dir = testing_mp::fresh_dir();
  const auto run = testing_mp::run_lesson({MP_FILE_IO_BINARY, "--device", "cpu", "--out-dir", dir.string()});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_NE(run.out.find("torch.equal(clone2(X), Y): True"), std::string::npos) << run.out;
  // The file holds the MLP's four tensors, by name, with its shapes, as the lesson's own MLP has them.
  const auto file = st::File::open(dir / "mlp.safetensors");
  file_io::MLP mlp;
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const auto& info : file.tensors()) shapes[info.name] = info.shape;
  std::map<std::string, std::vector<int64_t>> expected;
  for (const auto& [name, tensor] : common::state_dict(*mlp)) expected[name] = tensor.sizes().vec();
  EXPECT_EQ(shapes, expected);
  EXPECT_FALSE(file.metadata().has_value());
}

TEST(FileIoSafetensors, EveryDtypeRoundTripsBitForBit) {
  const auto path = testing_mp::fresh_dir() / "all.safetensors";
  common::StateDict tensors;
  for (const auto dtype :
       {torch::kDouble, torch::kFloat, torch::kHalf, torch::kBFloat16, torch::kLong, torch::kInt,
        torch::kShort, torch::kChar, torch::kByte, torch::kBool, torch::kComplexFloat}) {
    auto t = torch::randn({3, 5}, torch::kDouble).mul(100);
    if (dtype == torch::kComplexFloat) t = torch::complex(t.to(torch::kFloat), t.flip(0).to(torch::kFloat));
    tensors.emplace_back(c10::toString(dtype), t.to(dtype));
  }
  tensors.emplace_back("scalar", torch::tensor(2.5));
  tensors.emplace_back("empty", torch::empty({0, 3}));
  tensors.emplace_back("ñandú.peso", torch::arange(4));
  st::save_file(tensors, path, std::map<std::string, std::string>{{"format", "pt"}});
  const auto read = common::read_state_dict(path);
  ASSERT_EQ(read.size(), tensors.size());
  std::map<std::string, torch::Tensor> by_name(read.begin(), read.end());
  for (const auto& [name, t] : tensors) {
    ASSERT_EQ(by_name.count(name), 1U) << name;
    EXPECT_TRUE(tensors_equal(by_name[name], t)) << name;
  }
  EXPECT_EQ(st::File::open(path).metadata(), (std::map<std::string, std::string>{{"format", "pt"}}));
}

// The format's one weakness beside the zip format: no checksum.
TEST(FileIoSafetensors, AFlippedDataBitLoadsSilentlyWhereTheZipFormatsCrcRefusesIt) {
  const auto dir = testing_mp::fresh_dir();
  Custom saved({{"weight", {1000}}});
  {
    torch::NoGradGuard no_grad;
    saved.parameters()[0].fill_(1.5);
  }
  for (const char* name : {"flipped.safetensors", "flipped.pt"}) {
    const auto path = dir / name;
    if (fs::path(name).extension() == ".pt")
      common::save_state_dict(saved, path);
    else
      st::save_file(common::state_dict(saved), path);
    auto bytes = testing_mp::read_text(path);
    const auto at = find_run(bytes, 1.5F, 1000);
    ASSERT_NE(at, std::string::npos) << "the weight's bytes are not stored as they are in " << name;
    bytes[at + 2001] ^= 0x01;  // a bit of element 500
    write_bytes(path, bytes);
    Custom target({{"weight", {1000}}});
    const auto error = load_error(target, path);
    if (fs::path(name).extension() == ".pt") {
      EXPECT_NE(error.find("CRC"), std::string::npos) << error;
    } else {
      EXPECT_EQ(error, "");
      EXPECT_NE(target.parameters()[0][500].item<float>(), 1.5F);
      EXPECT_EQ(target.parameters()[0][499].item<float>(), 1.5F);
    }
  }
}

// Missing and unexpected keys, other shapes and other dtypes: the same error, word for word, from either
// format, and the module left as it was.
TEST(FileIoSafetensors, StrictLoadingRefusesWhatTheZipPathRefusesWithTheSameWords) {
  const auto dir = testing_mp::fresh_dir();
  const std::vector<std::pair<std::string, std::shared_ptr<Custom>>> files{
      {"missing", std::make_shared<Custom>(
                      std::vector<std::pair<std::string, std::vector<int64_t>>>{{"weight", {8, 4}}})},
      {"unexpected", std::make_shared<Custom>(std::vector<std::pair<std::string, std::vector<int64_t>>>{
                         {"weight", {8, 4}}, {"bias", {8}}, {"scale", {8}}})},
      {"shape", std::make_shared<Custom>(std::vector<std::pair<std::string, std::vector<int64_t>>>{
                    {"weight", {3, 4}}, {"bias", {8}}})},
      {"dtype",
       std::make_shared<Custom>(
           std::vector<std::pair<std::string, std::vector<int64_t>>>{{"weight", {8, 4}}, {"bias", {8}}},
           torch::kDouble)}};
  for (const auto& [name, module] : files) {
    const auto zip = dir / (name + ".pt");
    const auto safe = dir / (name + ".safetensors");
    common::save_state_dict(*module, zip);
    st::save_file(common::state_dict(*module), safe);
    torch::nn::Linear linear(4, 8);
    const auto before = linear->weight.clone();
    const auto from_zip = load_error(*linear, zip);
    const auto from_safe = load_error(*linear, safe);
    ASSERT_NE(from_zip, "") << name;
    ASSERT_EQ(from_safe.rfind(safe.string(), 0), 0U) << from_safe;
    EXPECT_EQ(from_safe.substr(safe.string().size()), from_zip.substr(zip.string().size())) << name;
    EXPECT_TRUE(tensors_equal(linear->weight, before)) << name;
  }
}

TEST(FileIoSafetensors, TheWriterRefusesWhatSaveFileRefusesAndWritesNothing) {
  const auto dir = testing_mp::fresh_dir();
  const auto x = torch::arange(12, torch::kFloat).reshape({3, 4});
  struct Case {
    std::string name;
    common::StateDict tensors;
    std::string error;
  };
  const std::vector<Case> cases{{"transposed", {{"t", x.t()}}, "'t' is not contiguous"},
                                {"overlapping", {{"all", x}, {"rows", x.slice(0, 1)}}, "share memory"},
                                {"named-metadata", {{"__metadata__", x}}, "cannot be named __metadata__"},
                                {"twice", {{"a", x}, {"a", x.clone()}}, "given twice"}};
  for (const auto& c : cases) {
    const auto path = dir / (c.name + ".safetensors");
    const auto error = save_error(c.tensors, path);
    EXPECT_NE(error.find(c.error), std::string::npos) << c.name << ": " << error;
    EXPECT_FALSE(fs::exists(path)) << c.name;
  }
  // The opposite case: views of one storage that do not overlap are saved, each its own bytes.
  const auto path = dir / "halves.safetensors";
  ASSERT_EQ(save_error({{"top", x.slice(0, 0, 1)}, {"rest", x.slice(0, 1)}}, path), "");
  const auto read = common::read_state_dict(path);
  std::map<std::string, torch::Tensor> by_name(read.begin(), read.end());
  EXPECT_TRUE(tensors_equal(by_name.at("top"), x.slice(0, 0, 1)));
  EXPECT_TRUE(tensors_equal(by_name.at("rest"), x.slice(0, 1)));
}

// --load takes a sharded checkpoint that Python's safetensors wrote, as transformers lays one out, and a
// single file, told from a zip by its bytes.
TEST(FileIoSafetensors, TheLessonLoadsAShardedCheckpointPythonWrote) {
  const auto python = testing_mp::python_with_torch();
  if (python.empty()) GTEST_SKIP() << "no Python with torch";
  const auto dir = testing_mp::fresh_dir();
  const auto shards = dir / "shards";
  fs::create_directories(shards);
  const std::string script = R"(
import json, os, sys, torch
try:
    from safetensors.torch import save_file
except ImportError:
    sys.exit(77)
from torch import nn
torch.manual_seed(7)
net = nn.Sequential()
net.add_module("hidden", nn.Linear(20, 256))
net.add_module("output", nn.Linear(256, 10))
state = net.state_dict()
folder = sys.argv[1]
weight_map = {}
for part, prefix in enumerate(["hidden.", "output."]):
    shard = f"model-{part + 1:05d}-of-00002.safetensors"
    save_file({k: v for k, v in state.items() if k.startswith(prefix)}, os.path.join(folder, shard))
    weight_map.update({k: shard for k in state if k.startswith(prefix)})
with open(os.path.join(folder, "model.safetensors.index.json"), "w") as f:
    json.dump({"metadata": {"total_size": sum(v.numel() * 4 for v in state.values())}, "weight_map": weight_map}, f)
torch.save(state, os.path.join(folder, "expected.pt"))
save_file(state, os.path.join(folder, "named-like-a-zip.pt"))  # a name says nothing of what a file holds
)";
  const auto made = testing_mp::run_program({python, "-c", script, shards.string()});
  if (made.exit_code == 77) GTEST_SKIP() << python << " has no safetensors (scripts/install-deps.sh adds it)";
  ASSERT_EQ(made.exit_code, 0) << made.err;
  // The loaded MLP's output on the lesson's X is the Python MLP's output on it, from the shards and from
  // the single file Python wrote.
  file_io::MLP expected;
  common::load_state_dict(*expected, shards / "expected.pt");
  for (const char* name : {"model.safetensors.index.json", "named-like-a-zip.pt"}) {
    const auto out = dir / ("out-" + std::string(name));
    const auto run = testing_mp::run_lesson({MP_FILE_IO_BINARY, "--device", "cpu", "--out-dir", out.string(),
                                             "--load", (shards / name).string()});
    ASSERT_EQ(run.exit_code, 0) << run.err;
    const auto X = common::read_value(out / "X.pt").toTensor();
    const auto Y = common::read_value(out / "Y.pt").toTensor();
    EXPECT_TRUE(tensors_equal(Y, expected(X).detach())) << name;
  }
}

// A shard is a file beside its index, found in the shard the index names, and in one shard only.
TEST(FileIoSafetensors, AShardedIndexIsCheckedAgainstItsShards) {
  const auto dir = testing_mp::fresh_dir();
  const auto a = torch::ones({2});
  const auto b = torch::zeros({3});
  st::save_file({{"a", a}}, dir / "one.safetensors");
  st::save_file({{"b", b}, {"a", a}}, dir / "both.safetensors");
  st::save_file({{"b", b}}, dir / "two.safetensors");
  const auto index = [&](const std::string& name, const std::string& weight_map) {
    write_bytes(dir / name, R"({"metadata": {}, "weight_map": )" + weight_map + "}");
    try {
      const auto state = common::read_state_dict(dir / name);
      return std::string("loaded ") + std::to_string(state.size());
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
  };
  EXPECT_EQ(index("good.json", R"({"a": "one.safetensors", "b": "two.safetensors"})"), "loaded 2");
  EXPECT_NE(index("twice.json", R"({"a": "one.safetensors", "b": "both.safetensors"})").find("in two shards"),
            std::string::npos);
  EXPECT_NE(
      index("wrong.json", R"({"a": "two.safetensors", "b": "one.safetensors"})")
          .find("is in " + (dir / "two.safetensors").string() + ", but its weight_map names one.safetensors"),
      std::string::npos);
  EXPECT_NE(index("unlisted.json", R"({"b": "both.safetensors"})").find("is not in its weight_map"),
            std::string::npos);
  EXPECT_NE(index("missing.json", R"({"a": "none.safetensors"})").find("cannot open"), std::string::npos);
  for (const char* outside : {"../one.safetensors", "/etc/passwd", "sub/one.safetensors", ".."}) {
    const auto error = index("outside.json", fmt::format(R"({{"a": "{}"}})", outside));
    EXPECT_NE(error.find("not a file in the index's folder"), std::string::npos) << outside << ": " << error;
  }
}
