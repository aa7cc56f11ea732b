#include "common/lesson/params.h"

#include <unordered_set>

namespace common {

std::vector<std::pair<std::string, torch::Tensor>> unique_named_parameters(const torch::nn::Module& module) {
  std::vector<std::pair<std::string, torch::Tensor>> unique;
  // Two entries are the same parameter when they are the same TensorImpl (Python compares by identity).
  std::unordered_set<const void*> seen;
  for (const auto& item : module.named_parameters(/*recurse=*/true)) {
    if (seen.insert(item.value().unsafeGetTensorImpl()).second) unique.emplace_back(item.key(), item.value());
  }
  return unique;
}

std::vector<torch::Tensor> unique_parameters(const torch::nn::Module& module) {
  std::vector<torch::Tensor> unique;
  for (auto& [name, tensor] : unique_named_parameters(module)) unique.push_back(tensor);
  return unique;
}

std::vector<std::string> parameter_names(const torch::nn::Module& module) {
  std::vector<std::string> names;
  for (const auto& item : module.named_parameters(/*recurse=*/true)) names.push_back(item.key());
  return names;
}

int64_t count_parameters(const torch::nn::Module& module) {
  int64_t total = 0;
  for (const auto& p : unique_parameters(module)) total += p.numel();
  return total;
}

}  // namespace common

namespace common {

void copy_parameters(const torch::nn::Module& from, torch::nn::Module& to) {
  torch::NoGradGuard no_grad;
  auto target = to.named_parameters(/*recurse=*/true);
  for (const auto& item : from.named_parameters(/*recurse=*/true)) {
    auto* dest = target.find(item.key());
    if (dest == nullptr)
      throw std::invalid_argument("copy_parameters: no parameter named '" + item.key() + "'");
    if (dest->sizes() != item.value().sizes()) {
      throw std::invalid_argument("copy_parameters: '" + item.key() + "' has another shape");
    }
    dest->copy_(item.value());
  }
}

}  // namespace common
