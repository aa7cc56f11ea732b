// Outcomes of "Capas con parámetros".
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "common/lesson/params.h"
#include "lessons/05_my_linear/my_linear.h"
#include "tests/testing.h"

using testing_mp::tensors_equal;

MP_TEST_ON_DEVICES(MyLinear);

TEST(MyLinear, ParametersAreExactlyWeightAndBias) {
  my_linear::MyLinear linear(5, 3);
  auto params = linear->named_parameters();
  ASSERT_EQ(params.size(), 2u);
  EXPECT_EQ(params[0].key(), "weight");
  EXPECT_EQ(params[0].value().sizes(), (std::vector<int64_t>{5, 3}));
  EXPECT_EQ(params[1].key(), "bias");
  EXPECT_EQ(params[1].value().sizes(), (std::vector<int64_t>{3}));
  for (const auto& p : params) EXPECT_TRUE(p.value().requires_grad()) << p.key();
}

TEST_P(MyLinear, ForwardIsReluOfXWPlusB) {
  my_linear::MyLinear linear(5, 3);
  linear->to(device());
  auto X = torch::rand({2, 5}, device());
  auto out = linear(X);
  auto by_hand = torch::clamp_min(X.mm(linear->weight) + linear->bias, 0);
  EXPECT_TRUE(testing_mp::tensors_close(out, by_hand, 1e-6, 1e-6));
  EXPECT_TRUE(out.ge(0).all().item<bool>());
}

TEST_P(MyLinear, SequentialOfTwoGivesTwoByOne) {
  auto net = my_linear::make_net();
  net->to(device());
  EXPECT_EQ(net->forward(torch::rand({2, 64}, device())).sizes(), (std::vector<int64_t>{2, 1}));
}

TEST_P(MyLinear, BackwardAndOneSgdStepTrainTheWeight) {
  my_linear::MyLinear linear(5, 3);
  linear->to(device());
  // A positive bias keeps every ReLU open, so every weight gets a gradient.
  {
    torch::NoGradGuard no_grad;
    linear->bias.fill_(10);
  }
  auto before = linear->weight.clone();
  torch::optim::SGD sgd(linear->parameters(), torch::optim::SGDOptions(0.1));
  linear(torch::rand({2, 5}, device())).sum().backward();
  ASSERT_TRUE(linear->weight.grad().defined());
  ASSERT_TRUE(linear->bias.grad().defined());
  sgd.step();
  EXPECT_FALSE(torch::equal(linear->weight, before));
}

TEST(MyLinear, SaveAndLoadIntoAFreshLayerReproducesTheOutput) {
  my_linear::MyLinear linear(5, 3);
  auto X = torch::rand({2, 5});
  const auto path = testing_mp::fresh_dir() / "my_linear.pt";
  torch::save(linear, path.string());
  my_linear::MyLinear fresh(5, 3);
  ASSERT_FALSE(torch::equal(fresh(X), linear(X)));
  torch::load(fresh, path.string());
  EXPECT_TRUE(tensors_equal(fresh(X), linear(X)));
}

TEST_P(MyLinear, MovesWithTo) {
  my_linear::MyLinear linear(5, 3);
  linear->to(device());
  EXPECT_EQ(linear->weight.device(), device());
  EXPECT_EQ(linear->bias.device(), device());
}

TEST_P(MyLinear, ForwardThroughDataCutsTheGradient) {
  my_linear::MyLinear real(5, 3);
  my_linear::DetachedLinear detached(5, 3);
  common::copy_parameters(*real, *detached);
  {
    torch::NoGradGuard no_grad;
    real->bias.fill_(10);  // every ReLU open, so the real layer's gradient is non-zero everywhere
    detached->bias.fill_(10);
  }
  real->to(device());
  detached->to(device());
  auto X = torch::rand({2, 5}, device());
  // The same numbers...
  ASSERT_TRUE(tensors_equal(detached(X), real(X)));
  real(X).sum().backward();
  ASSERT_GT(real->weight.grad().abs().sum().item<double>(), 0.0);
  // ...but nothing connects the detached output to its parameters: no gradient can ever arrive.
  auto out = detached(X);
  EXPECT_FALSE(out.requires_grad());
  (out.sum() + 0 * detached->weight.sum() + 0 * detached->bias.sum()).backward();
  EXPECT_EQ(detached->weight.grad().abs().sum().item<double>(), 0.0);
  EXPECT_EQ(detached->bias.grad().abs().sum().item<double>(), 0.0);
}
