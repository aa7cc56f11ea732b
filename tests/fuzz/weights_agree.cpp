// One half of the property that the reader agrees with Python: reads files as the suite reads them and,
// for each one that loads, writes what it read in Python's torch.save format, for
// tests/fuzz/agree_with_python.py to compare with Python's own torch.load of the same bytes.
//   weights_agree [--pickles] OUT_DIR INPUT...
// For the k-th input it writes OUT_DIR/k.in (the exact bytes read) and, when the suite loads it,
// OUT_DIR/k.out, and prints one line: "k loaded" or "k refused <error>". With --pickles (or for a NAME.pkl)
// an input is a data.pkl, wrapped as the pickle fuzzer wraps it. A TorchScript archive (a module object)
// is read as a state dict. With --safetensors, an input is a safetensors file or a sharded index, read
// from its path, and k.out is written by the suite's safetensors writer with the tensors and the
// __metadata__ it read (for tests/fuzz/agree_with_python.py --safetensors and
// tests/safetensors_interop.py). One process for every input: LibTorch starts once.
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>

#include "common/files/files.h"
#include "common/lesson/lesson.h"
#include "common/safetensors/safetensors.h"
#include "common/weights/state_dict.h"
#include "tests/fuzz/wrap.h"

namespace {

c10::IValue read_as_the_suite_does(const std::string& bytes, const std::string& name) {
  if (bytes.find("constants.pkl") == std::string::npos) return common::read_value(bytes, name);
  c10::Dict<std::string, torch::Tensor> dict;
  for (const auto& [key, tensor] : common::read_state_dict(bytes, name)) dict.insert(key, tensor);
  return dict;
}

// "k loaded" with k.out written, or "k refused <error>".
// A sharded index by its name; any other input is a safetensors file, as the fuzz target and Python's
// load_file take it, whatever its first bytes.
void agree_safetensors(const std::filesystem::path& input, const std::filesystem::path& out) {
  namespace st = common::safetensors;
  const auto name = input.filename().string();
  const std::string index = ".index.json";
  if (name.size() > index.size() && name.compare(name.size() - index.size(), index.size(), index) == 0) {
    if (st::sniff(input) != st::Format::kSafetensorsIndex)
      throw std::runtime_error(input.string() + ": not a safetensors index");
    st::save_file(common::read_state_dict(input), out);
    return;
  }
  const auto file = st::File::open(input);
  common::StateDict state;
  for (const auto& info : file.tensors()) state.emplace_back(info.name, file.read(info));
  st::save_file(state, out, file.metadata());
}

}  // namespace

int main(int argc, char** argv) try {
  int first = 1;
  const bool pickles = argc > 1 && std::string(argv[1]) == "--pickles";
  const bool safetensors = argc > 1 && std::string(argv[1]) == "--safetensors";
  if (pickles || safetensors) ++first;
  if (argc < first + 2) {
    std::cerr << "usage: weights_agree [--pickles | --safetensors] OUT_DIR INPUT...\n";
    return 2;
  }
  const std::filesystem::path out = argv[first];
  for (int k = first + 1; k < argc; ++k) {
    const std::string input = argv[k];
    const auto index = std::to_string(k - first - 1);
    if (safetensors) {
      try {
        agree_safetensors(input, out / (index + ".out"));
        std::cout << index << " loaded" << std::endl;
      } catch (const std::exception& e) {
        std::cout << index << " refused " << common::one_line_message(e) << std::endl;
      }
      continue;
    }
    std::ifstream in(input, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (pickles || (input.size() > 4 && input.compare(input.size() - 4, 4, ".pkl") == 0))
      bytes = fuzzing::wrap_pickle(bytes);
    common::write_file_atomically(out / (index + ".in"), bytes);
    try {
      common::save_for_python(read_as_the_suite_does(bytes, input), out / (index + ".out"));
      std::cout << index << " loaded" << std::endl;
    } catch (const std::exception& e) {
      std::cout << index << " refused " << common::one_line_message(e) << std::endl;
    }
  }
  return 0;
} catch (const std::exception& e) {
  std::cerr << "error: " << common::one_line_message(e) << "\n";
  return 2;
}
