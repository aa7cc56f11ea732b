#pragma once
// "Bloques" and "Un bloque personalizado": the notes' MLP, once as nn::Sequential and once as a block
// of our own.
#include <torch/torch.h>

namespace blocks {

// Sequential(Linear(20, 256), ReLU(), Linear(256, 10)), with the layers built one after another.
// Written inline as Sequential(Linear(20, 256), ReLU(), Linear(256, 10)), C++ may construct the
// arguments in any order (GCC builds the last one first, clang the first), so the generator could fill the
// layers in a different order than Python and the weights would differ from the notebook's for the same seed.
inline torch::nn::Sequential make_sequential_mlp() {
  torch::nn::Linear hidden(20, 256);
  torch::nn::Linear out(256, 10);
  return torch::nn::Sequential(hidden, torch::nn::ReLU(), out);
}

// The notes' MLP block: a hidden layer of 256 units with ReLU, then a 10-unit output layer.
class MLPImpl : public torch::nn::Module {
 public:
  MLPImpl() {
    // Registering is what makes the layers visible to parameters(), to(), and saving. Each call draws
    // from the generator, in this order, as Python's __init__ does.
    hidden = register_module("hidden", torch::nn::Linear(20, 256));
    out = register_module("out", torch::nn::Linear(256, 10));
  }

  // The notes' forward: the output layer applied to ReLU of the hidden layer.
  torch::Tensor forward(const torch::Tensor& X) { return out(torch::relu(hidden(X))); }

  torch::nn::Linear hidden{nullptr};
  torch::nn::Linear out{nullptr};
};
TORCH_MODULE(MLP);

// What --help says the lesson is.
inline constexpr const char* kAbout = "Bloques: a Sequential MLP and the same MLP as a block of our own";

}  // namespace blocks
