#pragma once
// "Parámetros vinculados": one layer placed twice in a net, so its parameters are shared.
#include <torch/torch.h>

namespace tied_parameters {

// Sequential(Linear(4, 8), ReLU, shared, ReLU, shared, ReLU, Linear(8, 1)) with shared = Linear(8, 8),
// created first as in the notes.
inline torch::nn::Sequential make_tied_net() {
  torch::nn::Linear shared(8, 8);
  torch::nn::Linear first(4, 8);
  torch::nn::Linear last(8, 1);
  return torch::nn::Sequential(first, torch::nn::ReLU(), shared, torch::nn::ReLU(), shared, torch::nn::ReLU(),
                               last);
}

// The same architecture with two independent layers at 2 and 4: the control case for the tied net.
inline torch::nn::Sequential make_untied_net() {
  torch::nn::Linear middle1(8, 8);
  torch::nn::Linear first(4, 8);
  torch::nn::Linear middle2(8, 8);
  torch::nn::Linear last(8, 1);
  return torch::nn::Sequential(first, torch::nn::ReLU(), middle1, torch::nn::ReLU(), middle2,
                               torch::nn::ReLU(), last);
}

inline torch::nn::LinearImpl& layer(const torch::nn::Sequential& net, size_t index) {
  return *net->ptr<torch::nn::LinearImpl>(index);
}

// What --help says the lesson is.
inline constexpr const char* kAbout = "Parámetros vinculados: one layer used twice";

}  // namespace tied_parameters
