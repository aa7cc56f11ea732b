// Outcomes of the custom operator lesson: a hand-written backward that passes a gradient check that
// can fail, and agrees with LibTorch's own ops.
#include <functional>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "common/compute/gradcheck.h"
#include "lessons/12_custom_operator/custom_operator.h"
#include "tests/testing.h"

namespace op = custom_operator;
using testing_mp::tensors_close;

namespace {

// A test-only operator with a deliberate slip in its backward: the ReLU mask is forgotten, so the
// gradient also flows where the output was clamped to 0.
struct MasklessLinearRelu : public torch::autograd::Function<MasklessLinearRelu> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& X,
                               const torch::Tensor& W, const torch::Tensor& b) {
    ctx->save_for_backward({X, W});
    return op::linear_relu_forward_cpu(X, W, b);
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list g) {
    const auto saved = ctx->get_saved_variables();
    return {g[0].mm(saved[1].t()), saved[0].t().mm(g[0]), g[0].sum(0)};
  }
};

std::vector<torch::Tensor> double_inputs(const torch::Device& device) {
  auto options = torch::dtype(torch::kDouble).device(device);
  // Half the pre-activations are negative (a zero-mean bias and weights), so the mask matters.
  return {torch::rand({4, 5}, options), torch::randn({5, 3}, options), torch::randn({3}, options)};
}

const std::vector<std::string> kNames{"X", "weight", "bias"};

}  // namespace

MP_TEST_ON_DEVICES(CustomOperator);

TEST_P(CustomOperator, GradientCheckPassesForEveryInput) {
  const auto inputs = double_inputs(device());
  const auto result = common::gradcheck(
      [](const std::vector<torch::Tensor>& in) { return op::linear_relu(in[0], in[1], in[2]); }, inputs,
      kNames);
  EXPECT_TRUE(result.passed) << result.report;
  ASSERT_EQ(result.max_error.size(), 3u);
  for (size_t i = 0; i < 3; ++i) EXPECT_LT(result.max_error[i], 1e-5) << kNames[i];
}

TEST(CustomOperator, GradientCheckCatchesAWrongBackward) {
  const auto inputs = double_inputs(torch::kCPU);
  // Some outputs really are clamped, or the slip would not show.
  ASSERT_TRUE(op::linear_relu_forward_cpu(inputs[0], inputs[1], inputs[2]).eq(0).any().item<bool>());
  const auto result = common::gradcheck(
      [](const std::vector<torch::Tensor>& in) { return MasklessLinearRelu::apply(in[0], in[1], in[2]); },
      inputs, kNames);
  EXPECT_FALSE(result.passed);
  EXPECT_NE(result.report.find("weight"), std::string::npos) << result.report;
}

TEST_P(CustomOperator, OutputAndGradientsEqualTheComposite) {
  auto X = torch::rand({8, 5}, device()).requires_grad_(true);
  auto W = torch::randn({5, 3}, device()).requires_grad_(true);
  auto b = torch::randn({3}, device()).requires_grad_(true);
  auto fused = op::linear_relu(X, W, b);
  auto composite = op::composite_linear_relu(X, W, b);
  // float32 sums in another order: 1e-6.
  EXPECT_TRUE(tensors_close(fused, composite, 1e-5, 1e-6));
  auto fused_grads = torch::autograd::grad({fused.sum()}, {X, W, b});
  auto composite_grads = torch::autograd::grad({composite.sum()}, {X, W, b});
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_TRUE(tensors_close(fused_grads[i], composite_grads[i], 1e-5, 1e-6)) << kNames[i];
  }
}

TEST_P(CustomOperator, ModuleTrainsThroughTheOperator) {
  op::FusedLinear layer(5, 3);
  layer->to(device());
  {
    torch::NoGradGuard no_grad;
    layer->bias.fill_(10);  // every unit open
  }
  auto before = layer->weight.clone();
  torch::optim::SGD sgd(layer->parameters(), torch::optim::SGDOptions(0.1));
  layer(torch::rand({2, 5}, device())).sum().backward();
  sgd.step();
  EXPECT_FALSE(torch::equal(layer->weight, before));
}

TEST_P(CustomOperator, CudaKernelMatchesTheCpuPath) {
  if (device().is_cpu()) GTEST_SKIP() << "compares the CUDA kernel with the CPU: needs a GPU";
  if (!op::have_cuda_kernel())
    GTEST_SKIP() << "built without the CUDA toolkit: no hand-written kernel to compare";
  auto X = torch::rand({64, 33});
  auto W = torch::randn({33, 17});
  auto b = torch::randn({17});
  auto cpu = op::linear_relu_forward_cpu(X, W, b);
#if MP_HAVE_CUDA_KERNEL
  auto cuda = op::linear_relu_forward_cuda(X.to(device()), W.to(device()), b.to(device()));
  EXPECT_TRUE(tensors_close(cuda.cpu(), cpu, 1e-5, 1e-5));
  auto grad = torch::randn({64, 17});
  EXPECT_TRUE(testing_mp::tensors_equal(op::relu_backward_cuda(grad.to(device()), cuda).cpu(),
                                        op::relu_backward_cpu(grad, cuda.cpu())));
#endif
}

// Bad input through the dispatcher: one c10::Error naming the operator and what is wrong, never a crash,
// whichever kernel (CPU, Meta) the dispatcher picks.
TEST(CustomOperator, BadInputIsOneErrorNamingTheOperator) {
  const auto X = torch::randn({3, 5});
  const auto W = torch::randn({5, 4});
  const auto b = torch::randn({4});
  const std::vector<std::pair<std::string, std::function<torch::Tensor()>>> cases{
      {"X of 3 dimensions", [&] { return op::linear_relu(X.unsqueeze(0), W, b); }},
      {"X and W that do not chain", [&] { return op::linear_relu(X, W.narrow(0, 0, 4), b); }},
      {"b of the wrong length", [&] { return op::linear_relu(X, W, b.narrow(0, 0, 3)); }},
      {"mixed dtypes", [&] { return op::linear_relu(X, W.to(torch::kDouble), b); }},
      {"integer tensors",
       [&] { return op::linear_relu(X.to(torch::kLong), W.to(torch::kLong), b.to(torch::kLong)); }},
      {"mixed devices", [&] { return op::linear_relu(X.to(torch::kMeta), W, b); }},
  };
  for (const auto& [name, call] : cases) {
    try {
      call();
      ADD_FAILURE() << name << ": accepted";
    } catch (const c10::Error& e) {
      EXPECT_NE(std::string(e.what_without_backtrace()).find("modelos::linear_relu: "), std::string::npos)
          << name << ": " << e.what_without_backtrace();
    }
  }
}

TEST(CustomOperator, ATransposedInputGivesTheValuesOfItsContiguousCopy) {
  const auto Xt = torch::randn({5, 3}).t();
  ASSERT_FALSE(Xt.is_contiguous());
  const auto W = torch::randn({5, 4});
  const auto b = torch::randn({4});
  EXPECT_TRUE(testing_mp::tensors_equal(op::linear_relu(Xt, W, b), op::linear_relu(Xt.contiguous(), W, b)));
}

TEST(CustomOperator, TheMetaKernelGivesTheShapeWithoutData) {
  const auto out = op::linear_relu(torch::empty({7, 5}, torch::kMeta), torch::empty({5, 2}, torch::kMeta),
                                   torch::empty({2}, torch::kMeta));
  EXPECT_TRUE(out.is_meta());
  EXPECT_EQ(out.sizes(), torch::IntArrayRef({7, 2}));
}

TEST(CustomOperator, TheDispatcherHasAKernelForEveryKeyBuiltHere) {
  EXPECT_EQ(op::schema("modelos::linear_relu"),
            "modelos::linear_relu(Tensor X, Tensor W, Tensor b) -> Tensor");
  for (const auto key : {c10::DispatchKey::CPU, c10::DispatchKey::Meta, c10::DispatchKey::Autograd})
    EXPECT_TRUE(op::has_kernel("modelos::linear_relu", key)) << c10::toString(key);
  EXPECT_EQ(op::has_kernel("modelos::linear_relu", c10::DispatchKey::CUDA), op::have_cuda_kernel());
  EXPECT_NE(op::library_path().find("libmodelos_ops"), std::string::npos) << op::library_path();
}
