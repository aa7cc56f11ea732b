// Lesson 12: a new operator, the case the notes set aside in "Un bloque personalizado": "a menos que
// implementemos un nuevo operador, no debemos preocuparnos por la función de retropropagación"
// ("Modelos Personalizados en PyTorch").
#include <fmt/format.h>
#include <torch/torch.h>

#include "common/compute/gradcheck.h"
#include "common/lesson/lesson.h"
#include "common/lesson/print.h"
#include "lessons/12_custom_operator/custom_operator.h"

namespace op = custom_operator;

int main(int argc, char** argv) try {
  const common::Options options("12_custom_operator", custom_operator::kAbout, argc, argv);
  torch::manual_seed(options.seed);
  common::Lesson lesson(options);

  // %% Un nuevo operador: registrado en el despachador
  // ops.cpp defines the schema and a kernel per dispatch key; the library registers them when it is loaded,
  // in C++ as in Python (torch.ops.load_library). Python calls it torch.ops.modelos.linear_relu.
  lesson.show("schema", op::schema("modelos::linear_relu"));
  for (const auto key :
       {c10::DispatchKey::CPU, c10::DispatchKey::CUDA, c10::DispatchKey::Meta, c10::DispatchKey::Autograd}) {
    lesson.show(fmt::format("kernel for {}", c10::toString(key)),
                op::has_kernel("modelos::linear_relu", key));
  }

  // %% Un nuevo operador: relu(X W + b) a través del despachador
  op::FusedLinear layer(5, 3);
  layer->to(options.device);
  auto X = torch::rand({2, 5}).to(options.device).requires_grad_(true);
  auto out = layer(X);
  lesson.show("FusedLinear(5, 3)(rand(2, 5))", out);
  lesson.say("computed by {}", options.device.is_cuda() && op::have_cuda_kernel()
                                   ? "the hand-written CUDA kernel"
                                   : "addmm + relu_ on the CPU path");
  auto reference = op::composite_linear_relu(X, layer->weight, layer->bias);
  lesson.show("equal to the composite relu(X.matmul(W) + b) (atol 1e-6)",
              torch::allclose(out, reference, 1e-5, 1e-6));
  // The same Function, applied directly rather than through the dispatcher: the same values.
  lesson.show("LinearReluFunction::apply gives the same",
              torch::equal(op::LinearReluFunction::apply(X, layer->weight, layer->bias), out));

  // %% Un nuevo operador: su backward, escrito a mano, contra el de autograd
  out.sum().backward();
  auto grads =
      std::vector<torch::Tensor>{X.grad().clone(), layer->weight.grad().clone(), layer->bias.grad().clone()};
  X.mutable_grad() = torch::Tensor();
  layer->zero_grad();
  op::composite_linear_relu(X, layer->weight, layer->bias).sum().backward();
  const std::vector<std::pair<const char*, torch::Tensor>> autograd{
      {"X", X.grad()}, {"weight", layer->weight.grad()}, {"bias", layer->bias.grad()}};
  for (size_t i = 0; i < grads.size(); ++i) {
    lesson.show(fmt::format("d/d{}", autograd[i].first), grads[i]);
    lesson.show(fmt::format("d/d{} hand-written equals autograd's (atol 1e-6)", autograd[i].first),
                torch::allclose(grads[i], autograd[i].second, 1e-5, 1e-6));
  }

  // %% Un nuevo operador: la prueba del gradiente con diferencias finitas
  auto Xd = torch::rand({4, 5}, torch::dtype(torch::kDouble).device(options.device));
  auto Wd = torch::randn({5, 3}, torch::dtype(torch::kDouble).device(options.device));
  auto bd = torch::randn({3}, torch::dtype(torch::kDouble).device(options.device));
  const auto check = common::gradcheck(
      [](const std::vector<torch::Tensor>& in) { return op::linear_relu(in[0], in[1], in[2]); }, {Xd, Wd, bd},
      {"X", "weight", "bias"});
  lesson.say("central differences, eps 1e-6: largest errors X {:.2e}, weight {:.2e}, bias {:.2e}",
             check.max_error[0], check.max_error[1], check.max_error[2]);
  lesson.show("gradient check passed", check.passed);
  if (!check.report.empty()) lesson.say("{}", check.report);

  // %% Un nuevo operador: desde Python, opcheck y torch.compile
  // In Python the same library gives torch.ops.modelos.linear_relu, which torch.library.opcheck tests
  // (schema, autograd registration, the Meta kernel under fake tensors and traced backward) and
  // torch.compile(fullgraph=True) traces without a graph break: data/python/12_custom_operator.py.
  lesson.say("Python: torch.ops.load_library('{}'), then torch.ops.modelos.linear_relu(X, W, b)",
             op::library_path());

  return lesson.finish();
} catch (...) {
  return common::exit_status();
}
