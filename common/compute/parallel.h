#pragma once
// LibTorch's data_parallel, where the LibTorch build has it. Its header pulls in CUDA's own headers, which a
// CPU-only LibTorch (Debian's libtorch-dev 1.13) cannot compile, so it is included in one place only.
#include <vector>

#include <torch/torch.h>

namespace common {

// True when this build can run torch::nn::parallel::data_parallel.
bool have_data_parallel();

// Splits input's batch over devices, runs a replica of module on each and gathers the output on
// devices[0]. Throws std::runtime_error when this build has no data_parallel.
torch::Tensor data_parallel(const torch::nn::Sequential& module, const torch::Tensor& input,
                            const std::vector<torch::Device>& devices);

}  // namespace common
