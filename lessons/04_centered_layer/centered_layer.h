#pragma once
// "Capas sin Parámetros": a layer that owns no parameters.
#include <torch/torch.h>

namespace centered_layer {

// Subtracts the mean of its input.
class CenteredLayerImpl : public torch::nn::Module {
 public:
  torch::Tensor forward(const torch::Tensor& X) { return X - X.mean(); }
};
TORCH_MODULE(CenteredLayer);

// Sequential(Linear(8, 128), CenteredLayer()).
inline torch::nn::Sequential make_net() {
  return torch::nn::Sequential(torch::nn::Linear(8, 128), CenteredLayer());
}

// What --help says the lesson is.
inline constexpr const char* kAbout = "Capas sin Parámetros: a layer with no parameters";

}  // namespace centered_layer
