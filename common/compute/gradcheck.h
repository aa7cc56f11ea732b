#pragma once
// Checks a hand-written backward against finite differences, as Python's torch.autograd.gradcheck does.
#include <functional>
#include <string>
#include <vector>

#include <torch/torch.h>

namespace common {

struct GradcheckResult {
  bool passed = true;
  // For each input: the largest |analytic - numeric| over its elements, and what was allowed there.
  std::vector<double> max_error;
  std::string report;  // one line per input that failed, naming it and the worst element
};

// For fn(inputs) -> output, compares the gradient of sum(output * v) for a fixed random v, computed by
// autograd (so by the function's own backward), with central differences (f(x + eps) - f(x - eps)) / 2 eps
// for every element of every input. Inputs should be double: in float32 the differences drown in rounding.
// An element passes when |analytic - numeric| <= atol + rtol * |numeric|.
GradcheckResult gradcheck(const std::function<torch::Tensor(const std::vector<torch::Tensor>&)>& fn,
                          const std::vector<torch::Tensor>& inputs, const std::vector<std::string>& names,
                          double eps = 1e-6, double atol = 1e-5, double rtol = 1e-3);

}  // namespace common
