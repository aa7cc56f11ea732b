// Hand-written CUDA kernels for the fused linear + ReLU: compiled only where LibTorch and the toolkit
// have CUDA. Deliberately plain (one thread per output element): the lesson is the dispatch and the
// check against the CPU, not a fast GEMM, which cuBLAS does far better.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "lessons/12_custom_operator/custom_operator.h"

namespace custom_operator {
namespace {

template <typename scalar_t>
__global__ void linear_relu_kernel(const scalar_t* __restrict__ X, const scalar_t* __restrict__ W,
                                   const scalar_t* __restrict__ b, scalar_t* __restrict__ out, int64_t n,
                                   int64_t in, int64_t units) {
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= n * units) return;
  const int64_t row = idx / units;
  const int64_t col = idx % units;
  scalar_t acc = b[col];
  for (int64_t k = 0; k < in; ++k) acc += X[row * in + k] * W[k * units + col];
  out[idx] = acc > scalar_t(0) ? acc : scalar_t(0);
}

template <typename scalar_t>
__global__ void relu_backward_kernel(const scalar_t* __restrict__ grad, const scalar_t* __restrict__ out,
                                     scalar_t* __restrict__ result, int64_t size) {
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx < size) result[idx] = out[idx] > scalar_t(0) ? grad[idx] : scalar_t(0);
}

constexpr int kThreads = 256;

int blocks_for(int64_t size) { return static_cast<int>((size + kThreads - 1) / kThreads); }

}  // namespace

torch::Tensor linear_relu_forward_cuda(const torch::Tensor& X_in, const torch::Tensor& W_in,
                                       const torch::Tensor& b_in) {
  TORCH_CHECK(X_in.dim() == 2 && W_in.dim() == 2 && b_in.dim() == 1,
              "linear_relu: X and W must be 2-D, b 1-D");
  TORCH_CHECK(X_in.size(1) == W_in.size(0) && W_in.size(1) == b_in.size(0),
              "linear_relu: shapes do not chain");
  const c10::cuda::CUDAGuard guard(X_in.device());
  auto X = X_in.contiguous();
  auto W = W_in.contiguous();
  auto b = b_in.contiguous();
  auto out = torch::empty({X.size(0), W.size(1)}, X.options());
  const int64_t size = out.numel();
  if (size == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(X.scalar_type(), "linear_relu_forward_cuda", [&] {
    linear_relu_kernel<scalar_t><<<blocks_for(size), kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
        X.data_ptr<scalar_t>(), W.data_ptr<scalar_t>(), b.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(),
        X.size(0), X.size(1), W.size(1));
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

torch::Tensor relu_backward_cuda(const torch::Tensor& grad_in, const torch::Tensor& out_in) {
  const c10::cuda::CUDAGuard guard(grad_in.device());
  auto grad = grad_in.contiguous();
  auto out = out_in.contiguous();
  auto result = torch::empty_like(grad);
  const int64_t size = grad.numel();
  if (size == 0) return result;
  AT_DISPATCH_FLOATING_TYPES(grad.scalar_type(), "relu_backward_cuda", [&] {
    relu_backward_kernel<scalar_t><<<blocks_for(size), kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
        grad.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), result.data_ptr<scalar_t>(), size);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return result;
}

uint64_t cuda_free_memory(const c10::Device& device) {
  const c10::cuda::CUDAGuard guard(device);
  size_t free = 0, total = 0;
  if (cudaMemGetInfo(&free, &total) != cudaSuccess) {
    (void)cudaGetLastError();  // clears the error, so that the next CUDA call does not report it
    return 0;
  }
  return free;
}

}  // namespace custom_operator
