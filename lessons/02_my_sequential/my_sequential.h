#pragma once
// "El Bloque Sequential": a Sequential of our own, and what goes wrong when blocks are not registered.
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

namespace my_sequential {

// Blocks added one by one, registered as children "0", "1", "2", ... (the notes' self._modules), and
// run in that order by forward.
class MySequentialImpl : public torch::nn::Module {
 public:
  MySequentialImpl() = default;

  // Blocks are appended left to right. Build them in named variables first: C++ may construct
  // function arguments in any order, which would change what the random generator gives each layer.
  template <typename... Blocks>
  explicit MySequentialImpl(Blocks&&... blocks) {
    (push_back(std::forward<Blocks>(blocks)), ...);
  }

  template <typename Block>
  void push_back(Block block) {
    torch::nn::AnyModule any(std::move(block));
    // Registering as a child is the point: the framework then finds the block's parameters for
    // parameters(), apply(), to() and saving.
    register_module(std::to_string(blocks_.size()), any.ptr());
    blocks_.push_back(std::move(any));
  }

  torch::Tensor forward(torch::Tensor X) {
    for (auto& block : blocks_) X = block.forward(X);
    return X;
  }

  size_t size() const { return blocks_.size(); }

  // The i-th block, as net[i] in Python.
  std::shared_ptr<torch::nn::Module> operator[](size_t i) const { return blocks_.at(i).ptr(); }

 private:
  std::vector<torch::nn::AnyModule> blocks_;
};
TORCH_MODULE(MySequential);

// The porting bug the notes warn about: the same chain kept in a plain vector and never registered.
// It computes the same thing, but parameters() finds nothing, to() moves nothing and save() saves nothing.
class UnregisteredSequentialImpl : public torch::nn::Module {
 public:
  template <typename... Blocks>
  explicit UnregisteredSequentialImpl(Blocks&&... blocks) {
    (blocks_.emplace_back(std::forward<Blocks>(blocks)), ...);
  }

  torch::Tensor forward(torch::Tensor X) {
    for (auto& block : blocks_) X = block.forward(X);
    return X;
  }

  // The parameters that really exist, found by walking the vector by hand.
  std::vector<torch::Tensor> hidden_parameters() const {
    std::vector<torch::Tensor> found;
    for (const auto& block : blocks_) {
      for (const auto& p : block.ptr()->parameters()) found.push_back(p);
    }
    return found;
  }

 private:
  std::vector<torch::nn::AnyModule> blocks_;
};
TORCH_MODULE(UnregisteredSequential);

// The notes' MLP, MySequential(Linear(20, 256), ReLU(), Linear(256, 10)), layers built in order.
inline MySequential make_mlp() {
  torch::nn::Linear hidden(20, 256);
  torch::nn::Linear out(256, 10);
  return MySequential(hidden, torch::nn::ReLU(), out);
}

// What --help says the lesson is.
inline constexpr const char* kAbout = "El Bloque Sequential: a Sequential of our own";

}  // namespace my_sequential
