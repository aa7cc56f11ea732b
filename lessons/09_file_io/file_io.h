#pragma once
// "Archivos de E/S": tensors, lists and dicts of tensors on disk, and a model's parameters.
#include <filesystem>
#include <map>
#include <optional>
#include <sstream>
#include <string>

#include <torch/torch.h>

#include "common/serialize.h"

namespace file_io {

// The notes' MLP for this section: hidden = Linear(20, 256), ReLU, output = Linear(256, 10).
class MLPImpl : public torch::nn::Module {
 public:
  MLPImpl() {
    hidden = register_module("hidden", torch::nn::Linear(20, 256));
    output = register_module("output", torch::nn::Linear(256, 10));
  }

  torch::Tensor forward(const torch::Tensor& x) { return output(torch::relu(hidden(x))); }

  torch::nn::Linear hidden{nullptr};
  torch::nn::Linear output{nullptr};
};
TORCH_MODULE(MLP);

// A dict of name -> tensor as a LibTorch archive (Python's torch.save(mydict, ...)). torch::save takes
// a tensor or a vector of tensors; a dict goes through an OutputArchive, one key per entry.
inline void save_tensor_dict(const std::map<std::string, torch::Tensor>& dict,
                             const std::filesystem::path& path) {
  torch::serialize::OutputArchive archive;
  for (const auto& [key, tensor] : dict) archive.write(key, tensor);
  std::ostringstream bytes;
  archive.save_to(bytes);
  common::write_file_atomically(path, bytes.str());
}

inline std::map<std::string, torch::Tensor> load_tensor_dict(const std::filesystem::path& path) {
  std::map<std::string, torch::Tensor> dict;
  for (auto& [key, tensor] : common::read_state_dict(path)) dict.emplace(key, tensor);
  return dict;
}

// The parameters named with --load, read as data and checked against the MLP (keys, shapes, dtypes), or
// nothing when no file was named.
inline std::optional<common::StateDict> read_mlp_parameters(const std::string& path) {
  if (path.empty()) return std::nullopt;
  auto loaded = common::read_state_dict(path);
  MLP probe;
  common::load_state_dict(*probe, loaded, path);
  return loaded;
}

}  // namespace file_io
