#pragma once
// "Capas con parámetros": a dense layer of our own, with registered parameters.
#include <torch/torch.h>

namespace my_linear {

class MyLinearImpl : public torch::nn::Module {
 public:
  MyLinearImpl(int64_t in_units, int64_t units) {
    // register_parameter is the notes' nn.Parameter: the framework now handles access, to(), saving
    // and loading, so this layer needs no serialization code of its own.
    weight = register_parameter("weight", torch::randn({in_units, units}));
    bias = register_parameter("bias", torch::randn({units}));
  }

  // The notes write X @ weight.data + bias.data. In C++ and Python alike, .data (or .detach()) hands
  // over a tensor outside autograd, and the layer would silently never learn; we use the parameters.
  torch::Tensor forward(const torch::Tensor& X) { return torch::relu(torch::matmul(X, weight) + bias); }

  torch::Tensor weight;
  torch::Tensor bias;
};
TORCH_MODULE(MyLinear);

// The porting slip, kept for the lesson and its test: the same layer computing through weight.data(),
// which cuts the graph, so no gradient reaches the parameters.
class DetachedLinearImpl : public torch::nn::Module {
 public:
  DetachedLinearImpl(int64_t in_units, int64_t units) {
    weight = register_parameter("weight", torch::randn({in_units, units}));
    bias = register_parameter("bias", torch::randn({units}));
  }

  torch::Tensor forward(const torch::Tensor& X) {
    return torch::relu(torch::matmul(X, weight.data()) + bias.data());
  }

  torch::Tensor weight;
  torch::Tensor bias;
};
TORCH_MODULE(DetachedLinear);

// Sequential(MyLinear(64, 8), MyLinear(8, 1)), built in order.
inline torch::nn::Sequential make_net() {
  MyLinear first(64, 8);
  MyLinear second(8, 1);
  return torch::nn::Sequential(first, second);
}

// What --help says the lesson is.
inline constexpr const char* kAbout = "Capas con parámetros: a dense layer of our own";

}  // namespace my_linear
