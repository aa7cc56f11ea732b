// Outcomes of "Inicialización de parámetros", "Inicialización integrada" and "Inicialización personalizada".
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "lessons/07_parameter_init/parameter_init.h"
#include "tests/testing.h"

using namespace parameter_init;

// Large enough for the statistics to mean something: a million weights.
torch::nn::Sequential make_wide_net() {
  torch::nn::Linear first(1000, 1000);
  torch::nn::Linear second(1000, 10);
  return torch::nn::Sequential(first, torch::nn::ReLU(), second);
}

TEST(ParameterInit, NormalInitHasMeanZeroStdOneHundredthAndZeroBias) {
  auto net = make_wide_net();
  net->apply(init_normal);
  const auto& w = net->ptr<torch::nn::LinearImpl>(0)->weight;
  // Standard errors for 1e6 samples: 1e-5 for the mean, 7e-6 for the std; tolerances are 10x.
  EXPECT_NEAR(w.mean().item<double>(), 0.0, 1e-4);
  EXPECT_NEAR(w.std().item<double>(), 0.01, 1e-4);
  for (int i : {0, 2}) EXPECT_TRUE(net->ptr<torch::nn::LinearImpl>(i)->bias.eq(0).all().item<bool>());
}

TEST(ParameterInit, ConstantInitGivesAllOnes) {
  auto net = make_net();
  net->apply(init_constant);
  for (int i : {0, 2}) {
    EXPECT_TRUE(net->ptr<torch::nn::LinearImpl>(i)->weight.eq(1).all().item<bool>());
    EXPECT_TRUE(net->ptr<torch::nn::LinearImpl>(i)->bias.eq(0).all().item<bool>());
  }
}

TEST(ParameterInit, XavierWeightsLieWithinTheBound) {
  auto net = make_wide_net();
  net[0]->apply(init_xavier);
  const auto& first = *net->ptr<torch::nn::LinearImpl>(0);
  const double bound = std::sqrt(6.0 / (1000 + 1000));
  EXPECT_DOUBLE_EQ(xavier_bound(first), bound);
  EXPECT_LE(first.weight.abs().max().item<double>(), bound);
  // It fills the box, not a small part of it: the extremes come within 1% of the bound.
  EXPECT_GT(first.weight.abs().max().item<double>(), 0.99 * bound);
}

TEST(ParameterInit, ApplyOnOneLayerReachesOnlyThatLayer) {
  auto net = make_net();
  auto first_before = net->ptr<torch::nn::LinearImpl>(0)->weight.clone();
  net[2]->apply(init_42);
  EXPECT_TRUE(net->ptr<torch::nn::LinearImpl>(2)->weight.eq(42).all().item<bool>());
  EXPECT_TRUE(testing_mp::tensors_equal(net->ptr<torch::nn::LinearImpl>(0)->weight, first_before));
}

TEST(ParameterInit, MyInitLeavesZerosOrMagnitudesFromFiveToTen) {
  auto net = make_wide_net();
  net->apply(my_init);
  const auto w = net->ptr<torch::nn::LinearImpl>(0)->weight.detach();
  const auto zero = w.eq(0);
  const auto kept = w.abs().ge(5) & w.abs().le(10);
  EXPECT_TRUE((zero | kept).all().item<bool>());
  // Both kinds occur, about half each (|w| < 5 has probability 1/2).
  EXPECT_NEAR(zero.to(torch::kDouble).mean().item<double>(), 0.5, 0.01);
  EXPECT_GT(kept.sum().item<int64_t>(), 0);
}

TEST(ParameterInit, DirectSettingIsVisibleThroughTheNet) {
  auto net = make_net();
  auto& first = *net->ptr<torch::nn::LinearImpl>(0);
  auto before = first.weight.clone();
  {
    torch::NoGradGuard no_grad;
    first.weight.add_(1);
    first.weight[0][0] = 42;
  }
  auto through_net = net->named_parameters()["0.weight"];
  EXPECT_EQ(through_net[0][0].item<float>(), 42.0F);
  EXPECT_TRUE(testing_mp::tensors_equal(through_net.slice(0, 1), before.slice(0, 1) + 1));
}

TEST(ParameterInit, SameSeedGivesSameInitialWeights) {
  torch::manual_seed(7);
  auto a = make_net();
  torch::manual_seed(7);
  auto b = make_net();
  auto c = make_net();  // the generator has moved on: a different net
  for (int i : {0, 2}) {
    EXPECT_TRUE(testing_mp::tensors_equal(a->ptr<torch::nn::LinearImpl>(i)->weight,
                                          b->ptr<torch::nn::LinearImpl>(i)->weight));
  }
  EXPECT_FALSE(
      torch::equal(a->ptr<torch::nn::LinearImpl>(0)->weight, c->ptr<torch::nn::LinearImpl>(0)->weight));
}

TEST(ParameterInit, DefaultLinearInitLiesWithinOneOverSqrtFanIn) {
  torch::nn::Linear linear(400, 300);
  const double bound = 1.0 / std::sqrt(400.0);
  EXPECT_LE(linear->weight.abs().max().item<double>(), bound);
  EXPECT_LE(linear->bias.abs().max().item<double>(), bound);
  EXPECT_GT(linear->weight.abs().max().item<double>(), 0.99 * bound);
}

MP_TEST_ON_DEVICES(ParameterInit);

TEST_P(ParameterInit, InitialisersWorkWhereTheParametersLive) {
  auto net = make_wide_net();
  net->to(device());
  net->apply(init_normal);
  const auto& w = net->ptr<torch::nn::LinearImpl>(0)->weight;
  EXPECT_EQ(w.device(), device());
  EXPECT_NEAR(w.std().item<double>(), 0.01, 1e-4);
  net->apply(my_init);
  const auto magnitudes = net->ptr<torch::nn::LinearImpl>(0)->weight.abs();
  EXPECT_TRUE((magnitudes.eq(0) | (magnitudes.ge(5) & magnitudes.le(10))).all().item<bool>());
}
