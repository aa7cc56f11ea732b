// Outcomes of "Parámetros vinculados", and where LibTorch differs from Python with tied parameters.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "common/lesson/params.h"
#include "lessons/08_tied_parameters/tied_parameters.h"
#include "tests/testing.h"

using testing_mp::tensors_close;
using testing_mp::tensors_equal;
using tied_parameters::layer;

MP_TEST_ON_DEVICES(TiedParameters);

TEST(TiedParameters, PositionsTwoAndFourShareStorage) {
  auto net = tied_parameters::make_tied_net();
  EXPECT_TRUE(layer(net, 2).weight.is_same(layer(net, 4).weight));
  EXPECT_EQ(layer(net, 2).weight.data_ptr(), layer(net, 4).weight.data_ptr());
  // The control: in the untied net the same positions are separate tensors.
  auto untied = tied_parameters::make_untied_net();
  EXPECT_NE(layer(untied, 2).weight.data_ptr(), layer(untied, 4).weight.data_ptr());
}

TEST(TiedParameters, WriteThroughOneShowsThroughTheOther) {
  auto net = tied_parameters::make_tied_net();
  ASSERT_NE(layer(net, 4).weight[0][0].item<float>(), 100.0F);
  torch::NoGradGuard no_grad;
  layer(net, 2).weight[0][0] = 100;
  EXPECT_EQ(layer(net, 4).weight[0][0].item<float>(), 100.0F);
}

TEST_P(TiedParameters, SharedGradientIsTheSumOfBothUses) {
  auto tied = tied_parameters::make_tied_net();
  auto untied = tied_parameters::make_untied_net();
  common::copy_parameters(*tied, *untied);  // untied's 2 and 4 both get the shared values
  tied->to(device());
  untied->to(device());
  auto X = torch::rand({2, 4}, device());
  ASSERT_TRUE(tensors_equal(untied->forward(X), tied->forward(X)));
  tied->forward(X).sum().backward();
  untied->forward(X).sum().backward();
  const auto& g2 = layer(untied, 2).weight.grad();
  const auto& g4 = layer(untied, 4).weight.grad();
  // Neither use alone accounts for the tied gradient; both together do (float32 sums: 1e-6).
  ASSERT_FALSE(torch::allclose(layer(tied, 2).weight.grad(), g2));
  EXPECT_TRUE(tensors_close(layer(tied, 2).weight.grad(), g2 + g4, 1e-5, 1e-6));
}

TEST(TiedParameters, ParametersListsEightAndUniqueParametersSix) {
  auto net = tied_parameters::make_tied_net();
  EXPECT_EQ(net->parameters().size(), 8u);
  EXPECT_EQ(common::unique_parameters(*net).size(), 6u);
  std::vector<std::string> unique_names;
  for (const auto& [name, tensor] : common::unique_named_parameters(*net)) unique_names.push_back(name);
  EXPECT_EQ(unique_names,
            (std::vector<std::string>{"0.weight", "0.bias", "2.weight", "2.bias", "6.weight", "6.bias"}));
}

// How far one SGD step moves the shared weight, in units of lr x grad.
double sgd_step_in_units(torch::nn::Sequential& net, const std::vector<torch::Tensor>& params, double lr) {
  auto X = torch::rand({2, 4});
  net->zero_grad();
  net->forward(X).sum().backward();
  auto grad = layer(net, 2).weight.grad().clone();
  auto before = layer(net, 2).weight.clone();
  torch::optim::SGD sgd(params, torch::optim::SGDOptions(lr));
  sgd.step();
  auto moved = before - layer(net, 2).weight;
  const auto nonzero = grad.abs() > 1e-4;
  return (moved.masked_select(nonzero) / (lr * grad.masked_select(nonzero))).mean().item<double>();
}

TEST(TiedParameters, SgdFromParametersStepsTheSharedWeightTwice) {
  auto net = tied_parameters::make_tied_net();
  EXPECT_NEAR(sgd_step_in_units(net, net->parameters(), 0.1), 2.0, 1e-3);
}

TEST(TiedParameters, SgdFromUniqueParametersStepsItOnce) {
  auto net = tied_parameters::make_tied_net();
  EXPECT_NEAR(sgd_step_in_units(net, common::unique_parameters(*net), 0.1), 1.0, 1e-3);
}

TEST(TiedParameters, SaveAndLoadKeepPositionsTwoAndFourOneTensor) {
  auto net = tied_parameters::make_tied_net();
  const auto path = testing_mp::fresh_dir() / "tied.pt";
  torch::save(net, path.string());
  auto fresh = tied_parameters::make_tied_net();
  ASSERT_FALSE(torch::equal(layer(fresh, 2).weight, layer(net, 2).weight));
  torch::load(fresh, path.string());
  EXPECT_TRUE(tensors_equal(layer(fresh, 2).weight, layer(net, 2).weight));
  EXPECT_TRUE(layer(fresh, 2).weight.is_same(layer(fresh, 4).weight));
  torch::NoGradGuard no_grad;
  layer(fresh, 2).weight[0][0] = -7;
  EXPECT_EQ(layer(fresh, 4).weight[0][0].item<float>(), -7.0F);
}
