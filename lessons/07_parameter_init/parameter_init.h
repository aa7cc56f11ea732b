#pragma once
// "Inicialización de parámetros": built-in initialisers applied with Module::apply, and the notes'
// custom my_init.
#include <torch/torch.h>

namespace parameter_init {

// Sequential(Linear(4, 8), ReLU(), Linear(8, 1)), built in order.
inline torch::nn::Sequential make_net() {
  torch::nn::Linear first(4, 8);
  torch::nn::Linear second(8, 1);
  return torch::nn::Sequential(first, torch::nn::ReLU(), second);
}

// Each initialiser acts on Linear layers and leaves other modules alone, so net->apply(init) works on
// any model. Module::apply visits a module before its children, Python's after; for these functions,
// which touch only Linears, the order of the Linears (and of the random draws) is the same.

// Weights from N(0, 0.01²), biases zero.
inline void init_normal(torch::nn::Module& m) {
  if (auto* linear = m.as<torch::nn::Linear>()) {
    torch::nn::init::normal_(linear->weight, 0, 0.01);
    torch::nn::init::zeros_(linear->bias);
  }
}

// Weights 1, biases zero.
inline void init_constant(torch::nn::Module& m) {
  if (auto* linear = m.as<torch::nn::Linear>()) {
    torch::nn::init::constant_(linear->weight, 1);
    torch::nn::init::zeros_(linear->bias);
  }
}

// Xavier (Glorot) uniform: U(-a, a) with a = sqrt(6 / (fan_in + fan_out)).
inline void init_xavier(torch::nn::Module& m) {
  if (auto* linear = m.as<torch::nn::Linear>()) torch::nn::init::xavier_uniform_(linear->weight);
}

inline void init_42(torch::nn::Module& m) {
  if (auto* linear = m.as<torch::nn::Linear>()) torch::nn::init::constant_(linear->weight, 42);
}

// The notes' odd distribution: w ~ U(-10, 10), then every w with |w| < 5 is set to 0.
inline void my_init(torch::nn::Module& m) {
  if (auto* linear = m.as<torch::nn::Linear>()) {
    torch::nn::init::uniform_(linear->weight, -10, 10);
    // In-place changes to a parameter must not be recorded by autograd.
    torch::NoGradGuard no_grad;
    linear->weight.mul_(linear->weight.abs() >= 5);
  }
}

// The Xavier bound of a Linear's weight.
inline double xavier_bound(const torch::nn::LinearImpl& linear) {
  const auto fan_out = static_cast<double>(linear.weight.size(0));
  const auto fan_in = static_cast<double>(linear.weight.size(1));
  return std::sqrt(6.0 / (fan_in + fan_out));
}

// What --help says the lesson is.
inline constexpr const char* kAbout = "Inicialización de parámetros: built-in and custom initialisers";

}  // namespace parameter_init
