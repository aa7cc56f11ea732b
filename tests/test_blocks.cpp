// Outcomes of "Bloques" and "Un bloque personalizado".
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "common/lesson/params.h"
#include "common/weights/state_dict.h"
#include "lessons/01_blocks/blocks.h"
#include "tests/testing.h"

using testing_mp::tensors_equal;

MP_TEST_ON_DEVICES(Blocks);

TEST_P(Blocks, SequentialOutputIsTwoByTen) {
  auto net = blocks::make_sequential_mlp();
  net->to(device());
  EXPECT_EQ(net->forward(torch::rand({2, 20}, device())).sizes(), (std::vector<int64_t>{2, 10}));
}

TEST_P(Blocks, CustomMLPOutputIsTwoByTen) {
  blocks::MLP net;
  net->to(device());
  EXPECT_EQ(net(torch::rand({2, 20}, device())).sizes(), (std::vector<int64_t>{2, 10}));
}

TEST(Blocks, CustomMLPHasExactlyTheFourNamedParameters) {
  blocks::MLP net;
  std::vector<std::pair<std::string, std::vector<int64_t>>> found;
  for (const auto& p : net->named_parameters()) found.emplace_back(p.key(), p.value().sizes().vec());
  const std::vector<std::pair<std::string, std::vector<int64_t>>> expected{
      {"hidden.weight", {256, 20}}, {"hidden.bias", {256}}, {"out.weight", {10, 256}}, {"out.bias", {10}}};
  EXPECT_EQ(found, expected);
  EXPECT_EQ(common::count_parameters(*net), 20 * 256 + 256 + 256 * 10 + 10);
  EXPECT_EQ(common::count_parameters(*net), 7946);
}

TEST_P(Blocks, CallOperatorEqualsForward) {
  blocks::MLP net;
  net->to(device());
  auto X = torch::rand({2, 20}, device());
  EXPECT_TRUE(tensors_equal(net(X), net->forward(X)));
}

TEST_P(Blocks, TwoInstancesHoldIndependentParameters) {
  blocks::MLP net1;
  blocks::MLP net2;
  net1->to(device());
  net2->to(device());
  auto X = torch::rand({2, 20}, device());
  EXPECT_FALSE(torch::equal(net1(X), net2(X)));
  // Independent, not merely different: changing one leaves the other as it was.
  auto before = net2->hidden->weight.clone();
  torch::NoGradGuard no_grad;
  net1->hidden->weight.add_(1.0);
  EXPECT_TRUE(tensors_equal(net2->hidden->weight, before));
}

TEST_P(Blocks, BackwardGivesEveryParameterAGradient) {
  blocks::MLP net;
  net->to(device());
  for (const auto& p : net->parameters()) ASSERT_FALSE(p.grad().defined());
  net(torch::rand({2, 20}, device())).sum().backward();
  for (const auto& p : net->named_parameters()) {
    EXPECT_TRUE(p.value().grad().defined()) << p.key();
  }
}

TEST_P(Blocks, ModuleMovesWithTo) {
  blocks::MLP net;
  net->to(device());
  for (const auto& p : net->parameters()) EXPECT_EQ(p.device(), device());
}

TEST(Blocks, LayersBuiltInOrderDrawLikePython) {
  // Python builds Linear(20, 256) before Linear(256, 10). Built in named variables, in order, the first
  // layer takes the generator's first draws: its weight is what a lone Linear(20, 256) gets from the
  // same seed. The parity test compares these numbers with Python's own.
  torch::manual_seed(0);
  torch::nn::Linear alone(20, 256);
  torch::manual_seed(0);
  auto net = blocks::make_sequential_mlp();
  EXPECT_TRUE(tensors_equal(net[0]->as<torch::nn::Linear>()->weight, alone->weight));
}

TEST(Blocks, SameSeedGivesPythonsWeightsExactly) {
  // Python's nn.Sequential(Linear(20, 256), ReLU(), Linear(256, 10)) right after torch.manual_seed(0),
  // saved by data/python/make_reference.py.
  const auto python = common::read_state_dict(std::filesystem::path(MP_SOURCE_DIR) / "data" / "reference" /
                                              "sequential_mlp_seed0.pt");
  torch::manual_seed(0);
  auto net = blocks::make_sequential_mlp();
  const auto ours = common::state_dict(*net);
  ASSERT_EQ(ours.size(), python.size());
  for (size_t i = 0; i < ours.size(); ++i) {
    EXPECT_EQ(ours[i].first, python[i].first);
    EXPECT_TRUE(tensors_equal(ours[i].second, python[i].second)) << ours[i].first;
  }
  // Another seed gives other weights: the equality above is the seed's doing, not an accident.
  torch::manual_seed(1);
  EXPECT_FALSE(torch::equal(common::state_dict(*blocks::make_sequential_mlp())[0].second, python[0].second));
}
