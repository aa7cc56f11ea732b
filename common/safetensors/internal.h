#pragma once
// What the safetensors reader and writer share: the format's dtypes, and the index of a sharded checkpoint.
#include <cstddef>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "common/weights/weights.h"

namespace common::safetensors {

struct DtypeName {
  const char* name;
  size_t bits;
  std::optional<c10::ScalarType> type;  // none where this LibTorch has no such type
};
// By the format's name, or by LibTorch's type; nullptr when there is none.
const DtypeName* dtype_named(std::string_view name);
const DtypeName* dtype_of(c10::ScalarType type);
// Its place in the reference's declaration order, which its writer sorts by.
size_t dtype_rank(const DtypeName* dtype);

// RFC 3629 UTF-8, as Rust's str::from_utf8 checks it.
bool valid_utf8(std::string_view s);

// Keys given twice where serde would tell, in one top-level value of a JSON object.
struct Repeats {
  std::vector<std::string> fields;      // in the value's own object
  bool overwritten_non_string = false;  // ... and the first of them was not a string
  std::vector<std::string> below;       // names of the objects one level down with a key given twice
};
using JsonDone = std::function<void(const std::string& key, nlohmann::json value, const Repeats& repeats)>;
// Parses text, a JSON object, top-level value by top-level value within the budget and serde_json's depth
// limit, handing each to done as soon as it is complete; "" or what is wrong, starting with `subject`.
std::string parse_object(const std::string& text, weights::Budget& budget, const std::string& subject,
                         const JsonDone& done);

// model.safetensors.index.json: each tensor's shard, in the index's order, and the shards, each once.
struct Index {
  std::vector<std::pair<std::string, std::string>> weight_map;
  std::vector<std::string> shards;
};
Index read_index(const std::filesystem::path& path);

}  // namespace common::safetensors
