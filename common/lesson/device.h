#pragma once
// Device selection, as in the course: try_gpu(i) falls back to the CPU, try_all_gpus() is never empty.
#include <string>
#include <vector>

#include <torch/torch.h>

namespace common {

// cuda:i when that GPU exists, otherwise the CPU.
torch::Device try_gpu(int i = 0);

// Every GPU there is, or {cpu} when there is none.
std::vector<torch::Device> try_all_gpus();

// "auto" (try_gpu()), "cpu", "cuda" (cuda:0) or "cuda:N". Throws std::invalid_argument naming the
// string when it is malformed, and when it asks for a GPU this machine or LibTorch build does not have.
torch::Device parse_device(const std::string& spec);

// "cpu" or "cuda:0": the form parse_device accepts back.
std::string device_name(const torch::Device& device);

}  // namespace common
