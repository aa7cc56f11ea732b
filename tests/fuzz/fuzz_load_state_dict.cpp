// libFuzzer target for the state-dict reader: any bytes must end in a state dict or a thrown error,
// never in a crash or a memory error. The committed corpus holds valid files of both formats (LibTorch
// archives written by torch::save and Python torch.save files), so both paths, the TorchScript archive
// reader behind torch::load and the unpickler behind torch::pickle_load, are explored.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/weights/state_dict.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // libFuzzer's buffer is exactly the input's size, so AddressSanitizer sees any read past its end.
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  try {
    const auto state = common::read_state_dict(bytes, "fuzz-input");
    // Touch what came back, as a real load would.
    for (const auto& [name, tensor] : state) (void)tensor.numel();
  } catch (const std::exception&) {
    // A clear error is the expected outcome for almost every input.
  }
  return 0;
}
