// Outcomes of "El Bloque Sequential".
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "common/lesson/params.h"
#include "lessons/02_my_sequential/my_sequential.h"
#include "tests/testing.h"

using testing_mp::tensors_equal;

MP_TEST_ON_DEVICES(MySequential);

TEST_P(MySequential, OutputIsTwoByTen) {
  auto net = my_sequential::make_mlp();
  net->to(device());
  EXPECT_EQ(net(torch::rand({2, 20}, device())).sizes(), (std::vector<int64_t>{2, 10}));
}

TEST(MySequential, ParameterNamesAreThoseOfNnSequential) {
  auto net = my_sequential::make_mlp();
  torch::nn::Sequential reference(torch::nn::Linear(20, 256), torch::nn::ReLU(), torch::nn::Linear(256, 10));
  EXPECT_EQ(common::parameter_names(*net), common::parameter_names(*reference));
  EXPECT_EQ(common::parameter_names(*net),
            (std::vector<std::string>{"0.weight", "0.bias", "2.weight", "2.bias"}));
}

TEST_P(MySequential, SameWeightsGiveBitIdenticalOutputToNnSequential) {
  auto net = my_sequential::make_mlp();
  torch::nn::Sequential reference(torch::nn::Linear(20, 256), torch::nn::ReLU(), torch::nn::Linear(256, 10));
  net->to(device());
  reference->to(device());
  auto X = torch::rand({2, 20}, device());
  // Freshly initialised, the two differ: the copy below is what makes them equal.
  ASSERT_FALSE(torch::equal(net(X), reference->forward(X)));
  common::copy_parameters(*net, *reference);
  EXPECT_TRUE(tensors_equal(net(X), reference->forward(X)));
}

TEST(MySequential, InitialiserAppliedThroughItReachesEveryLayer) {
  auto net = my_sequential::make_mlp();
  int linears = 0;
  net->apply([&](torch::nn::Module& m) {
    if (auto* linear = m.as<torch::nn::Linear>()) {
      torch::nn::init::constant_(linear->weight, 0.5);
      ++linears;
    }
  });
  EXPECT_EQ(linears, 2);
  for (int i : {0, 2}) {
    EXPECT_TRUE(net[i]->as<torch::nn::Linear>()->weight.eq(0.5).all().item<bool>()) << "layer " << i;
  }
}

TEST(MySequential, UnregisteredVariantReportsNoParameters) {
  torch::nn::Linear hidden(20, 256);
  torch::nn::Linear out(256, 10);
  my_sequential::UnregisteredSequential net(hidden, torch::nn::ReLU(), out);
  // The parameters exist (the chain computes), the framework just cannot see them.
  EXPECT_EQ(net->hidden_parameters().size(), 4u);
  EXPECT_EQ(net(torch::rand({2, 20})).sizes(), (std::vector<int64_t>{2, 10}));
  EXPECT_EQ(net->parameters().size(), 0u);
  EXPECT_EQ(net->named_parameters().size(), 0u);
}

TEST_P(MySequential, MovesWithTo) {
  auto net = my_sequential::make_mlp();
  net->to(device());
  ASSERT_EQ(net->parameters().size(), 4u);
  for (const auto& p : net->parameters()) EXPECT_EQ(p.device(), device());
}

TEST_P(MySequential, UnregisteredVariantIsLeftBehindByTo) {
  if (device().is_cpu()) GTEST_SKIP() << "moving to the CPU cannot show a layer left behind; needs a GPU";
  torch::nn::Linear hidden(20, 256);
  my_sequential::UnregisteredSequential net(hidden);
  net->to(device());
  EXPECT_TRUE(hidden->weight.device().is_cpu());
}
