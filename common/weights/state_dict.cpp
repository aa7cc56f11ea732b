#include "common/weights/state_dict.h"

#include <map>
#include <set>
#include <stdexcept>
#include <unordered_map>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "common/files/files.h"
#include "common/lesson/lesson.h"
#include "common/lesson/print.h"
#include "common/safetensors/safetensors.h"
#include "common/weights/weights.h"

namespace common {
namespace fs = std::filesystem;
namespace {

// What the strict check needs to know of a tensor, from a file or from memory.
struct Described {
  std::string key;
  std::vector<int64_t> sizes;
  c10::ScalarType dtype;
};

// At most this many names of a kind in one error: a file of 100,000 stray keys gives one readable line.
constexpr size_t kNamesShown = 8;

std::string listed(const std::vector<std::string>& names, const char* separator) {
  std::vector<std::string> shown(
      names.begin(), names.begin() + static_cast<std::ptrdiff_t>(std::min(names.size(), kNamesShown)));
  auto text = fmt::format("{}", fmt::join(shown, separator));
  if (names.size() > kNamesShown)
    text += fmt::format("{}... ({} more)", separator, names.size() - kNamesShown);
  return text;
}

// Python's load_state_dict(strict=True): every problem at once, before anything is changed.
void check_fits(const StateDict& expected, const std::vector<Described>& given, const std::string& source) {
  std::unordered_map<std::string, const Described*> by_key;
  for (const auto& d : given) by_key.emplace(d.key, &d);
  std::vector<std::string> missing, unexpected, mismatched;
  std::set<std::string> expected_keys;
  for (const auto& [key, tensor] : expected) {
    expected_keys.insert(key);
    const auto found = by_key.find(key);
    if (found == by_key.end()) {
      missing.push_back(key);
    } else if (c10::IntArrayRef(found->second->sizes) != tensor.sizes()) {
      mismatched.push_back(fmt::format("{} is {} in the model but {} in the file", key,
                                       format_shape(tensor.sizes()), format_shape(found->second->sizes)));
    } else if (found->second->dtype != tensor.scalar_type()) {
      mismatched.push_back(fmt::format("{} is {} in the model but {} in the file", key,
                                       c10::toString(tensor.scalar_type()),
                                       c10::toString(found->second->dtype)));
    }
  }
  for (const auto& d : given) {
    if (expected_keys.count(d.key) == 0) unexpected.push_back(printable(d.key, 60));
  }
  if (missing.empty() && unexpected.empty() && mismatched.empty()) return;
  std::vector<std::string> parts;
  if (!missing.empty()) parts.push_back(fmt::format("missing keys: {}", listed(missing, ", ")));
  if (!unexpected.empty()) parts.push_back(fmt::format("unexpected keys: {}", listed(unexpected, ", ")));
  if (!mismatched.empty()) parts.push_back(fmt::format("mismatches: {}", listed(mismatched, "; ")));
  throw weights::FileError(
      fmt::format("{}: does not fit the model ({}); load only files saved from the same architecture, with "
                  "the same dtypes",
                  source, fmt::join(parts, "; ")));
}

// Runs fn, and gives any error it raises the file's name: LibTorch's and the allocator's too.
template <typename Fn>
auto naming(const std::string& name, Fn fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const weights::FileError&) {
    throw;
  } catch (const std::bad_alloc&) {
    throw weights::FileError(fmt::format("{}: not enough memory to read it", name));
  } catch (const std::exception& e) {
    throw weights::FileError(fmt::format("{}: {}", name, one_line_message(e)));
  }
}

}  // namespace

StateDict state_dict(const torch::nn::Module& module) {
  StateDict state;
  for (const auto& item : module.named_parameters(/*recurse=*/true))
    state.emplace_back(item.key(), item.value());
  for (const auto& item : module.named_buffers(/*recurse=*/true))
    state.emplace_back(item.key(), item.value());
  return state;
}

namespace {
void write_python_file(const fs::path& path, const c10::IValue& value, bool ordered) {
  // Python names the archive's folder after the file; the temporary name must not leak into it.
  const auto stem = path.stem().string();
  write_atomically(
      path, [&](int fd) { weights::write_for_python(fd, stem.empty() ? "archive" : stem, value, ordered); });
}
}  // namespace

void save_state_dict(const torch::nn::Module& module, const fs::path& path) {
  c10::Dict<std::string, torch::Tensor> dict;
  for (const auto& [key, tensor] : state_dict(module)) dict.insert(key, tensor.detach());
  write_python_file(path, dict, /*ordered=*/true);
}

void save_for_python(const c10::IValue& value, const fs::path& path) {
  write_python_file(path, value, false);
}

StateDict read_state_dict(std::string_view bytes, const std::string& name) {
  return naming(name, [&] {
    switch (safetensors::sniff(bytes)) {
      case safetensors::Format::kZip:
        break;
      case safetensors::Format::kSafetensorsIndex:
        throw weights::FileError(
            fmt::format("{}: a sharded safetensors index is read from its path, beside "
                        "its shards",
                        name));
      case safetensors::Format::kSafetensors: {
        const auto file = safetensors::File::from_bytes(std::string(bytes), name);
        StateDict state;
        for (const auto& info : file.tensors()) state.emplace_back(info.name, file.read(info));
        return state;
      }
    }
    return weights::state_dict_tensors(weights::WeightsFile::from_bytes(std::string(bytes), name));
  });
}

namespace {
// A safetensors file or index, told from a zip by its first bytes, never by its name.
bool is_safetensors(const fs::path& path) {
  const auto format = safetensors::sniff(path);
  return format == safetensors::Format::kSafetensors || format == safetensors::Format::kSafetensorsIndex;
}
}  // namespace

StateDict read_state_dict(const fs::path& path) {
  return naming(path.string(), [&] {
    if (!is_safetensors(path)) return weights::state_dict_tensors(weights::WeightsFile::open(path));
    const auto checkpoint = safetensors::Checkpoint::open(path);
    StateDict state;
    for (const auto& [name, at] : checkpoint.entries()) state.emplace_back(name, at.file->read(*at.info));
    return state;
  });
}

c10::IValue read_value(const fs::path& path) {
  return naming(path.string(), [&] {
    const auto file = weights::WeightsFile::open(path);
    return weights::to_ivalue(file, file.root());
  });
}

c10::IValue read_value(std::string_view bytes, const std::string& name) {
  return naming(name, [&] {
    const auto file = weights::WeightsFile::from_bytes(std::string(bytes), name);
    return weights::to_ivalue(file, file.root());
  });
}

void check_state_dict(const torch::nn::Module& module, const StateDict& state, const std::string& source) {
  std::vector<Described> given;
  for (const auto& [key, tensor] : state) given.push_back({key, tensor.sizes().vec(), tensor.scalar_type()});
  check_fits(state_dict(module), given, source);
}

void load_state_dict(torch::nn::Module& module, const StateDict& state, const std::string& source) {
  check_state_dict(module, state, source);
  const StateDict expected = state_dict(module);
  std::map<std::string, torch::Tensor> by_key(state.begin(), state.end());
  // Everything was checked first, so the copy cannot fail half-way and leave the module half-loaded.
  torch::NoGradGuard no_grad;
  for (const auto& [key, tensor] : expected) {
    auto target = tensor;
    target.copy_(by_key.at(key));
  }
}

namespace {
// No checksum to verify: the file's description is checked against the module, then each tensor's bytes
// are read straight into its parameter.
void load_checked_safetensors(torch::nn::Module& module, const fs::path& path) {
  const auto checkpoint = safetensors::Checkpoint::open(path);
  std::vector<Described> given;
  std::map<std::string, safetensors::Checkpoint::Entry> by_key;
  for (const auto& [key, at] : checkpoint.entries()) {
    given.push_back({key, at.info->shape, at.info->dtype});
    by_key.emplace(key, at);
  }
  const StateDict expected = state_dict(module);
  check_fits(expected, given, path.string());
  torch::NoGradGuard no_grad;
  std::map<const safetensors::File*, std::vector<std::pair<const safetensors::TensorInfo*, torch::Tensor>>>
      by_file;
  for (const auto& [key, tensor] : expected) {
    const auto& at = by_key.at(key);
    by_file[at.file].emplace_back(at.info, tensor);
  }
  for (const auto& [file, targets] : by_file) file->read_into(targets);
}

void load_checked(torch::nn::Module& module, const fs::path& path) {
  if (is_safetensors(path)) return load_checked_safetensors(module, path);
  const auto file = weights::WeightsFile::open(path);
  const auto entries = weights::tensor_entries(file, file.root());
  std::vector<Described> given;
  std::map<std::string, const weights::TensorRef*> by_key;
  std::vector<const weights::TensorRef*> refs;
  for (const auto& [key, ref] : entries) {
    given.push_back({key, ref->sizes, ref->dtype});
    by_key.emplace(key, ref);
    refs.push_back(ref);
  }
  const StateDict expected = state_dict(module);
  check_fits(expected, given, path.string());
  // Every CRC before the first byte reaches the module: a damaged file leaves it as it was.
  file.verify(refs);
  torch::NoGradGuard no_grad;
  std::vector<std::pair<const weights::TensorRef*, torch::Tensor>> targets;
  for (const auto& [key, tensor] : expected) targets.emplace_back(by_key.at(key), tensor);
  file.read_into(targets);
}

}  // namespace

void load_state_dict(torch::nn::Module& module, const fs::path& path) {
  naming(path.string(), [&] { load_checked(module, path); });
}

}  // namespace common
