#pragma once
// Parameter helpers LibTorch lacks. Module::parameters() lists a parameter once per place it is
// registered, so a layer used twice (tied weights) is listed twice; Python's parameters() lists it once.
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

namespace common {

// Each parameter tensor once, in first-seen order (what Python's net.parameters() yields).
std::vector<torch::Tensor> unique_parameters(const torch::nn::Module& module);

// Each parameter tensor once, under the first name it was found with.
std::vector<std::pair<std::string, torch::Tensor>> unique_named_parameters(const torch::nn::Module& module);

// Names of named_parameters(), in order.
std::vector<std::string> parameter_names(const torch::nn::Module& module);

// The number of scalars in all parameters, each tensor counted once.
int64_t count_parameters(const torch::nn::Module& module);

}  // namespace common

namespace common {

// Copies every parameter of `from` into the parameter of the same name in `to` (no gradient recorded).
// Throws naming the key when a name is missing in `to` or the shapes differ.
void copy_parameters(const torch::nn::Module& from, torch::nn::Module& to);

}  // namespace common
