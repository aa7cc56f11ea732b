// Lesson 04: "Capas sin Parámetros" from the notes "Modelos Personalizados en PyTorch".
// The cells are the notebook's; data/python/04_centered_layer.py holds the same cells in Python.
#include <torch/torch.h>

#include "common/lesson/lesson.h"
#include "common/lesson/params.h"
#include "lessons/04_centered_layer/centered_layer.h"

int main(int argc, char** argv) try {
  const common::Options options("04_centered_layer", centered_layer::kAbout, argc, argv);
  torch::manual_seed(options.seed);
  common::Lesson lesson(options);

  // %% Capas sin Parámetros: la clase CenteredLayer
  // The class is in centered_layer.h: forward returns X - X.mean(), and nothing is registered.
  using centered_layer::CenteredLayer;

  // %% Capas sin Parámetros: layer(...)
  CenteredLayer layer;
  lesson.show("layer(torch.FloatTensor([1, 2, 3, 4, 5]))",
              layer(torch::tensor({1.0F, 2.0F, 3.0F, 4.0F, 5.0F}, options.device)));
  lesson.show("parameters of the layer", layer->parameters().size());

  // %% Capas sin Parámetros: net = nn.Sequential(nn.Linear(8, 128), CenteredLayer())
  torch::nn::Sequential net(torch::nn::Linear(8, 128), CenteredLayer());
  net->to(options.device);
  lesson.show("parameter names of net (only the Linear's)", common::parameter_names(*net));

  // %% Capas sin Parámetros: Y.mean()
  auto Y = net->forward(torch::rand({4, 8}).to(options.device));
  lesson.show("Y.shape", Y.sizes());
  // Zero up to float32 rounding, as the notes say: a tiny number, not exactly 0.
  lesson.show("Y.mean()", Y.mean());

  return lesson.finish();
} catch (...) {
  return common::exit_status();
}
