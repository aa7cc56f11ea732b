// Lesson 12: a new operator, the case the notes set aside in "Un bloque personalizado": "a menos que
// implementemos un nuevo operador, no debemos preocuparnos por la función de retropropagación"
// ("Modelos Personalizados en PyTorch").
#include <torch/torch.h>

#include "common/gradcheck.h"
#include "common/lesson.h"
#include "common/print.h"
#include "lessons/12_custom_operator/custom_operator.h"

namespace op = custom_operator;

int main(int argc, char** argv) try {
  common::Options options("12_custom_operator",
                          "A new operator: fused linear + ReLU with a hand-written backward");
  options.parse(argc, argv);
  torch::manual_seed(options.seed);
  const torch::Device device = options.device;
  common::Lesson lesson(options);

  // %% Un nuevo operador: relu(X W + b) como una autograd::Function (solo C++)
  op::FusedLinear layer(5, 3);
  layer->to(device);
  auto X = torch::rand({2, 5}).to(device).requires_grad_(true);
  auto out = layer(X);
  lesson.say("FusedLinear(5, 3)(rand(2, 5)) = {}", common::format_tensor(out));
  lesson.say("computed by {}", device.is_cuda() && op::have_cuda_kernel() ? "the hand-written CUDA kernel"
                                                                          : "addmm + relu_ on the CPU path");
  auto reference = op::composite_linear_relu(X, layer->weight, layer->bias);
  lesson.say("the composite relu(X.matmul(W) + b) gives the same (atol 1e-6): {}",
             torch::allclose(out, reference, 1e-5, 1e-6));

  // %% Un nuevo operador: su backward, escrito a mano, contra el de autograd (solo C++)
  out.sum().backward();
  auto grads =
      std::vector<torch::Tensor>{X.grad().clone(), layer->weight.grad().clone(), layer->bias.grad().clone()};
  X.mutable_grad() = torch::Tensor();
  layer->zero_grad();
  op::composite_linear_relu(X, layer->weight, layer->bias).sum().backward();
  const std::vector<std::pair<const char*, torch::Tensor>> autograd{
      {"X", X.grad()}, {"weight", layer->weight.grad()}, {"bias", layer->bias.grad()}};
  for (size_t i = 0; i < grads.size(); ++i) {
    lesson.say("  d/d{:<6} hand-written equals autograd's (atol 1e-6): {}", autograd[i].first,
               torch::allclose(grads[i], autograd[i].second, 1e-5, 1e-6));
  }

  // %% Un nuevo operador: la prueba del gradiente con diferencias finitas (solo C++)
  auto Xd = torch::rand({4, 5}, torch::dtype(torch::kDouble).device(device));
  auto Wd = torch::randn({5, 3}, torch::dtype(torch::kDouble).device(device));
  auto bd = torch::randn({3}, torch::dtype(torch::kDouble).device(device));
  const auto check = common::gradcheck(
      [](const std::vector<torch::Tensor>& in) { return op::linear_relu(in[0], in[1], in[2]); }, {Xd, Wd, bd},
      {"X", "weight", "bias"});
  lesson.say("central differences, eps 1e-6: largest errors X {:.2e}, weight {:.2e}, bias {:.2e}",
             check.max_error[0], check.max_error[1], check.max_error[2]);
  lesson.say("gradient check passed: {}{}", check.passed, check.report.empty() ? "" : "\n" + check.report);

  return lesson.finish();
} catch (...) {
  return common::exit_status();
}
