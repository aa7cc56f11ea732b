// Outcomes of "Acceso a parámetros" through "Recopilación de parámetros de bloques anidados".
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "common/lesson/params.h"
#include "common/lesson/print.h"
#include "lessons/06_parameter_access/parameter_access.h"
#include "tests/testing.h"

using parameter_access::linear_at;

MP_TEST_ON_DEVICES(ParameterAccess);

TEST(ParameterAccess, SecondLinearHoldsFloatWeightOneByEightAndBiasOne) {
  auto net = parameter_access::make_net();
  auto params = net[2]->named_parameters();
  ASSERT_EQ(params.size(), 2u);
  EXPECT_EQ(params["weight"].sizes(), (std::vector<int64_t>{1, 8}));
  EXPECT_EQ(params["bias"].sizes(), (std::vector<int64_t>{1}));
  for (const auto& p : params) EXPECT_EQ(p.value().scalar_type(), torch::kFloat) << p.key();
  // Typed access reaches the same tensors.
  EXPECT_TRUE(linear_at(net, 2).weight.is_same(params["weight"]));
}

TEST(ParameterAccess, WholeNetNamesAreExactlyTheFour) {
  auto net = parameter_access::make_net();
  EXPECT_EQ(common::parameter_names(*net),
            (std::vector<std::string>{"0.weight", "0.bias", "2.weight", "2.bias"}));
}

TEST(ParameterAccess, ValueByNameSharesStorageWithValueByIndex) {
  auto net = parameter_access::make_net();
  auto by_name = net->named_parameters()["2.bias"];
  auto by_index = linear_at(net, 2).bias;
  EXPECT_EQ(by_name.data_ptr(), by_index.data_ptr());
  // Sharing, not copying: a write through one is read through the other.
  torch::NoGradGuard no_grad;
  by_name.fill_(3.5);
  EXPECT_EQ(by_index.item<float>(), 3.5F);
}

TEST_P(ParameterAccess, GradientIsUndefinedBeforeBackwardAndDefinedAfter) {
  auto net = parameter_access::make_net();
  net->to(device());
  EXPECT_FALSE(linear_at(net, 2).bias.grad().defined());
  net->forward(torch::rand({2, 4}, device())).sum().backward();
  EXPECT_TRUE(linear_at(net, 2).bias.grad().defined());
}

TEST(ParameterAccess, NestedNamesAreDottedPaths) {
  auto rgnet = parameter_access::make_rgnet();
  const auto names = common::parameter_names(*rgnet);
  EXPECT_EQ(names.size(), 4u * 4u + 2u);
  for (int b = 0; b < 4; ++b) {
    for (const char* leaf : {"0.weight", "0.bias", "2.weight", "2.bias"}) {
      const auto name = "0.block" + std::to_string(b) + "." + leaf;
      EXPECT_NE(std::find(names.begin(), names.end(), name), names.end()) << name;
    }
  }
  EXPECT_EQ(names.back(), "1.bias");
}

TEST(ParameterAccess, NestedIndexingReachesTheSameTensorAsTheName) {
  auto rgnet = parameter_access::make_rgnet();
  auto by_index = parameter_access::nested_bias(rgnet);
  auto by_name = rgnet->named_parameters()["0.block1.0.bias"];
  EXPECT_TRUE(by_index.is_same(by_name));
  // And not some other block's bias, which has the same shape.
  EXPECT_FALSE(by_index.is_same(rgnet->named_parameters()["0.block0.0.bias"]));
}

TEST_P(ParameterAccess, NestedNetRuns) {
  auto rgnet = parameter_access::make_rgnet();
  rgnet->to(device());
  EXPECT_EQ(rgnet->forward(torch::rand({2, 4}, device())).sizes(), (std::vector<int64_t>{2, 1}));
}

TEST(ParameterAccess, PrintedHierarchyNamesEveryLevel) {
  const auto printed = common::format_module(*parameter_access::make_rgnet());
  for (const char* level : {"(0): torch::nn::Sequential", "(block0)", "(block1)", "(block2)", "(block3)",
                            "(1): torch::nn::Linear(in_features=4, out_features=1", "(3): torch::nn::ReLU"}) {
    EXPECT_NE(printed.find(level), std::string::npos) << level << " not in\n" << printed;
  }
}
