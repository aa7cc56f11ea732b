// Replays every committed fuzz input through the state-dict reader: each must end in a state dict or a
// thrown error, never a crash (under the sanitizer build, never a memory error either).
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "common/weights/state_dict.h"
#include "common/weights/weights.h"
#include "tests/fuzz/wrap.h"

namespace fs = std::filesystem;

class FuzzCorpus : public ::testing::TestWithParam<std::string> {};

TEST_P(FuzzCorpus, ReadsOrFailsCleanly) {
  std::ifstream in(GetParam(), std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (fs::path(GetParam()).extension() == ".pkl") {
    // The pickle fuzzer's inputs are data.pkl alone, wrapped as tests/fuzz/fuzz_pickle.cpp wraps them.
    const auto archive = fuzzing::wrap_pickle(std::string_view(bytes.data(), bytes.size()));
    bytes.assign(archive.begin(), archive.end());
  }
  try {
    // From a buffer of exactly the file's size, so that AddressSanitizer sees any read past its end.
    const auto state = common::read_state_dict(std::string_view(bytes.data(), bytes.size()), GetParam());
    for (const auto& [name, tensor] : state) EXPECT_TRUE(tensor.defined()) << name;
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(GetParam()), std::string::npos)
        << "error does not name the input: " << e.what();
  }
}

std::vector<std::string> corpus_files() {
  std::vector<std::string> files;
  for (const char* dir : {"corpus", "corpus_pickle", "corpus_safetensors", "regressions"}) {
    for (const auto& entry : fs::directory_iterator(fs::path(MP_SOURCE_DIR) / "tests" / "fuzz" / dir)) {
      if (entry.is_regular_file() && entry.path().filename() != "README.md")
        files.push_back(entry.path().string());
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

INSTANTIATE_TEST_SUITE_P(Files, FuzzCorpus, ::testing::ValuesIn(corpus_files()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string name = fs::path(info.param).parent_path().filename().string() + "_" +
                                              fs::path(info.param).filename().string();
                           for (auto& c : name) {
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           }
                           return name;
                         });
