#pragma once
// "Archivos de E/S": tensors, lists and dicts of tensors on disk, and a model's parameters.
#include <filesystem>
#include <map>
#include <optional>
#include <sstream>
#include <string>

#include <torch/torch.h>
#include <CLI/CLI.hpp>

#include "common/lesson/options.h"
#include "common/weights/state_dict.h"

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

// The parameters named with --load, checked against the MLP from the file's description (keys, shapes,
// dtypes) before a byte of data is read, then read into a probe MLP, CRCs first: only the tensors the
// MLP takes are touched. Nothing when no file was named. The probe's own initial values must not come
// from the seeded generator, or reading --load would change what every cell after it draws (net, X):
// the generator is put back as it was.
inline std::optional<common::StateDict> read_mlp_parameters(const std::string& path) {
  if (path.empty()) return std::nullopt;
  at::Generator generator = at::detail::getDefaultCPUGenerator();
  const auto state = generator.get_state();
  MLP probe;
  generator.set_state(state);
  common::load_state_dict(*probe, std::filesystem::path(path));
  return common::state_dict(*probe);
}

// The lesson's options: the common ones and --load. The file --load names is read and checked against
// the MLP as the options are parsed, so that a bad one is reported before any cell writes a file and
// leaves the output folder as it was; the last cell loads what was read here.
struct Options : common::Options {
  Options(int argc, char** argv)
      : common::Options("09_file_io", "Archivos de E/S: tensors and model parameters on disk") {
    cli()
        .add_option(
            "--load", load_path,
            "after the notebook's cells, load the MLP's parameters from this file (Python's torch.save "
            "of a state dict, a LibTorch archive, a safetensors file or a sharded safetensors index, "
            "told apart by their bytes; read as data, nothing in it is run), print its output on X "
            "and write it to Y.pt")
        ->check(CLI::ExistingFile);
    parse(argc, argv);
    loaded = read_mlp_parameters(load_path);
  }
  std::string load_path;
  std::optional<common::StateDict> loaded;
};

}  // namespace file_io
