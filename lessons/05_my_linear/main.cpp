// Lesson 05: "Capas con parámetros" from the notes "Modelos Personalizados en PyTorch".
// The cells are the notebook's; data/python/05_my_linear.py holds the same cells in Python.
#include <torch/torch.h>

#include "common/lesson/lesson.h"
#include "common/lesson/params.h"
#include "lessons/05_my_linear/my_linear.h"

int main(int argc, char** argv) try {
  const common::Options options("05_my_linear", my_linear::kAbout, argc, argv);
  torch::manual_seed(options.seed);
  common::Lesson lesson(options);

  // %% Capas con parámetros: la clase MyLinear
  // The class is in my_linear.h. register_parameter is Python's nn.Parameter. Its forward uses the
  // parameters, where the notebook writes weight.data and bias.data (see the last cell).
  using my_linear::MyLinear;

  // %% Capas con parámetros: linear = MyLinear(5, 3)
  MyLinear linear(5, 3);
  linear->to(options.device);
  lesson.show("linear.weight", linear->weight);
  lesson.show("parameter names", common::parameter_names(*linear));

  // %% Capas con parámetros: linear(torch.rand(2, 5))
  lesson.show("linear(torch.rand(2, 5))", linear(torch::rand({2, 5}).to(options.device)));

  // %% Capas con parámetros: net = nn.Sequential(MyLinear(64, 8), MyLinear(8, 1))
  MyLinear first(64, 8);
  MyLinear second(8, 1);
  torch::nn::Sequential net(first, second);
  net->to(options.device);
  lesson.show("net(torch.rand(2, 64))", net->forward(torch::rand({2, 64}).to(options.device)));

  // %% Más allá del cuaderno: weight.data dentro de forward
  // DetachedLinear is the notebook's MyLinear as written, through weight.data(): the same numbers, but
  // the output is cut out of autograd and backward() could never reach the parameters.
  my_linear::DetachedLinear detached(5, 3);
  detached->to(options.device);
  lesson.show("output through weight.data requires grad",
              detached(torch::rand({2, 5}).to(options.device)).requires_grad());
  lesson.show("MyLinear output requires grad",
              linear(torch::rand({2, 5}).to(options.device)).requires_grad());

  return lesson.finish();
} catch (...) {
  return common::exit_status();
}
