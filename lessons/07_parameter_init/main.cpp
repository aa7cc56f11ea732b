// Lesson 07: "Inicialización de parámetros", "Inicialización integrada" and "Inicialización
// personalizada" from the notes "Modelos Personalizados en PyTorch".
// The cells are the notebook's; data/python/07_parameter_init.py holds the same cells in Python.
#include <torch/torch.h>

#include "common/lesson/lesson.h"
#include "common/lesson/print.h"
#include "lessons/07_parameter_init/parameter_init.h"

using namespace parameter_init;

int main(int argc, char** argv) try {
  const common::Options options("07_parameter_init", parameter_init::kAbout, argc, argv);
  torch::manual_seed(options.seed);
  common::Lesson lesson(options);

  // %% Inicialización integrada: init_normal
  auto net = make_net();  // the net of "Gestión de parámetros", its layers built in order
  net->to(options.device);
  const auto first = net->ptr<torch::nn::LinearImpl>(0);  // net[0]
  const auto last = net->ptr<torch::nn::LinearImpl>(2);   // net[2]
  // init_normal and the other initialisers are in parameter_init.h, each written as the notebook's.
  lesson.show("net[0].weight.data[0] before", first->weight[0]);
  net->apply(init_normal);
  lesson.show("init_normal: net[0].weight.data[0]", first->weight[0]);
  lesson.show("init_normal: net[0].bias.data[0]", first->bias[0]);

  // %% Inicialización integrada: init_constant
  net->apply(init_constant);
  lesson.show("init_constant: net[0].weight.data[0]", first->weight[0]);
  lesson.show("init_constant: net[0].bias.data[0]", first->bias[0]);

  // %% Inicialización integrada: xavier e init_42
  // apply() on one layer reaches that layer only.
  net[0]->apply(init_xavier);
  net[2]->apply(init_42);
  lesson.show("xavier: net[0].weight.data[0]", first->weight[0]);
  lesson.say("  (bound sqrt(6 / (4 + 8)) = {:.4f})", xavier_bound(*first));
  lesson.show("init_42: net[2].weight.data", last->weight);

  // %% Inicialización personalizada: my_init
  // The notebook's my_init prints "Init" and the first parameter of each Linear it visits.
  for (const auto& p : net->named_parameters()) {
    if (p.key().find("weight") != std::string::npos) {
      lesson.say("Init {} {}", p.key(), common::format_shape(p.value().sizes()));
    }
  }
  net->apply(my_init);
  lesson.show("my_init: net[0].weight[:2]", first->weight.slice(0, 0, 2));

  // %% Inicialización personalizada: asignación directa
  // Python's .data writes outside autograd; in C++ the same is a NoGradGuard around the writes.
  {
    torch::NoGradGuard no_grad;
    first->weight.add_(1);
    first->weight[0][0] = 42;
  }
  lesson.show("net[0].weight.data[0]", first->weight[0]);

  // %% Más allá del cuaderno: cómo queda cada inicialización
  // The weights of a Linear(100, 100) after each initialiser, as histograms.
  torch::nn::Linear wide(100, 100);
  wide->to(options.device);
  lesson.show("Linear(100, 100) weight, por defecto", wide->weight);
  lesson.say("LibTorch's default, U(-0.1, 0.1): a box\n{}", common::format_histogram(wide->weight));
  wide->apply(init_normal);
  lesson.show("Linear(100, 100) weight, init_normal", wide->weight);
  lesson.say("init_normal, N(0, 0.01²): a bell\n{}", common::format_histogram(wide->weight));
  wide->apply(init_xavier);
  lesson.show("Linear(100, 100) weight, xavier", wide->weight);
  lesson.say("xavier, U(-{0:.3f}, {0:.3f}): a wider box\n{1}", xavier_bound(*wide),
             common::format_histogram(wide->weight));
  wide->apply(my_init);
  lesson.show("Linear(100, 100) weight, my_init", wide->weight);
  lesson.say("my_init: a spike at 0 and nothing in (-5, 5) around it\n{}",
             common::format_histogram(wide->weight));

  return lesson.finish();
} catch (...) {
  return common::exit_status();
}
