#include "common/compute/parallel.h"

#include <stdexcept>

// Whether LibTorch itself was built with CUDA comes from CMake (TORCH_CUDA_LIBRARIES): a CUDA toolkit
// installed beside a CPU-only LibTorch has cuda.h, but LibTorch's CUDA headers are missing.
#if MP_TORCH_HAS_CUDA
#include <torch/nn/parallel/data_parallel.h>
#define MP_HAVE_DATA_PARALLEL 1
#else
#define MP_HAVE_DATA_PARALLEL 0
#endif

namespace common {

bool have_data_parallel() { return MP_HAVE_DATA_PARALLEL != 0; }

torch::Tensor data_parallel(const torch::nn::Sequential& module, const torch::Tensor& input,
                            const std::vector<torch::Device>& devices) {
#if MP_HAVE_DATA_PARALLEL
  return torch::nn::parallel::data_parallel(module, input, devices, devices.at(0));
#else
  (void)module;
  (void)input;
  (void)devices;
  throw std::runtime_error("this LibTorch build has no CUDA, so no data_parallel");
#endif
}

}  // namespace common
