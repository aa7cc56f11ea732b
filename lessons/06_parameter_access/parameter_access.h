#pragma once
// "Acceso a parámetros" and the sections after it: reaching parameters by index, by name, all at once,
// and inside nested blocks.
#include <string>

#include <torch/torch.h>

namespace parameter_access {

// The notes' net for this part: Sequential(Linear(4, 8), ReLU(), Linear(8, 1)), built in order.
inline torch::nn::Sequential make_net() {
  torch::nn::Linear first(4, 8);
  torch::nn::Linear second(8, 1);
  return torch::nn::Sequential(first, torch::nn::ReLU(), second);
}

// Where C++ differs: LibTorch cannot put an nn::Sequential inside another, because Sequential's forward
// is a template and a container only holds modules with a plain forward(Tensor). A Sequential with a
// plain forward nests fine; it prints, names and indexes like nn::Sequential.
class BlockImpl : public torch::nn::SequentialImpl {
 public:
  using SequentialImpl::SequentialImpl;
  torch::Tensor forward(torch::Tensor X) { return SequentialImpl::forward(std::move(X)); }
};
TORCH_MODULE(Block);

// block1(): Sequential(Linear(4, 8), ReLU(), Linear(8, 4), ReLU()).
inline Block block1() {
  torch::nn::Linear first(4, 8);
  torch::nn::Linear second(8, 4);
  return Block(first, torch::nn::ReLU(), second, torch::nn::ReLU());
}

// block2(): four block1() under the names block0 ... block3 (the notes' add_module).
inline Block block2() {
  Block net;
  for (int i = 0; i < 4; ++i) net->push_back("block" + std::to_string(i), block1());
  return net;
}

// rgnet = Sequential(block2(), Linear(4, 1)).
inline torch::nn::Sequential make_rgnet() {
  auto blocks = block2();
  torch::nn::Linear last(4, 1);
  return torch::nn::Sequential(blocks, last);
}

// The Linear at `index` of a Sequential, typed (Python's net[index]).
inline torch::nn::LinearImpl& linear_at(const torch::nn::Sequential& net, size_t index) {
  return *net->ptr<torch::nn::LinearImpl>(index);
}

// rgnet[0][1][0].bias: first big block, its second sub-block, that sub-block's first layer.
inline torch::Tensor nested_bias(const torch::nn::Sequential& rgnet) {
  auto& outer = *rgnet->ptr<BlockImpl>(0);
  auto& inner = *outer.ptr<BlockImpl>(1);
  return inner.ptr<torch::nn::LinearImpl>(0)->bias;
}

// What --help says the lesson is.
inline constexpr const char* kAbout = "Gestión de parámetros: reaching a model's parameters";

}  // namespace parameter_access
