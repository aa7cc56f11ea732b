// libFuzzer target for the safetensors reader: any bytes must end in tensors or a thrown error, never in a
// crash, a memory error, or memory or time beyond the reader's budget. The committed corpus
// (tests/fuzz/corpus_safetensors) holds files Python's safetensors wrote.
#include <cstddef>
#include <cstdint>
#include <string>

#include "common/safetensors/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto file = common::safetensors::File::from_bytes(
        std::string(reinterpret_cast<const char*>(data), size), "fuzz-input");
    for (const auto& info : file.tensors()) (void)file.read(info).numel();
  } catch (const std::exception&) {
    // A clear error is the expected outcome for almost every input.
  }
  return 0;
}
