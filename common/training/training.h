#pragma once
// What the training lessons (11 and 13) train: a synthetic dataset, the notes' MLP, and SGD with momentum.
#include <cstdint>

#include <torch/torch.h>

namespace common {

// A synthetic 10-class problem, the same for a given seed: 20 features drawn from N(0, 1), labelled by
// the largest of 10 fixed random projections. Made with its own generator, so that building it does not
// move the global one that initialises the model.
struct Dataset {
  torch::Tensor X;  // [n, 20]
  torch::Tensor y;  // [n], int64 in 0..9
};

inline Dataset make_dataset(int64_t n, uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed + 1000003);
  auto X = torch::randn({n, 20}, gen);
  auto projection = torch::randn({20, 10}, gen);
  return {X, X.mm(projection).argmax(1)};
}

// The notes' MLP: Linear(20, 256), ReLU, Linear(256, 10), layers built in order.
inline torch::nn::Sequential make_mlp() {
  torch::nn::Linear hidden(20, 256);
  torch::nn::Linear output(256, 10);
  return torch::nn::Sequential(hidden, torch::nn::ReLU(), output);
}

inline torch::optim::SGD make_optimizer(const torch::nn::Sequential& model, double lr) {
  // Momentum gives the optimizer state (a buffer per parameter) that a checkpoint must carry.
  return torch::optim::SGD(model->parameters(), torch::optim::SGDOptions(lr).momentum(0.9));
}

}  // namespace common
