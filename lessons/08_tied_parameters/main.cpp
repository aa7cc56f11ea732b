// Lesson 08: "Parámetros vinculados" from the notes "Modelos Personalizados en PyTorch".
// The cells are the notebook's; data/python/08_tied_parameters.py holds the same cells in Python.
#include <torch/torch.h>

#include "common/lesson/lesson.h"
#include "common/lesson/params.h"
#include "lessons/08_tied_parameters/tied_parameters.h"

int main(int argc, char** argv) try {
  const common::Options options("08_tied_parameters", tied_parameters::kAbout, argc, argv);
  torch::manual_seed(options.seed);
  common::Lesson lesson(options);

  // %% Parámetros vinculados
  // The shared layer gets a name so that we can refer to its parameters. The others are built next,
  // in the notebook's order.
  torch::nn::Linear shared(8, 8);
  torch::nn::Linear first(4, 8);
  torch::nn::Linear last(8, 1);
  torch::nn::Sequential net(first, torch::nn::ReLU(), shared, torch::nn::ReLU(), shared, torch::nn::ReLU(),
                            last);
  net->to(options.device);
  auto X = torch::rand({2, 4}).to(options.device);
  lesson.show("net(X)", net->forward(X));
  auto* net_2 = net[2]->as<torch::nn::Linear>();
  auto* net_4 = net[4]->as<torch::nn::Linear>();
  lesson.show("net[2].weight.data[0] == net[4].weight.data[0]", net_2->weight[0] == net_4->weight[0]);
  {
    torch::NoGradGuard no_grad;
    net_2->weight[0][0] = 100;
  }
  // Not two equal tensors but one: the write through position 2 shows at position 4.
  lesson.show("after the write: net[2].weight.data[0] == net[4].weight.data[0]",
              net_2->weight[0] == net_4->weight[0]);
  lesson.show("net[2].weight is net[4].weight", net_2->weight.is_same(net_4->weight));

  // %% Más allá del cuaderno: parameters() y el peso compartido
  // Where C++ differs: parameters() lists the shared weight under both names.
  lesson.show("net->parameters().size()", net->parameters().size());
  lesson.show("unique parameters", common::unique_parameters(*net).size());
  lesson.show("named_parameters() names", common::parameter_names(*net));
  std::vector<std::string> unique_names;
  for (const auto& [name, tensor] : common::unique_named_parameters(*net)) unique_names.push_back(name);
  lesson.show("unique parameter names", unique_names);

  // The gradients of the two uses add up in the one tensor. An optimizer built from parameters() holds that
  // tensor twice and so applies the summed gradient twice.
  const double lr = 0.1;
  net->zero_grad();
  net->forward(X).sum().backward();
  auto grad = net_2->weight.grad().clone();
  auto before = net_2->weight.clone();
  torch::optim::SGD twice(net->parameters(), torch::optim::SGDOptions(lr));
  twice.step();
  auto step_twice = (before - net_2->weight).div(lr * grad).nanmean();
  {
    torch::NoGradGuard no_grad;
    net_2->weight.copy_(before);
  }
  torch::optim::SGD once(common::unique_parameters(*net), torch::optim::SGDOptions(lr));
  once.step();
  auto step_once = (before - net_2->weight).div(lr * grad).nanmean();
  lesson.say("SGD from parameters(): the shared weight moved {:.3f} x lr x grad", step_twice.item<double>());
  lesson.say("SGD from unique_parameters(): it moved {:.3f} x lr x grad, as in Python",
             step_once.item<double>());

  return lesson.finish();
} catch (...) {
  return common::exit_status();
}
