#pragma once
// Saving and loading a model's state: strict like Python's load_state_dict(strict=True), in the format
// of Python's torch.save, written atomically, and read as data only.
//
// Why not just torch::save / torch::load? Measured on LibTorch 1.13:
//   - torch::load runs code from the file: it is LibTorch's TorchScript deserializer, and a module's
//     __setstate__ in the archive runs while it loads (it can write files, loop or allocate without
//     bound). Python's plain torch.load runs any callable a pickle names. common::weights reads both
//     formats with an allow-list and runs nothing, as torch.load(weights_only=True) does.
//   - torch::load is not strict: a parameter of another shape is silently replaced by the file's
//     (a Linear(4, 9) ends up with a [8, 4] weight), and keys the module lacks are ignored.
//   - torch::load checks no CRC: a flipped bit in the data loads as a wrong value.
//   - torch::save writes a TorchScript archive that Python's torch.load cannot open, and
//     torch::pickle_save tags its values with torch.jit._pickle.restore_type_tag, which
//     torch.load(weights_only=True) (the default since PyTorch 2.6) refuses.
#include <filesystem>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include "common/files/files.h"

namespace common {

// Name -> tensor, in the module's (or the file's) order.
using StateDict = std::vector<std::pair<std::string, torch::Tensor>>;

// The module's parameters and buffers under their dotted names.
StateDict state_dict(const torch::nn::Module& module);

// Writes the module's state as Python's torch.save(model.state_dict(), path) does (an OrderedDict of
// name -> tensor), atomically. Python opens it with torch.load(path, weights_only=True).
void save_state_dict(const torch::nn::Module& module, const std::filesystem::path& path);

// Writes a tensor, a list of tensors or a dict of str -> tensor (or ints, floats, strings, nested
// dicts and lists) as Python's torch.save does, atomically. Tensors are copied to the CPU first.
void save_for_python(const c10::IValue& value, const std::filesystem::path& path);

// Reads a state dict from a torch.save file (a dict or OrderedDict of tensors, as Python and
// save_state_dict write it), from a LibTorch torch::save archive of a module, or from a safetensors file
// or sharded index (common/safetensors/safetensors.h), told apart by their first bytes, as data only: nothing
// in the file is run. Throws std::runtime_error naming the file and what is wrong.
StateDict read_state_dict(const std::filesystem::path& path);
// The same from bytes in memory; `name` is what errors call them.
StateDict read_state_dict(std::string_view bytes, const std::string& name);

// Reads any value of a torch.save file (tensors, lists, tuples, dicts, numbers, strings), as data only.
c10::IValue read_value(const std::filesystem::path& path);
// The same from bytes in memory; `name` is what errors call them.
c10::IValue read_value(std::string_view bytes, const std::string& name);

// Checks `state` against the module as load_state_dict does, and changes nothing.
void check_state_dict(const torch::nn::Module& module, const StateDict& state, const std::string& source);

// Copies `state` into the module with the semantics of Python's load_state_dict(strict=True): every
// missing key, unexpected key, and shape or dtype mismatch is reported in one error naming each key and
// both shapes, and on any error the module is left exactly as it was.
void load_state_dict(torch::nn::Module& module, const StateDict& state, const std::string& source);
// The same from a file, read straight into the module's parameters and buffers once the file has been
// checked against the module and its CRCs verified (safetensors has none): one copy, no intermediate
// tensors.
void load_state_dict(torch::nn::Module& module, const std::filesystem::path& path);

// torch::save(value, path) (LibTorch's own format, for LibTorch's own torch::load), serialised in memory
// first so that a failing disk is an error from write_atomically, never an exception inside LibTorch's
// stream writer.
template <typename T>
void save_atomically(const T& value, const std::filesystem::path& path) {
  std::ostringstream bytes;
  torch::save(value, bytes);
  write_file_atomically(path, bytes.str());
}

}  // namespace common
