// Lesson 01: "Bloques" and "Un bloque personalizado" from the notes "Modelos Personalizados en PyTorch".
// The cells are the notebook's; data/python/01_blocks.py holds the same cells in Python.
#include <torch/torch.h>

#include "common/lesson/lesson.h"
#include "common/lesson/params.h"
#include "lessons/01_blocks/blocks.h"

int main(int argc, char** argv) try {
  const common::Options options("01_blocks", blocks::kAbout, argc, argv);
  torch::manual_seed(options.seed);
  common::Lesson lesson(options);

  // %% Bloques
  // The layers first, then the Sequential: C++ may build a call's arguments in any order, and each Linear
  // draws its weights from the generator, so this keeps Python's order and Python's numbers.
  torch::nn::Linear hidden(20, 256);
  torch::nn::Linear out(256, 10);
  torch::nn::Sequential net(hidden, torch::nn::ReLU(), out);
  net->to(options.device);

  auto X = torch::rand({2, 20}).to(options.device);
  lesson.show("X.shape", X.sizes());
  lesson.show("net(X)", net->forward(X));
  lesson.show("net(X).shape", net->forward(X).sizes());
  lesson.show("Sequential parameter names", common::parameter_names(*net));

  // %% Un bloque personalizado: la clase MLP
  // The class is blocks::MLP in blocks.h, where the tests include it: MLPImpl holds the layers and
  // forward, TORCH_MODULE(MLP) makes the handle that is used like Python's object.
  using blocks::MLP;

  // %% Un bloque personalizado: net = MLP()
  MLP mlp;
  mlp->to(options.device);
  lesson.show("MLP net(X)", mlp(X));
  lesson.show("MLP net(X).shape", mlp(X).sizes());
  lesson.show("MLP parameter names", common::parameter_names(*mlp));
  lesson.show("MLP parameter count", common::count_parameters(*mlp));
  // Python's net(X) is net.__call__(X); here the handle's operator() forwards to forward().
  lesson.show("net(X) equals net.forward(X)", torch::equal(mlp(X), mlp->forward(X)));
  // Each instance owns its layers: a second MLP is a second model.
  MLP net2;
  net2->to(options.device);
  lesson.show("a second MLP gives another output", !torch::equal(mlp(X), net2(X)));

  return lesson.finish();
} catch (...) {
  return common::exit_status();
}
