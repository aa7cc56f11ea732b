// libFuzzer target for the pickle machine: the input is data.pkl itself, wrapped in a valid archive
// (tests/fuzz/wrap.h), so that byte mutations reach the opcodes instead of stopping at the zip's checks. Any
// input must end in values or a thrown error, never in a crash, a memory error, a hang or unbounded memory.
#include <cstddef>
#include <cstdint>
#include <string>

#include "common/weights/weights.h"
#include "tests/fuzz/wrap.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string archive =
      fuzzing::wrap_pickle(std::string_view(reinterpret_cast<const char*>(data), size));
  try {
    const auto file = common::weights::WeightsFile::from_bytes(archive, "fuzz-input");
    // Read every tensor, as a load would.
    for (const auto& [name, ref] : common::weights::tensor_entries(file, file.root()))
      (void)file.tensor(*ref).sum();
  } catch (const std::exception&) {
    // A clear error is the expected outcome for almost every input.
  }
  return 0;
}
