#pragma once
// "Ejecutando código en la función de propagación directa": a constant that is not a parameter,
// a layer used twice, and a loop in forward.
#include <torch/torch.h>

namespace fixed_hidden_mlp {

class FixedHiddenMLPImpl : public torch::nn::Module {
 public:
  FixedHiddenMLPImpl() {
    // In Python rand_weight is a plain attribute: not a parameter, not moved by .to(), not saved.
    // Here it is a buffer: still not a parameter and never trained, but it moves with to(device) (a
    // plain tensor member would stay behind on the CPU and forward would fail on a GPU) and is saved
    // with the module. Drawn before the Linear, as in the notes.
    rand_weight = register_buffer("rand_weight", torch::rand({20, 20}));
    linear = register_module("linear", torch::nn::Linear(20, 20));
  }

  torch::Tensor forward(torch::Tensor X) {
    X = linear(X);
    X = torch::relu(torch::mm(X, rand_weight) + 1);
    // The same layer again: its parameters are shared between the two uses.
    X = linear(X);
    // Control flow in forward, as the notes write it: halve until the absolute sum is at most 1 (zero
    // or many times). The condition is a tensor; .item() brings it to C++ for the while.
    while (X.abs().sum().item<float>() > 1) X /= 2;
    return X.sum();
  }

  torch::Tensor rand_weight;
  torch::nn::Linear linear{nullptr};
};
TORCH_MODULE(FixedHiddenMLP);

// The notes' NestMLP: a Sequential inside a block, followed by a Linear.
class NestMLPImpl : public torch::nn::Module {
 public:
  NestMLPImpl() {
    torch::nn::Linear first(20, 64);
    torch::nn::Linear second(64, 32);
    net = register_module("net", torch::nn::Sequential(first, torch::nn::ReLU(), second, torch::nn::ReLU()));
    linear = register_module("linear", torch::nn::Linear(32, 16));
  }

  torch::Tensor forward(const torch::Tensor& X) { return linear(net->forward(X)); }

  torch::nn::Sequential net{nullptr};
  torch::nn::Linear linear{nullptr};
};
TORCH_MODULE(NestMLP);

// Sequential(NestMLP(), Linear(16, 20), FixedHiddenMLP()), built in the notes' order.
inline torch::nn::Sequential make_chimera() {
  NestMLP nest;
  torch::nn::Linear middle(16, 20);
  FixedHiddenMLP fixed;
  return torch::nn::Sequential(nest, middle, fixed);
}

// What --help says the lesson is.
inline constexpr const char* kAbout = "Code in forward: a constant weight, a reused layer, a loop";

}  // namespace fixed_hidden_mlp
