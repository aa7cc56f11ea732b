// The same forward operator against LibTorch's stable ABI (torch/csrc/stable, PyTorch 2.9 and later):
// modelos_stable::linear_relu. It uses only the stable C shim, not LibTorch's C++ classes, so one binary
// loads into every PyTorch from the version it targets (TORCH_TARGET_VERSION, 2.9 here) on. The stable ABI
// has no autograd: this form is the CPU forward only, and the lesson's own operator stays the one with the
// hand-written backward.
#include <cstdint>

#include <torch/csrc/stable/library.h>
#include <torch/csrc/stable/ops.h>
#include <torch/csrc/stable/tensor.h>
#include <torch/headeronly/core/ScalarType.h>
#include <torch/headeronly/util/Exception.h>

namespace {

using torch::stable::Tensor;

// relu(X W + b), element by element through the strides: any layout, a transposed X included.
template <typename T>
void linear_relu_loop(const Tensor& X, const Tensor& W, const Tensor& b, Tensor& out) {
  const auto* x = static_cast<const T*>(X.data_ptr());
  const auto* w = static_cast<const T*>(W.data_ptr());
  const auto* bias = static_cast<const T*>(b.data_ptr());
  auto* o = static_cast<T*>(out.data_ptr());
  const int64_t n = X.size(0), in = X.size(1), units = W.size(1);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < units; ++j) {
      T acc = bias[j * b.stride(0)];
      for (int64_t k = 0; k < in; ++k)
        acc += x[i * X.stride(0) + k * X.stride(1)] * w[k * W.stride(0) + j * W.stride(1)];
      o[i * units + j] = acc > T(0) ? acc : T(0);
    }
  }
}

Tensor linear_relu(Tensor X, Tensor W, Tensor b) {
  STD_TORCH_CHECK(X.dim() == 2 && W.dim() == 2 && b.dim() == 1,
                  "modelos_stable::linear_relu: X [n, in] and W [in, units] must be 2-D and b [units] 1-D");
  STD_TORCH_CHECK(X.size(1) == W.size(0) && W.size(1) == b.size(0),
                  "modelos_stable::linear_relu: X's columns, W's rows and b's length do not chain");
  STD_TORCH_CHECK(X.scalar_type() == W.scalar_type() && W.scalar_type() == b.scalar_type(),
                  "modelos_stable::linear_relu: X, W and b must have one dtype");
  STD_TORCH_CHECK(X.is_cpu() && W.is_cpu() && b.is_cpu(), "modelos_stable::linear_relu: a CPU kernel only");
  int64_t sizes[] = {X.size(0), W.size(1)};
  auto out = torch::stable::new_empty(X, {sizes, 2});
  if (X.scalar_type() == torch::headeronly::ScalarType::Float) {
    linear_relu_loop<float>(X, W, b, out);
  } else if (X.scalar_type() == torch::headeronly::ScalarType::Double) {
    linear_relu_loop<double>(X, W, b, out);
  } else {
    STD_TORCH_CHECK(false, "modelos_stable::linear_relu: float32 or float64 only");
  }
  return out;
}

}  // namespace

STABLE_TORCH_LIBRARY(modelos_stable, m) { m.def("linear_relu(Tensor X, Tensor W, Tensor b) -> Tensor"); }

STABLE_TORCH_LIBRARY_IMPL(modelos_stable, CPU, m) { m.impl("linear_relu", TORCH_BOX(&linear_relu)); }
