#pragma once
// "a menos que implementemos un nuevo operador": a fused linear + ReLU with a hand-written backward,
// as a torch::autograd::Function, used inside a module.
#include <string>

#include <torch/torch.h>

namespace custom_operator {

#if MP_HAVE_CUDA_KERNEL
// Hand-written CUDA kernels (linear_relu_cuda.cu), built only where LibTorch and the toolkit have CUDA.
torch::Tensor linear_relu_forward_cuda(const torch::Tensor& X, const torch::Tensor& W,
                                       const torch::Tensor& b);
torch::Tensor relu_backward_cuda(const torch::Tensor& grad, const torch::Tensor& out);
// The free memory of a GPU, in bytes (cudaMemGetInfo), or 0 when it cannot be asked.
uint64_t cuda_free_memory(const c10::Device& device);
#endif

inline bool have_cuda_kernel() {
#if MP_HAVE_CUDA_KERNEL
  return true;
#else
  return false;
#endif
}

// relu(X W + b) in one step on the CPU: addmm fuses the bias, relu_ works in place.
inline torch::Tensor linear_relu_forward_cpu(const torch::Tensor& X, const torch::Tensor& W,
                                             const torch::Tensor& b) {
  return torch::addmm(b, X, W).relu_();
}

// The ReLU's share of the backward: the incoming gradient where the output was positive, else 0.
inline torch::Tensor relu_backward_cpu(const torch::Tensor& grad, const torch::Tensor& out) {
  return grad * out.gt(0).to(grad.scalar_type());
}

// The operator, called through PyTorch's dispatcher as Python calls torch.ops.modelos.linear_relu: the
// dispatcher picks the kernel by the inputs' keys (Autograd first, then CPU, CUDA or Meta). Defined with
// the registrations in ops.cpp, in the library libmodelos_ops.
torch::Tensor linear_relu(const torch::Tensor& X, const torch::Tensor& W, const torch::Tensor& b);
// The ReLU's share of the backward, an operator too, so that a traced backward (torch.compile) sees it.
torch::Tensor relu_backward(const torch::Tensor& grad, const torch::Tensor& out);

// What the dispatcher knows of an operator ("modelos::linear_relu"): its schema, and whether it has a
// kernel for a dispatch key. And where the library is, for Python's torch.ops.load_library.
std::string schema(const std::string& name);
bool has_kernel(const std::string& name, c10::DispatchKey key);
std::string library_path();

// out = relu(X W + b), X [n, in], W [in, units], b [units]. Backward, with g = dL/dout masked by out > 0:
//   dL/dX = g W^T,  dL/dW = X^T g,  dL/db = sum of g over the batch.
// The operator's Autograd kernel is this Function; a C++ caller may also apply it directly.
struct LinearReluFunction : public torch::autograd::Function<LinearReluFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& X,
                               const torch::Tensor& W, const torch::Tensor& b) {
    // Below autograd, the dispatcher goes on to the CPU, CUDA or Meta kernel.
    const at::AutoDispatchBelowADInplaceOrView below_autograd;
    auto out = linear_relu(X, W, b);
    // The output, not the pre-activation, is kept: out > 0 is exactly where the ReLU let the gradient pass.
    ctx->save_for_backward({X, W, out});
    return out;
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const auto& X = saved[0];
    const auto& W = saved[1];
    const auto g = relu_backward(grad_outputs[0], saved[2]);
    return {g.mm(W.t()), X.t().mm(g), g.sum(0)};
  }
};

// The notes' MyLinear, computed by the fused operator.
class FusedLinearImpl : public torch::nn::Module {
 public:
  FusedLinearImpl(int64_t in_units, int64_t units) {
    weight = register_parameter("weight", torch::randn({in_units, units}));
    bias = register_parameter("bias", torch::randn({units}));
  }

  torch::Tensor forward(const torch::Tensor& X) { return linear_relu(X, weight, bias); }

  torch::Tensor weight;
  torch::Tensor bias;
};
TORCH_MODULE(FusedLinear);

// The same computation from LibTorch's own ops, differentiated by autograd: the reference.
inline torch::Tensor composite_linear_relu(const torch::Tensor& X, const torch::Tensor& W,
                                           const torch::Tensor& b) {
  return torch::relu(X.matmul(W) + b);
}

// What --help says the lesson is.
inline constexpr const char* kAbout = "A new operator: fused linear + ReLU with a hand-written backward";

}  // namespace custom_operator
