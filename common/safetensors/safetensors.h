#pragma once
// safetensors, the format most published weights travel in (the Hugging Face hub, diffusers, vLLM): an
// 8-byte little-endian header length, a JSON header naming each tensor's dtype, shape and byte range,
// then the tensors' bytes, back to back. Nothing in it runs; it has no checksum.
//
// The reader accepts exactly what the reference implementation accepts (the safetensors crate behind
// Python's safetensors package: SafeTensors::read_metadata and Metadata::validate) and refuses the rest;
// docs/RELIABILITY.md lists each rule with its test. Each tensor's bytes are read with pread straight into
// their destination: the file is never mapped, so a file truncated while it is read is an error, not a
// signal. The writer's bytes are those of safetensors.torch.save_file for the same tensors.
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include "common/weights/weights.h"

namespace common::safetensors {

using weights::FileError;

// The reference's limit on the header (MAX_HEADER_SIZE). What the header's values take is also drawn from
// the reader's budget, which a header of some tens of MB of names exhausts first.
inline constexpr uint64_t kMaxHeaderBytes = 100'000'000;
// serde_json's recursion limit, which the reference's parser applies: 127 nested arrays or objects, the
// header's own object included.
inline constexpr size_t kMaxDepth = 127;

// A tensor as the header describes it, once validated; nothing has been read yet.
struct TensorInfo {
  std::string name;
  std::string dtype_name;  // the format's name: "F32", "BF16", ...
  c10::ScalarType dtype = c10::ScalarType::Float;
  std::vector<int64_t> shape;
  uint64_t offset = 0;  // of its first byte in the file
  uint64_t bytes = 0;
};

// One safetensors file, its header read and validated. Throws FileError naming the file.
class File {
 public:
  static File open(const std::filesystem::path& path, uint64_t budget_bytes = weights::kDefaultBudgetBytes);
  static File from_bytes(std::string bytes, std::string name,
                         uint64_t budget_bytes = weights::kDefaultBudgetBytes);

  const std::string& name() const { return name_; }
  // In the order of their bytes in the file.
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  // The header's __metadata__, or nothing when it is absent or null.
  const std::optional<std::map<std::string, std::string>>& metadata() const { return metadata_; }
  // What reading its header drew from the budget.
  uint64_t header_cost() const { return header_cost_; }

  // Reads each tensor's bytes into its target, which has its dtype and element count: straight into a
  // contiguous CPU tensor (all of them at once, in parallel slices), through a CPU copy otherwise.
  void read_into(const std::vector<std::pair<const TensorInfo*, torch::Tensor>>& targets) const;
  torch::Tensor read(const TensorInfo& info) const;

 private:
  File(std::shared_ptr<weights::WeightsFile::Source> source, std::string name, uint64_t budget_bytes);
  void parse(uint64_t budget_bytes);

  std::shared_ptr<weights::WeightsFile::Source> source_;
  std::string name_;
  std::vector<TensorInfo> tensors_;
  std::optional<std::map<std::string, std::string>> metadata_;
  uint64_t header_cost_ = 0;
};

// A checkpoint in one file or in shards: `model.safetensors.index.json`, whose weight_map names the shard
// (a file in the index's folder) that holds each tensor, read as one state dict. Every shard is validated;
// a tensor in no shard, in a shard the index does not name for it, or in two shards refuses the whole.
class Checkpoint {
 public:
  static Checkpoint open(const std::filesystem::path& path);

  struct Entry {
    const File* file;
    const TensorInfo* info;
  };
  // Name -> where its bytes are: a single file in its own order, shards by name.
  const std::vector<std::pair<std::string, Entry>>& entries() const { return entries_; }

 private:
  std::vector<std::unique_ptr<File>> files_;
  std::vector<std::pair<std::string, Entry>> entries_;
};

// What a file holds, from its first bytes, never from its name.
enum class Format { kZip, kSafetensors, kSafetensorsIndex };
Format sniff(const std::filesystem::path& path);
Format sniff(std::string_view first_bytes);

// The bytes safetensors.torch.save_file writes for these tensors and metadata (none when absent).
// Refuses, as save_file does, tensors that overlap in memory and non-contiguous ones.
void save_file(const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
               const std::filesystem::path& path,
               const std::optional<std::map<std::string, std::string>>& metadata = std::nullopt);

}  // namespace common::safetensors
