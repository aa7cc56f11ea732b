// Lesson 03: "Ejecutando código en la función de propagación directa" from the notes
// "Modelos Personalizados en PyTorch".
// The cells are the notebook's; data/python/03_fixed_hidden_mlp.py holds the same cells in Python.
#include <torch/torch.h>

#include "common/lesson/lesson.h"
#include "common/lesson/params.h"
#include "common/lesson/print.h"
#include "lessons/03_fixed_hidden_mlp/fixed_hidden_mlp.h"

int main(int argc, char** argv) try {
  const common::Options options("03_fixed_hidden_mlp", fixed_hidden_mlp::kAbout, argc, argv);
  torch::manual_seed(options.seed);
  common::Lesson lesson(options);

  // %% Ejecutando código en la función de propagación directa: la clase FixedHiddenMLP
  // The class is in fixed_hidden_mlp.h, with the notebook's forward: the constant rand_weight, the
  // same linear layer twice, and the loop `while (X.abs().sum().item<float>() > 1) X /= 2;`.
  auto X = torch::rand({2, 20}).to(options.device);  // the X of the notebook's first cell
  using fixed_hidden_mlp::FixedHiddenMLP;

  // %% Ejecutando código en la función de propagación directa: net = FixedHiddenMLP()
  FixedHiddenMLP net;
  net->to(options.device);
  lesson.show("net(X)", net(X));
  lesson.show("net(X).dim()", net(X).dim());
  lesson.show("parameter names (rand_weight is not one)", common::parameter_names(*net));
  lesson.say("rand_weight: a buffer of shape {} on {}, requires grad: {}",
             common::format_shape(net->rand_weight.sizes()), net->rand_weight.device().str(),
             net->rand_weight.requires_grad());
  // Training moves linear, never the constant.
  auto rand_weight_before = net->rand_weight.clone();
  auto linear_before = net->linear->weight.clone();
  torch::optim::SGD sgd(net->parameters(), torch::optim::SGDOptions(0.1));
  net(X).backward();
  sgd.step();
  lesson.say("after one SGD step: rand_weight unchanged: {}, linear.weight changed: {}",
             torch::equal(net->rand_weight, rand_weight_before),
             !torch::equal(net->linear->weight, linear_before));

  // %% Ejecutando código en la función de propagación directa: NestMLP y chimera
  // NestMLP is in fixed_hidden_mlp.h. The three blocks are built first, in the notebook's order.
  using fixed_hidden_mlp::NestMLP;
  NestMLP nest;
  torch::nn::Linear middle(16, 20);
  FixedHiddenMLP fixed;
  torch::nn::Sequential chimera(nest, middle, fixed);
  chimera->to(options.device);
  lesson.show("chimera(X)", chimera->forward(X));
  lesson.show("chimera parameter names", common::parameter_names(*chimera));

  return lesson.finish();
} catch (...) {
  return common::exit_status();
}
