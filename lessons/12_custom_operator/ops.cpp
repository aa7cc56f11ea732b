// The operator in PyTorch's dispatcher: the schema, a kernel per dispatch key, and the C++ callers. Built
// into libmodelos_ops, which the lesson links and Python loads with torch.ops.load_library; registration
// happens when the library is loaded, in either language.
#include <dlfcn.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <mutex>
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
  // Python's None for a Tensor argument arrives as an undefined tensor, which has no size, dtype or device.
  for (const auto& [name, t] : {std::pair<const char*, const torch::Tensor&>{"X", X}, {"W", W}, {"b", b}})
    TORCH_CHECK(t.defined(), "modelos::linear_relu: ", name, " is None; pass a tensor");
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
              "modelos::linear_relu: X, W and b need a floating-point dtype; got ", X.scalar_type());
  TORCH_CHECK(X.device() == W.device() && W.device() == b.device(),
              "modelos::linear_relu: X, W and b must be on one device; got ", X.device(), ", ", W.device(),
              " and ", b.device());
}

void check_relu_backward(const torch::Tensor& grad, const torch::Tensor& out) {
  TORCH_CHECK(grad.defined() && out.defined(), "modelos::relu_backward: ", grad.defined() ? "out" : "grad",
              " is None; pass a tensor");
  TORCH_CHECK(grad.dim() == out.dim(), "modelos::relu_backward: grad is ", grad.dim(), "-D, out ", out.dim(),
              "-D");
  for (int64_t d = 0; d < grad.dim(); ++d)
    TORCH_CHECK(MP_SIZE(grad, d) == MP_SIZE(out, d),
                "modelos::relu_backward: grad and out differ in dimension ", d);
  TORCH_CHECK(grad.scalar_type() == out.scalar_type() && grad.device() == out.device(),
              "modelos::relu_backward: grad and out must have one dtype and one device");
}

// What a kernel with data will allocate, checked before it does: the output [n, units] (and X W, of the same
// size) must have a size that fits in 64 bits and fit in the memory there is (on the CPU, this machine's;
// on a GPU, its free memory), or LibTorch's allocator fails with a message that names neither the operator
// nor the argument. The sizes are concrete here: the Meta kernel, which traced calls reach with symbolic
// sizes, allocates nothing and is not checked.
void check_output_fits(const torch::Tensor& X, const torch::Tensor& W) {
  const int64_t n = X.size(0), units = W.size(1);
  const auto element = static_cast<int64_t>(X.element_size());
  int64_t bytes = 0;
  // c10::mul_overflows takes uint64_t in 1.13 and int64_t in 2.x: the compiler's own check serves both.
  const bool overflows =
      __builtin_mul_overflow(n, units, &bytes) || __builtin_mul_overflow(bytes, element, &bytes);
  TORCH_CHECK(!overflows, "modelos::linear_relu: the output would be [", n, ", ", units, "] (X has ", n,
              " rows, W ", units, " columns), more elements than a tensor can hold");
  uint64_t available = 0;
  if (X.device().is_cpu()) {
    available = static_cast<uint64_t>(sysconf(_SC_PHYS_PAGES)) * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  } else if (X.device().is_cuda()) {
#if MP_HAVE_CUDA_KERNEL
    available = cuda_free_memory(X.device());
#endif
  }
  TORCH_CHECK(available == 0 || static_cast<uint64_t>(bytes) <= available,
              "modelos::linear_relu: the output [", n, ", ", units, "] (X has ", n, " rows, W ", units,
              " columns) would take ", bytes, " bytes, more than the ", available, " bytes of memory on ",
              X.device());
}

// Whether this LibTorch computes the kernel for a dtype on a device type: found out once by running the
// kernel on 1x1 tensors, since which dtypes a LibTorch's matrix multiply supports differs between versions
// (1.13 has no Half on the CPU; 2.x has it).
template <torch::Tensor (*Kernel)(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&)>
bool kernel_supports(const torch::Tensor& X) {
  static std::mutex mutex;
  static std::map<std::pair<c10::DeviceType, c10::ScalarType>, bool> known;
  const std::lock_guard<std::mutex> lock(mutex);
  const auto key = std::make_pair(X.device().type(), X.scalar_type());
  if (const auto found = known.find(key); found != known.end()) return found->second;
  bool works = true;
  try {
    const auto one = torch::zeros({1, 1}, X.options());
    Kernel(one, one, torch::zeros({1}, X.options()));
  } catch (const c10::Error&) {
    works = false;
  }
  return known[key] = works;
}

// A backend's kernel behind the shared checks.
template <torch::Tensor (*Kernel)(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&)>
torch::Tensor checked_linear_relu(const torch::Tensor& X, const torch::Tensor& W, const torch::Tensor& b) {
  check_linear_relu(X, W, b);
  check_output_fits(X, W);
  TORCH_CHECK(kernel_supports<Kernel>(X), "modelos::linear_relu: X, W and b are ", X.scalar_type(),
              ", which this LibTorch's matrix multiply does not compute on ", X.device().type(),
              "; use float32 or float64");
  return Kernel(X, W, b);
}

// The Meta kernel: the same checks, none that needs concrete sizes or data.
torch::Tensor checked_linear_relu_meta(const torch::Tensor& X, const torch::Tensor& W,
                                       const torch::Tensor& b);

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

torch::Tensor checked_linear_relu_meta(const torch::Tensor& X, const torch::Tensor& W,
                                       const torch::Tensor& b) {
  check_linear_relu(X, W, b);
  return linear_relu_meta(X, W, b);
}

// Autograd: the hand-written backward, through the same autograd::Function a C++ caller may use directly.
// The checks come first: autograd itself would fail on an undefined tensor in its own words.
torch::Tensor linear_relu_autograd(const torch::Tensor& X, const torch::Tensor& W, const torch::Tensor& b) {
  check_linear_relu(X, W, b);
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
  m.impl("linear_relu", &custom_operator::checked_linear_relu_meta);
  m.impl("relu_backward", &custom_operator::checked_relu_backward<&custom_operator::relu_backward_meta>);
}

TORCH_LIBRARY_IMPL(modelos, Autograd, m) { m.impl("linear_relu", &custom_operator::linear_relu_autograd); }
