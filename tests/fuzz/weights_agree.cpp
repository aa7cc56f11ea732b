// One half of the property that the reader agrees with Python: reads a file as the suite reads it and,
// when it loads, writes what it read in Python's torch.save format, for tests/fuzz/agree_with_python.py
// to compare with Python's own torch.load of the same bytes.
//   weights_agree INPUT SAME_BYTES RESAVED
// INPUT is a file, or a data.pkl (NAME.pkl) that is wrapped as the pickle fuzzer wraps it; SAME_BYTES
// receives the exact bytes read. Exit 0 and RESAVED written when the suite loads the file; exit 2 with
// one error line when it refuses it. A TorchScript archive (a module object) is read as a state dict.
#include <fstream>
#include <iostream>
#include <iterator>

#include "common/files.h"
#include "common/lesson.h"
#include "common/serialize.h"
#include "tests/fuzz/wrap.h"

int main(int argc, char** argv) try {
  if (argc != 4) {
    std::cerr << "usage: weights_agree INPUT SAME_BYTES RESAVED\n";
    return 2;
  }
  const std::string input = argv[1];
  std::ifstream in(input, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (input.size() > 4 && input.compare(input.size() - 4, 4, ".pkl") == 0)
    bytes = fuzzing::wrap_pickle(bytes);
  common::write_file_atomically(argv[2], bytes);
  const bool module = bytes.find("constants.pkl") != std::string::npos;
  c10::IValue value;
  if (module) {
    c10::Dict<std::string, torch::Tensor> dict;
    for (const auto& [name, tensor] : common::read_state_dict(bytes, input)) dict.insert(name, tensor);
    value = dict;
  } else {
    value = common::read_value(bytes, input);
  }
  common::save_for_python(value, argv[3]);
  return 0;
} catch (const std::exception& e) {
  std::cerr << "error: " << common::one_line_message(e) << "\n";
  return 2;
}
