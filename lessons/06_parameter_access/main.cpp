// Lesson 06: "Gestión de parámetros": "Acceso a parámetros", "Indexado de parámetros", "Todos los
// parámetros a la vez" and "Recopilación de parámetros de bloques anidados" from the notes
// "Modelos Personalizados en PyTorch".
// The cells are the notebook's; data/python/06_parameter_access.py holds the same cells in Python.
#include <torch/torch.h>

#include "common/lesson/lesson.h"
#include "common/lesson/params.h"
#include "common/lesson/print.h"
#include "lessons/06_parameter_access/parameter_access.h"

using parameter_access::Block;
using parameter_access::block2;

int main(int argc, char** argv) try {
  const common::Options options("06_parameter_access", parameter_access::kAbout, argc, argv);
  torch::manual_seed(options.seed);
  common::Lesson lesson(options);

  // %% Gestión de parámetros
  torch::nn::Linear first(4, 8);
  torch::nn::Linear last(8, 1);
  torch::nn::Sequential net(first, torch::nn::ReLU(), last);
  net->to(options.device);
  auto X = torch::rand({2, 4}).to(options.device);
  lesson.show("net(X)", net->forward(X));

  // %% Acceso a parámetros
  // net[2] is a type-erased Module; ->as<torch::nn::Linear>() gives the typed layer when it is one.
  for (const auto& p : net[2]->named_parameters()) {
    lesson.say("{}: shape {} dtype {}\n{}", p.key(), common::format_shape(p.value().sizes()),
               c10::toString(p.value().scalar_type()), common::format_tensor(p.value()));
  }
  lesson.show("net[2] parameter names", common::parameter_names(*net[2]));

  // %% Indexado de parámetros
  // Python prints <class 'torch.nn.parameter.Parameter'>. LibTorch has no Parameter type: a parameter is
  // a torch::Tensor that the module registered, and requires grad.
  auto* layer2 = net[2]->as<torch::nn::Linear>();
  lesson.say("type: torch::Tensor, registered as a parameter of net[2]");
  lesson.show("net[2].bias.data", layer2->bias.data());
  lesson.show("net[2].bias.requires_grad", layer2->bias.requires_grad());

  // %% Indexado de parámetros: net[2].weight.grad == None
  // Python's None is an undefined tensor in C++ until backward() runs.
  lesson.show("net[2].weight.grad == None", !layer2->weight.grad().defined());

  // %% Todos los parámetros a la vez
  for (const auto& p : net[0]->named_parameters()) {
    lesson.say("('{}', {})", p.key(), common::format_shape(p.value().sizes()));
  }
  for (const auto& p : net->named_parameters()) {
    lesson.say("('{}', {})", p.key(), common::format_shape(p.value().sizes()));
  }
  lesson.show("net[0] parameter names", common::parameter_names(*net[0]));
  lesson.show("net parameter names", common::parameter_names(*net));

  // %% Todos los parámetros a la vez: net.state_dict()['2.bias'].data
  // named_parameters() is LibTorch's state dict of parameters, indexed by the same names.
  lesson.show("net.state_dict()['2.bias'].data", net->named_parameters()["2.bias"].data());

  // %% Recopilación de parámetros de bloques anidados
  // block1() and block2() are in parameter_access.h. Block is a Sequential that can sit inside another
  // (LibTorch's Sequential cannot: its forward is a template). Built first, in the notebook's order.
  auto blocks = block2();
  torch::nn::Linear output(4, 1);
  torch::nn::Sequential rgnet(blocks, output);
  rgnet->to(options.device);
  lesson.show("rgnet(X)", rgnet->forward(X));

  // %% Recopilación de parámetros de bloques anidados: print(rgnet)
  lesson.say("{}", common::format_module(*rgnet));
  lesson.show("rgnet parameter names", common::parameter_names(*rgnet));

  // %% Recopilación de parámetros de bloques anidados: rgnet[0][1][0].bias.data
  auto* rgnet_0 = rgnet[0]->as<Block>();
  auto* rgnet_0_1 = (*rgnet_0)[1]->as<Block>();
  lesson.show("rgnet[0][1][0].bias.data", (*rgnet_0_1)[0]->as<torch::nn::Linear>()->bias.data());

  return lesson.finish();
} catch (...) {
  return common::exit_status();
}
