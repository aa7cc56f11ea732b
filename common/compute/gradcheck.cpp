#include "common/compute/gradcheck.h"

#include <fmt/format.h>

namespace common {

GradcheckResult gradcheck(const std::function<torch::Tensor(const std::vector<torch::Tensor>&)>& fn,
                          const std::vector<torch::Tensor>& inputs, const std::vector<std::string>& names,
                          double eps, double atol, double rtol) {
  std::vector<torch::Tensor> leaves;
  leaves.reserve(inputs.size());
  for (const auto& x : inputs) leaves.push_back(x.detach().clone().requires_grad_(true));
  auto out = fn(leaves);
  // A fixed random weighting of the outputs checks the whole Jacobian at the cost of one backward.
  auto v = torch::randn(out.sizes(), out.options().requires_grad(false));
  auto analytic = torch::autograd::grad({(out * v).sum()}, leaves, {}, false, false, true);

  GradcheckResult result;
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < leaves.size(); ++i) {
    auto x = leaves[i].detach().clone();
    auto flat = x.view({-1});
    auto numeric = torch::zeros_like(flat);
    std::vector<torch::Tensor> args;
    args.reserve(leaves.size());
    for (const auto& leaf : leaves) args.push_back(leaf.detach());
    args[i] = x;
    for (int64_t j = 0; j < flat.numel(); ++j) {
      const double original = flat[j].item<double>();
      flat[j] = original + eps;
      const double plus = (fn(args) * v).sum().item<double>();
      flat[j] = original - eps;
      const double minus = (fn(args) * v).sum().item<double>();
      flat[j] = original;
      numeric[j] = (plus - minus) / (2 * eps);
    }
    auto a = analytic[i].defined() ? analytic[i].reshape({-1}) : torch::zeros_like(numeric);
    auto error = (a - numeric).abs();
    auto allowed = atol + rtol * numeric.abs();
    result.max_error.push_back(error.max().item<double>());
    auto excess = error - allowed;
    const auto worst = excess.argmax().item<int64_t>();
    if (excess[worst].item<double>() > 0) {
      result.passed = false;
      result.report +=
          fmt::format("{}: element {} has gradient {:.6g} by backward, {:.6g} by finite differences\n",
                      i < names.size() ? names[i] : fmt::format("input {}", i), worst,
                      a[worst].item<double>(), numeric[worst].item<double>());
    }
  }
  return result;
}

}  // namespace common
