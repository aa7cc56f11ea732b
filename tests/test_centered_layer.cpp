// Outcomes of "Capas sin Parámetros".
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "lessons/04_centered_layer/centered_layer.h"
#include "tests/testing.h"

using testing_mp::tensors_equal;

MP_TEST_ON_DEVICES(CenteredLayer);

TEST_P(CenteredLayer, SubtractsTheMeanExactly) {
  centered_layer::CenteredLayer layer;
  auto out = layer(torch::tensor({1.0F, 2.0F, 3.0F, 4.0F, 5.0F}, device()));
  EXPECT_TRUE(tensors_equal(out, torch::tensor({-2.0F, -1.0F, 0.0F, 1.0F, 2.0F})));
}

TEST(CenteredLayer, HasNoParameters) {
  centered_layer::CenteredLayer layer;
  EXPECT_EQ(layer->parameters().size(), 0u);
  EXPECT_EQ(layer->named_buffers().size(), 0u);
}

TEST_P(CenteredLayer, ComposedNetHasZeroMeanUpToRounding) {
  auto net = centered_layer::make_net();
  net->to(device());
  auto Y = net->forward(torch::rand({4, 8}, device()));
  EXPECT_EQ(Y.sizes(), (std::vector<int64_t>{4, 128}));
  EXPECT_EQ(Y.scalar_type(), torch::kFloat);
  // The Linear alone does not have a zero mean (ten times the tolerance below): the centring is what
  // brings it there.
  ASSERT_GT(
      std::abs(net[0]->as<torch::nn::Linear>()->forward(torch::ones({4, 8}, device())).mean().item<double>()),
      1e-5);
  EXPECT_LT(std::abs(Y.mean().item<double>()), 1e-6);
}

TEST_P(CenteredLayer, GradientsFlowThroughToTheLinear) {
  auto net = centered_layer::make_net();
  net->to(device());
  // A loss whose gradient is not removed by the centring (the sum of a centred tensor is constant).
  net->forward(torch::rand({4, 8}, device())).pow(2).sum().backward();
  const auto& grad = net[0]->as<torch::nn::Linear>()->weight.grad();
  ASSERT_TRUE(grad.defined());
  EXPECT_GT(grad.abs().sum().item<double>(), 0.0);
}
