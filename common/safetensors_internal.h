#pragma once
// What the safetensors reader and writer share: the format's dtypes, and the index of a sharded checkpoint.
#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <torch/torch.h>

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

// model.safetensors.index.json: each tensor's shard, in the index's order, and the shards, each once.
struct Index {
  std::vector<std::pair<std::string, std::string>> weight_map;
  std::vector<std::string> shards;
};
Index read_index(const std::filesystem::path& path);

}  // namespace common::safetensors
