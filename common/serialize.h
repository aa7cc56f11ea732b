#pragma once
// Saving and loading a model's state: strict like Python's load_state_dict(strict=True), readable from
// and by Python, written atomically, and checked before LibTorch parses it.
//
// Why not just torch::save / torch::load? Measured on LibTorch 1.13:
//   - torch::load is not strict: a parameter of another shape is silently replaced by the file's
//     (a Linear(4, 9) ends up with a [8, 4] weight), and keys the module lacks are ignored.
//   - LibTorch's zip reader (miniz) overflows a heap buffer on some malformed archives, so a file is
//     validated with libzip (structure and every CRC) before LibTorch sees it.
//   - torch::save writes a TorchScript archive that Python's torch.load cannot open; Python files come
//     through torch::pickle_load, which cannot read an OrderedDict (what model.state_dict() returns) nor a
//     one-entry dict.
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include "common/files.h"

namespace common {

// Name -> tensor, in the module's (or the file's) order.
using StateDict = std::vector<std::pair<std::string, torch::Tensor>>;

// The module's parameters and buffers under their dotted names, each name once.
StateDict state_dict(const torch::nn::Module& module);

// Writes the module's state as a LibTorch archive (what torch::save(module, path) writes; torch::load
// reads it back too), atomically.
void save_state_dict(const torch::nn::Module& module, const std::filesystem::path& path);

// Writes a plain dict of name -> tensor with torch::pickle_save, which Python's torch.load opens,
// atomically. The tensors are copied to the CPU first.
void save_state_dict_for_python(const torch::nn::Module& module, const std::filesystem::path& path);
void save_for_python(const c10::IValue& value, const std::filesystem::path& path);

// Reads a state dict from a LibTorch archive (save_state_dict, torch::save) or from a Python
// torch.save of a plain dict of tensors. Throws std::runtime_error naming the file and what is wrong.
StateDict read_state_dict(const std::filesystem::path& path);
// The same from bytes already in memory; `name` is what errors call them.
StateDict read_state_dict(std::string_view bytes, const std::string& name);

// The tensors of a LibTorch archive (and of its nested archives) under dotted names, as
// Module::save writes them.
StateDict state_dict_from_archive(torch::serialize::InputArchive& archive);

// Reads a LibTorch archive from a file after validate_archive's checks, so that a damaged file is an
// error rather than undefined behaviour inside LibTorch's zip reader.
// Its tensors are placed on `device` (the device of the model that will receive them).
void load_checked_archive(torch::serialize::InputArchive& archive, const std::filesystem::path& path,
                          const torch::Device& device = torch::kCPU);

// Copies `state` into the module with the semantics of Python's load_state_dict(strict=True): every
// missing key, unexpected key, and shape or dtype mismatch is reported in one error naming each key and
// both shapes, and on any error the module is left exactly as it was.
void load_state_dict(torch::nn::Module& module, const StateDict& state, const std::string& source);
void load_state_dict(torch::nn::Module& module, const std::filesystem::path& path);

// Reads any value written by torch::pickle_save or by Python's torch.save (after the same checks).
c10::IValue load_from_python(const std::filesystem::path& path);

// Checks that bytes are a well-formed zip archive whose every entry reads back with a correct CRC, and
// returns the entry names. Throws std::runtime_error naming `name` otherwise. Without libzip at build
// time it checks only the zip signature.
std::vector<std::string> validate_archive(std::string_view bytes, const std::string& name);

// Whether this build validates archives with libzip before LibTorch reads them.
bool archive_validation_available();

}  // namespace common

namespace common {

// torch::save(value, path), but atomically: the old file stays until the new one is complete.
template <typename T>
void save_atomically(const T& value, const std::filesystem::path& path) {
  atomic_write(path, [&](const std::filesystem::path& tmp) { torch::save(value, tmp.string()); });
}

}  // namespace common
