// The operator in PyTorch's dispatcher: the schema, a kernel per dispatch key, and the C++ callers. Built
// into libmodelos_ops, which the lesson links and Python loads with torch.ops.load_library; registration
// happens when the library is loaded, in either language.
#include <dlfcn.h>

#include <filesystem>
#include <map>
#include <sstream>
#include <string>

#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>
#include <torch/torch.h>
#include <torch/version.h>

#include "lessons/12_custom_operator/custom_operator.h"

// Shapes that may be symbolic: a traced call (torch.compile, torch.export) carries SymInts, which the Meta
// kernel must not turn into numbers. LibTorch 1.13 has only concrete sizes.
#if TORCH_VERSION_MAJOR >= 2
#define MP_SIZE(t, d) (t).sym_size(d)
#else
#define MP_SIZE(t, d) (t).size(d)
#endif

namespace custom_operator {
namespace {

// The same checks for every kernel, so that Python and C++, CPU, CUDA and Meta alike refuse bad input with
// one clear error (a RuntimeError in Python) rather than a crash or a wrong answer.
void check_linear_relu(const torch::Tensor& X, const torch::Tensor& W, const torch::Tensor& b) {
  TORCH_CHECK(X.dim() == 2 && W.dim() == 2 && b.dim() == 1,
              "modelos::linear_relu: X [n, in] and W [in, units] must be 2-D and b [units] 1-D; got ",
              X.dim(), "-D, ", W.dim(), "-D and ", b.dim(), "-D");
  TORCH_CHECK(MP_SIZE(X, 1) == MP_SIZE(W, 0), "modelos::linear_relu: X has ", MP_SIZE(X, 1),
              " columns but W has ", MP_SIZE(W, 0), " rows; X W needs them equal");
  TORCH_CHECK(MP_SIZE(W, 1) == MP_SIZE(b, 0), "modelos::linear_relu: W has ", MP_SIZE(W, 1),
              " columns but b has ", MP_SIZE(b, 0), " entries");
  TORCH_CHECK(X.scalar_type() == W.scalar_type() && W.scalar_type() == b.scalar_type(),
              "modelos::linear_relu: X, W and b must have one dtype; got ", X.scalar_type(), ", ",
              W.scalar_type(), " and ", b.scalar_type());
  TORCH_CHECK(at::isFloatingType(X.scalar_type()),
              "modelos::linear_relu: a floating-point dtype is needed; got ", X.scalar_type());
  TORCH_CHECK(X.device() == W.device() && W.device() == b.device(),
              "modelos::linear_relu: X, W and b must be on one device; got ", X.device(), ", ", W.device(),
              " and ", b.device());
}

void check_relu_backward(const torch::Tensor& grad, const torch::Tensor& out) {
  TORCH_CHECK(grad.dim() == out.dim(), "modelos::relu_backward: grad is ", grad.dim(), "-D, out ", out.dim(),
              "-D");
  for (int64_t d = 0; d < grad.dim(); ++d)
    TORCH_CHECK(MP_SIZE(grad, d) == MP_SIZE(out, d),
                "modelos::relu_backward: grad and out differ in dimension ", d);
  TORCH_CHECK(grad.scalar_type() == out.scalar_type() && grad.device() == out.device(),
              "modelos::relu_backward: grad and out must have one dtype and one device");
}

// A backend's kernel behind the shared checks.
template <torch::Tensor (*Kernel)(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&)>
torch::Tensor checked_linear_relu(const torch::Tensor& X, const torch::Tensor& W, const torch::Tensor& b) {
  check_linear_relu(X, W, b);
  return Kernel(X, W, b);
}

template <torch::Tensor (*Kernel)(const torch::Tensor&, const torch::Tensor&)>
torch::Tensor checked_relu_backward(const torch::Tensor& grad, const torch::Tensor& out) {
  check_relu_backward(grad, out);
  return Kernel(grad, out);
}

// Meta: only the output's shape and dtype, no data, which is all that tracing needs.
torch::Tensor linear_relu_meta(const torch::Tensor& X, const torch::Tensor& W, const torch::Tensor& /*b*/) {
#if TORCH_VERSION_MAJOR >= 2
  return at::empty_symint({X.sym_size(0), W.sym_size(1)}, X.options());
#else
  return at::empty({X.size(0), W.size(1)}, X.options());
#endif
}

torch::Tensor relu_backward_meta(const torch::Tensor& grad, const torch::Tensor& /*out*/) {
  return at::empty_like(grad);
}

// Autograd: the hand-written backward, through the same autograd::Function a C++ caller may use directly.
torch::Tensor linear_relu_autograd(const torch::Tensor& X, const torch::Tensor& W, const torch::Tensor& b) {
  return LinearReluFunction::apply(X, W, b);
}

using LinearReluSignature = torch::Tensor(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&);
using ReluBackwardSignature = torch::Tensor(const torch::Tensor&, const torch::Tensor&);

}  // namespace

torch::Tensor linear_relu(const torch::Tensor& X, const torch::Tensor& W, const torch::Tensor& b) {
  static const auto op =
      c10::Dispatcher::singleton().findSchemaOrThrow("modelos::linear_relu", "").typed<LinearReluSignature>();
  return op.call(X, W, b);
}

torch::Tensor relu_backward(const torch::Tensor& grad, const torch::Tensor& out) {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("modelos::relu_backward", "")
                             .typed<ReluBackwardSignature>();
  return op.call(grad, out);
}

namespace {
const c10::OperatorHandle& handle(const std::string& name) {
  static std::map<std::string, c10::OperatorHandle> found;
  auto at = found.find(name);
  if (at == found.end())
    at = found.emplace(name, c10::Dispatcher::singleton().findSchemaOrThrow(name.c_str(), "")).first;
  return at->second;
}
}  // namespace

std::string schema(const std::string& name) {
  std::ostringstream out;
  out << handle(name).schema();
  return out.str();
}

bool has_kernel(const std::string& name, c10::DispatchKey key) {
  return handle(name).hasKernelForDispatchKey(key);
}

std::string library_path() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<const void*>(&library_path), &info) == 0 || info.dli_fname == nullptr)
    return "";
  std::error_code ec;
  const auto path = std::filesystem::canonical(info.dli_fname, ec);
  return ec ? std::string(info.dli_fname) : path.string();
}

}  // namespace custom_operator

TORCH_LIBRARY(modelos, m) {
  m.def("linear_relu(Tensor X, Tensor W, Tensor b) -> Tensor");
  m.def("relu_backward(Tensor grad, Tensor out) -> Tensor");
}

TORCH_LIBRARY_IMPL(modelos, CPU, m) {
  m.impl("linear_relu", &custom_operator::checked_linear_relu<&custom_operator::linear_relu_forward_cpu>);
  m.impl("relu_backward", &custom_operator::checked_relu_backward<&custom_operator::relu_backward_cpu>);
}

#if MP_HAVE_CUDA_KERNEL
TORCH_LIBRARY_IMPL(modelos, CUDA, m) {
  m.impl("linear_relu", &custom_operator::checked_linear_relu<&custom_operator::linear_relu_forward_cuda>);
  m.impl("relu_backward", &custom_operator::checked_relu_backward<&custom_operator::relu_backward_cuda>);
}
#endif

TORCH_LIBRARY_IMPL(modelos, Meta, m) {
  m.impl("linear_relu", &custom_operator::checked_linear_relu<&custom_operator::linear_relu_meta>);
  m.impl("relu_backward", &custom_operator::checked_relu_backward<&custom_operator::relu_backward_meta>);
}

TORCH_LIBRARY_IMPL(modelos, Autograd, m) { m.impl("linear_relu", &custom_operator::linear_relu_autograd); }
