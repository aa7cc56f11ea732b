// Sharded safetensors checkpoints (model.safetensors.index.json, transformers' layout), and telling a
// safetensors file, an index and a zip apart by their first bytes.
#include <algorithm>
#include <map>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/lesson/print.h"
#include "common/safetensors/internal.h"
#include "common/safetensors/safetensors.h"
#include "common/weights/internal.h"
#include "common/weights/zip.h"

namespace common::safetensors {
namespace fs = std::filesystem;
using json = nlohmann::json;
using weights::Fail;

Checkpoint Checkpoint::open(const fs::path& path) {
  Checkpoint c;
  if (sniff(path) != Format::kSafetensorsIndex) {
    c.files_.push_back(std::make_unique<File>(File::open(path)));
    for (const auto& info : c.files_.back()->tensors())
      c.entries_.emplace_back(info.name, Entry{c.files_.back().get(), &info});
    return c;
  }
  const auto index = read_index(path);
  const std::map<std::string, std::string> shard_of(index.weight_map.begin(), index.weight_map.end());
  const auto fail = [&](const std::string& what) {
    throw FileError(fmt::format("{}: {}", path.string(), what));
  };
  // Shard by shard, each checked against the weight_map as soon as it is read, so that a wrong index stops
  // at its first wrong shard; the shards' headers share one budget.
  uint64_t budget_left = weights::kDefaultBudgetBytes;
  std::map<std::string, Entry> found;
  for (const auto& shard : index.shards) {
    try {
      c.files_.push_back(std::make_unique<File>(File::open(path.parent_path() / shard, budget_left)));
    } catch (const FileError& e) {
      fail(e.what());  // the index, then its shard
    }
    const File* file = c.files_.back().get();
    budget_left -= std::min(budget_left, file->header_cost());
    for (const auto& info : file->tensors()) {
      const auto shown = printable(info.name, 80);
      if (const auto at = found.find(info.name); at != found.end())
        fail(fmt::format("tensor '{}' is in two shards, {} and {}", shown, at->second.file->name(),
                         file->name()));
      const auto listed = shard_of.find(info.name);
      if (listed == shard_of.end())
        fail(fmt::format("tensor '{}' in {} is not in its weight_map", shown, file->name()));
      if (listed->second != shard)
        fail(fmt::format("tensor '{}' is in {}, but its weight_map names {}", shown, file->name(),
                         printable(listed->second, 80)));
      found.emplace(info.name, Entry{file, &info});
    }
  }
  for (const auto& [name, shard] : index.weight_map) {
    const auto at = found.find(name);
    if (at == found.end())
      fail(fmt::format("tensor '{}' is not in {}, the shard its weight_map names", printable(name, 80),
                       shard));
    c.entries_.emplace_back(name, at->second);
  }
  return c;
}

Format sniff(std::string_view bytes) {
  const auto* head = reinterpret_cast<const unsigned char*>(bytes.data());
  const size_t n = bytes.size();
  const auto space = [](unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  if (n >= 4 && weights::le32(head) == weights::zip::kLocalSignature) return Format::kZip;
  // An index is JSON text, an object. A safetensors file's JSON object starts at byte 8, after its
  // header's length, at most 100,000,000 (bytes 4 to 7 zero) where whitespace comes first. Anything else
  // goes to the zip reader, which says what it is not.
  size_t i = 0;
  while (i < n && space(head[i])) ++i;
  if (i < n && head[i] == '{' &&
      std::find(head, head + std::min<size_t>(n, 8), 0) == head + std::min<size_t>(n, 8))
    return Format::kSafetensorsIndex;
  if (n >= 9 && (head[8] == '{' || (space(head[8]) && weights::le32(head + 4) == 0)))
    return Format::kSafetensors;
  return Format::kZip;
}

Format sniff(const fs::path& path) {
  const auto source = weights::open_source(path);
  char head[4096] = {};
  const auto n = static_cast<size_t>(std::min<uint64_t>(source->size(), sizeof head));
  source->read(0, head, n);
  return sniff(std::string_view(head, n));
}

// The index as transformers writes it: {"metadata": {...}, "weight_map": {tensor: shard file}}. Only
// weight_map is read. A shard is a file in the index's folder: a name with a slash or a backslash, or "."
// or "..", is refused, so that no index reaches a file elsewhere.
Index read_index(const fs::path& path) {
  const auto source = weights::open_source(path);
  const std::string name = path.string();
  const Fail fail = [&](const std::string& what) {
    throw FileError(fmt::format("{}: not a valid safetensors index: {}", name, what));
  };
  weights::Budget budget;
  budget.name_file(name);
  budget.charge(source->size(), "its text");
  std::string text(source->size(), '\0');
  source->read(0, text.data(), text.size());
  // As Python's json.load of the file reads it, or refused: UTF-8 without a byte-order mark, no raw NUL.
  if (!valid_utf8(text) || text.rfind("\xEF\xBB\xBF", 0) == 0 || text.find('\0') != std::string::npos)
    fail("it is not JSON text in UTF-8");
  json weight_map;
  const auto error =
      parse_object(text, budget, "it", [&](const std::string& key, json value, const Repeats& /*repeats*/) {
        if (key == "weight_map") weight_map = std::move(value);
      });
  if (!error.empty()) fail(error);
  if (!weight_map.is_object()) fail("it has no weight_map of tensor names to shard files");
  Index out;
  std::set<std::string> shards;
  for (const auto& [tensor, shard] : weight_map.items()) {
    if (!shard.is_string()) fail(fmt::format("the shard of '{}' is not a file name", printable(tensor, 80)));
    const auto file = shard.get<std::string>();
    if (file.empty() || file == "." || file == ".." ||
        file.find_first_of(std::string("/\\\0", 3)) != std::string::npos)
      fail(fmt::format("the shard '{}' is not a file in the index's folder", printable(file, 80)));
    out.weight_map.emplace_back(tensor, file);
    if (shards.insert(file).second) out.shards.push_back(file);
  }
  return out;
}

}  // namespace common::safetensors
