// The safetensors writer: the bytes of Python's safetensors.torch.save_file. Its checks are save_file's
// (_evaluate_tensors_for_save, _flatten_as_ptr), its layout the reference crate's (prepare, serialize):
// tensors sorted by dtype, widest first, then by name; the header compact JSON with __metadata__ first,
// padded with spaces to a multiple of 8 bytes; the data back to back.
#include <algorithm>
#include <map>
#include <set>
#include <tuple>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "common/files/files.h"
#include "common/safetensors/internal.h"
#include "common/safetensors/safetensors.h"

namespace common::safetensors {
namespace fs = std::filesystem;

namespace {

// serde_json's string form: the same escapes as nlohmann's dump (\", \\, \b \f \n \r \t, \u00xx in
// lowercase hex for the other control characters), UTF-8 as it is.
std::string quoted(const std::string& s) { return nlohmann::json(s).dump(); }

// _find_shared_tensors and _filter_shared_not_shared: tensors of one storage whose bytes overlap, taken
// in the order of their addresses, each compared with the one before it.
void refuse_shared(const std::vector<std::pair<std::string, torch::Tensor>>& tensors) {
  std::map<std::tuple<std::string, const void*, size_t>, std::vector<size_t>> by_storage;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& t = tensors[i].second;
    const auto& storage = t.storage();
    if (storage.data() == nullptr || storage.nbytes() == 0) continue;
    by_storage[{t.device().str(), storage.data(), storage.nbytes()}].push_back(i);
  }
  std::vector<std::string> failing;
  for (const auto& [storage, members] : by_storage) {
    if (members.size() < 2) continue;
    std::vector<std::tuple<uintptr_t, uintptr_t, std::string>> areas;
    for (const auto i : members) {
      const auto& t = tensors[i].second;
      const auto start = reinterpret_cast<uintptr_t>(t.data_ptr());
      const auto stop = t.numel() == 0 ? start : start + static_cast<uintptr_t>(t.numel() * t.element_size());
      areas.emplace_back(start, stop, tensors[i].first);
    }
    std::sort(areas.begin(), areas.end());
    std::vector<std::string> group{std::get<2>(areas[0])};
    uintptr_t last_stop = std::get<1>(areas[0]);
    for (size_t k = 1; k < areas.size(); ++k) {
      const auto& [start, stop, name] = areas[k];
      if (start >= last_stop) {
        if (group.size() > 1) failing.push_back(fmt::format("{{{}}}", fmt::join(group, ", ")));
        group = {name};
      } else {
        group.push_back(name);
      }
      last_stop = stop;
    }
    if (group.size() > 1) failing.push_back(fmt::format("{{{}}}", fmt::join(group, ", ")));
  }
  if (!failing.empty())
    throw std::runtime_error(
        fmt::format("some tensors share memory, which safetensors cannot save: {}; save each once (clone one "
                    "of them), or "
                    "save the state dict in PyTorch's format, which keeps them shared",
                    fmt::join(failing, " ")));
}

}  // namespace

void save_file(const std::vector<std::pair<std::string, torch::Tensor>>& tensors, const fs::path& path,
               const std::optional<std::map<std::string, std::string>>& metadata) {
  for (const auto& [name, t] : tensors)
    if (t.layout() != torch::kStrided)
      throw std::runtime_error(
          fmt::format("{}: '{}' is a sparse tensor, which safetensors cannot save; "
                      "save t.to_dense()",
                      path.string(), name));
  refuse_shared(tensors);
  struct Item {
    const std::string* name;
    const DtypeName* dtype;
    torch::Tensor data;  // on the CPU
  };
  std::vector<Item> items;
  std::set<std::string> names;
  for (const auto& [name, t] : tensors) {
    if (name == "__metadata__")
      throw std::runtime_error(
          fmt::format("{}: a tensor cannot be named __metadata__, the header's own key", path.string()));
    if (!names.insert(name).second)
      throw std::runtime_error(fmt::format("{}: the name '{}' is given twice", path.string(), name));
    if (!t.is_contiguous())
      throw std::runtime_error(fmt::format(
          "{}: '{}' is not contiguous, which safetensors cannot save; save t.contiguous(), or save the full "
          "tensor and slice it after loading",
          path.string(), name));
    const DtypeName* d = dtype_of(t.scalar_type());
    if (d == nullptr)
      throw std::runtime_error(fmt::format("{}: '{}' has the dtype {}, which safetensors has no name for",
                                           path.string(), name, c10::toString(t.scalar_type())));
    items.push_back({&name, d, t.detach().cpu()});
  }
  std::sort(items.begin(), items.end(), [](const Item& a, const Item& b) {
    const auto ra = dtype_rank(a.dtype), rb = dtype_rank(b.dtype);
    return ra != rb ? ra > rb : *a.name < *b.name;
  });

  std::string header = "{";
  if (metadata) {
    header += "\"__metadata__\":{";
    bool first = true;
    for (const auto& [key, value] : *metadata) {
      header += (first ? "" : ",") + quoted(key) + ":" + quoted(value);
      first = false;
    }
    header += "}";
  }
  uint64_t offset = 0;
  for (const auto& item : items) {
    const auto bytes = static_cast<uint64_t>(item.data.nbytes());
    if (header.size() > 1) header += ",";
    header +=
        fmt::format("{}:{{\"dtype\":\"{}\",\"shape\":[{}],\"data_offsets\":[{},{}]}}", quoted(*item.name),
                    item.dtype->name, fmt::join(item.data.sizes(), ","), offset, offset + bytes);
    offset += bytes;
  }
  header += "}";
  header.resize((header.size() + 7) / 8 * 8, ' ');

  write_atomically(path, [&](int fd) {
    unsigned char length[8];
    for (int i = 0; i < 8; ++i) length[i] = static_cast<unsigned char>(header.size() >> (8 * i));
    write_all(fd, length, sizeof length);
    write_all(fd, header.data(), header.size());
    for (const auto& item : items)
      if (item.data.nbytes() > 0) write_all(fd, item.data.data_ptr(), item.data.nbytes());
  });
}

}  // namespace common::safetensors
