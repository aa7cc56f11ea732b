// Outcomes of "Ejecutando código en la función de propagación directa".
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "common/lesson/params.h"
#include "lessons/03_fixed_hidden_mlp/fixed_hidden_mlp.h"
#include "tests/testing.h"

using testing_mp::tensors_equal;

MP_TEST_ON_DEVICES(FixedHiddenMLP);

TEST(FixedHiddenMLP, ConstantWeightIsNotAParameter) {
  fixed_hidden_mlp::FixedHiddenMLP net;
  for (const auto& p : net->parameters())
    EXPECT_NE(p.unsafeGetTensorImpl(), net->rand_weight.unsafeGetTensorImpl());
  EXPECT_FALSE(net->rand_weight.requires_grad());
}

TEST(FixedHiddenMLP, OnlyParametersAreTheLinearOnes) {
  fixed_hidden_mlp::FixedHiddenMLP net;
  std::vector<std::pair<std::string, std::vector<int64_t>>> found;
  for (const auto& p : net->named_parameters()) found.emplace_back(p.key(), p.value().sizes().vec());
  EXPECT_EQ(found, (std::vector<std::pair<std::string, std::vector<int64_t>>>{{"linear.weight", {20, 20}},
                                                                              {"linear.bias", {20}}}));
}

TEST_P(FixedHiddenMLP, TrainingChangesLinearButNotTheConstant) {
  fixed_hidden_mlp::FixedHiddenMLP net;
  net->to(device());
  auto rand_weight = net->rand_weight.clone();
  auto weight = net->linear->weight.clone();
  torch::optim::SGD sgd(net->parameters(), torch::optim::SGDOptions(0.1));
  net(torch::rand({2, 20}, device())).backward();
  sgd.step();
  EXPECT_TRUE(tensors_equal(net->rand_weight, rand_weight));
  EXPECT_FALSE(torch::equal(net->linear->weight, weight));
}

TEST_P(FixedHiddenMLP, OutputIsAScalarOfAbsoluteValueAtMostOne) {
  fixed_hidden_mlp::FixedHiddenMLP net;
  net->to(device());
  auto out = net(torch::rand({2, 20}, device()));
  EXPECT_EQ(out.dim(), 0);
  EXPECT_LE(std::abs(out.item<double>()), 1.0);
}

TEST(FixedHiddenMLP, LoopRunsZeroTimesForASmallOutput) {
  fixed_hidden_mlp::FixedHiddenMLP net;
  torch::NoGradGuard no_grad;
  // With zero weights the second linear returns its bias; a bias of 0.01 sums to 0.2 < 1: no halving.
  net->linear->weight.zero_();
  net->linear->bias.fill_(0.01);
  auto out = net(torch::rand({2, 20}));
  EXPECT_NEAR(out.item<double>(), 2 * 20 * 0.01, 1e-6);
}

TEST(FixedHiddenMLP, LoopRunsManyTimesForAHugeInput) {
  fixed_hidden_mlp::FixedHiddenMLP net;
  auto X = torch::rand({2, 20}) * 1e6;
  // Without the loop the output would be huge: the loop had to halve many times.
  torch::NoGradGuard no_grad;
  auto unscaled = net->linear(torch::relu(torch::mm(net->linear(X), net->rand_weight) + 1));
  ASSERT_GT(unscaled.abs().sum().item<double>(), 1e3);
  EXPECT_LE(std::abs(net(X).item<double>()), 1.0);
}

TEST_P(FixedHiddenMLP, ChimeraGivesAScalar) {
  auto chimera = fixed_hidden_mlp::make_chimera();
  chimera->to(device());
  auto out = chimera->forward(torch::rand({2, 20}, device()));
  EXPECT_EQ(out.dim(), 0);
}

TEST_P(FixedHiddenMLP, ConstantMovesWithTheModule) {
  fixed_hidden_mlp::FixedHiddenMLP net;
  net->to(device());
  EXPECT_EQ(net->rand_weight.device(), device());
  EXPECT_EQ(net->linear->weight.device(), device());
}
