#include "common/serialize.h"

#include <map>
#include <set>
#include <stdexcept>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "common/files.h"
#include "common/print.h"
#include "common/weights.h"

namespace common {
namespace fs = std::filesystem;
namespace {

// What the strict check needs to know of a tensor, from a file or from memory.
struct Described {
  std::string key;
  std::vector<int64_t> sizes;
  c10::ScalarType dtype;
};

// Python's load_state_dict(strict=True): every problem at once, before anything is changed.
void check_fits(const StateDict& expected, const std::vector<Described>& given, const std::string& source) {
  std::map<std::string, const Described*> by_key;
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
    if (expected_keys.count(d.key) == 0) unexpected.push_back(d.key);
  }
  if (missing.empty() && unexpected.empty() && mismatched.empty()) return;
  std::vector<std::string> parts;
  if (!missing.empty()) parts.push_back(fmt::format("missing keys: {}", fmt::join(missing, ", ")));
  if (!unexpected.empty()) parts.push_back(fmt::format("unexpected keys: {}", fmt::join(unexpected, ", ")));
  if (!mismatched.empty()) parts.push_back(fmt::format("mismatches: {}", fmt::join(mismatched, "; ")));
  throw std::runtime_error(
      fmt::format("{} does not fit the model ({}); load only files saved from the same architecture, with "
                  "the same dtypes",
                  source, fmt::join(parts, "; ")));
}

StateDict materialize(const weights::WeightsFile& file) {
  StateDict state;
  for (const auto& [name, ref] : weights::tensor_entries(file, file.root()))
    state.emplace_back(name, file.tensor(*ref));
  return state;
}

c10::IValue to_ivalue(const weights::WeightsFile& file, const weights::Value& v) {
  using Kind = weights::Value::Kind;
  switch (v.kind) {
    case Kind::kNone:
      return {};
    case Kind::kBool:
      return v.boolean;
    case Kind::kInt:
      return v.integer;
    case Kind::kFloat:
      return v.real;
    case Kind::kString:
      return v.text;
    case Kind::kTensor:
      return file.tensor(v.tensor);
    case Kind::kTuple: {
      std::vector<c10::IValue> items;
      for (const auto& item : v.items) items.push_back(to_ivalue(file, *item));
      return c10::ivalue::Tuple::create(std::move(items));
    }
    case Kind::kList: {
      c10::impl::GenericList list(c10::AnyType::get());
      for (const auto& item : v.items) list.push_back(to_ivalue(file, *item));
      return list;
    }
    case Kind::kDict: {
      c10::impl::GenericDict dict(c10::AnyType::get(), c10::AnyType::get());
      for (const auto& [key, value] : v.entries) dict.insert(to_ivalue(file, *key), to_ivalue(file, *value));
      return dict;
    }
    default:
      throw std::runtime_error(
          fmt::format("{}: holds a {}, which is not a plain value; read it with read_state_dict", file.name(),
                      weights::Value::kind_name(v.kind)));
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
  return materialize(weights::WeightsFile::from_bytes(std::string(bytes), name));
}

StateDict read_state_dict(const fs::path& path) { return materialize(weights::WeightsFile::open(path)); }

c10::IValue read_value(const fs::path& path) {
  const auto file = weights::WeightsFile::open(path);
  return to_ivalue(file, file.root());
}

void load_state_dict(torch::nn::Module& module, const StateDict& state, const std::string& source) {
  const StateDict expected = state_dict(module);
  std::vector<Described> given;
  std::map<std::string, torch::Tensor> by_key;
  for (const auto& [key, tensor] : state) {
    given.push_back({key, tensor.sizes().vec(), tensor.scalar_type()});
    by_key.emplace(key, tensor);
  }
  check_fits(expected, given, source);
  // Everything was checked first, so the copy cannot fail half-way and leave the module half-loaded.
  torch::NoGradGuard no_grad;
  for (const auto& [key, tensor] : expected) {
    auto target = tensor;
    target.copy_(by_key.at(key));
  }
}

void load_state_dict(torch::nn::Module& module, const fs::path& path) {
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
  for (const auto& [key, tensor] : expected) {
    auto target = tensor;
    file.read_into(*by_key.at(key), target);
  }
}

}  // namespace common
