#pragma once
// Weights are data, never code. The two zip formats that carry tensors, Python's torch.save and
// LibTorch's torch::save of a module, both describe their values with a pickle, and a pickle is a
// program: LibTorch's own reader runs TorchScript (__setstate__) from the file, and Python's plain
// torch.load runs any callable the pickle names. This reader is the equivalent of Python's
// torch.load(weights_only=True): it parses the zip itself, interprets the pickle with a machine that
// knows a short allow-list of opcodes and globals, and never calls anything the file names.
//
// Every length, count, offset and size is checked against what is really there before anything is
// allocated or read, with overflow-safe arithmetic; the file is read with pread (never mapped, so
// another program truncating it gives an error, not SIGBUS); each record's CRC is checked before its
// bytes are used.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

namespace common::weights {

// Limits, checked before anything is allocated. A state dict's pickle holds a few hundred bytes per
// tensor, so these are far above any real file (a 1000-layer model's data.pkl is about 300 KB).
inline constexpr uint64_t kMaxPickleBytes = 64ull << 20;
inline constexpr size_t kMaxDepth = 64;                 // nesting of containers
inline constexpr size_t kMaxMemo = 1u << 20;            // memo entries
inline constexpr size_t kMaxStack = 1u << 20;           // values on the pickle machine's stack
inline constexpr size_t kMaxEntries = 1u << 16;         // zip entries
inline constexpr size_t kMaxDims = 64;                  // a tensor's dimensions
inline constexpr uint64_t kMaxCodeBytes = 16ull << 20;  // TorchScript code/ files, read only to be refused

// One stored entry of the archive, by its name without the archive's top folder ("data/0").
struct Record {
  std::string name;
  uint64_t offset = 0;  // of its first byte in the file
  uint64_t size = 0;
  uint32_t crc = 0;
  // TorchScript deflates its code/ files; nothing else may be compressed.
  bool deflated = false;
  uint64_t stored_size = 0;
};

// A tensor as the file describes it; nothing has been read yet. Checked when parsed: the element range
// that sizes, strides and offset reach lies inside the storage, and the storage is exactly its record.
struct TensorRef {
  c10::ScalarType dtype = c10::ScalarType::Float;
  size_t record = 0;  // index into WeightsFile::records()
  int64_t storage_numel = 0;
  int64_t storage_offset = 0;
  std::vector<int64_t> sizes;
  std::vector<int64_t> strides;
  bool requires_grad = false;

  bool contiguous() const;
  int64_t numel() const;
};

// A value of the pickle, once interpreted: plain data only.
struct Value {
  enum class Kind {
    kNone,
    kBool,
    kInt,
    kFloat,
    kString,
    kTuple,
    kList,
    kDict,
    kTensor,
    kObject,
    kGlobal,
    kStorage
  };
  Kind kind = Kind::kNone;
  bool boolean = false;
  int64_t integer = 0;
  double real = 0;
  std::string text;                           // a string; a global's "module.name"; an object's class name
  std::vector<std::shared_ptr<Value>> items;  // tuple, list
  std::vector<std::pair<std::shared_ptr<Value>, std::shared_ptr<Value>>> entries;  // dict, object attributes
  TensorRef tensor;                                                                // tensor; storage
  bool ordered = false;                                                            // an OrderedDict
  // Machine bookkeeping: a container that has been put inside another is sealed, so no pickle can build
  // a cycle; depth is checked against kMaxDepth.
  bool sealed = false;
  size_t depth = 0;

  static const char* kind_name(Kind kind);
};

// A file (or bytes in memory) read as weights. Throws std::runtime_error naming the file and what it
// found when anything is wrong or not allowed.
class WeightsFile {
 public:
  // Accepts regular files only: a FIFO, a device or a folder is refused before it is read.
  static WeightsFile open(const std::filesystem::path& path);
  static WeightsFile from_bytes(std::string bytes, std::string name);

  const std::string& name() const { return name_; }
  const Value& root() const { return *root_; }
  const std::vector<Record>& records() const { return records_; }
  // "torch.save" or "torch::save (TorchScript archive)".
  const std::string& format() const { return format_; }

  // A fresh CPU tensor with the file's values; the record's CRC is checked first.
  torch::Tensor tensor(const TensorRef& ref) const;
  // Checks the CRC of every record that a tensor uses (read in slices; nothing is kept).
  void verify(const std::vector<const TensorRef*>& refs) const;
  // Copies the tensor's values into `target`, which has its shape and dtype. A contiguous CPU target is
  // read into directly, with no intermediate tensor. The caller checks CRCs first (verify).
  void read_into(const TensorRef& ref, torch::Tensor& target) const;

  struct Source;

 private:
  WeightsFile(std::shared_ptr<Source> source, std::string name);
  void parse();
  [[noreturn]] void fail(const std::string& what) const;

  std::shared_ptr<Source> source_;
  std::string name_;
  std::string format_;
  std::vector<Record> records_;
  std::shared_ptr<Value> root_;
};

// Name -> tensor reference, flattened from a dict (nested dicts joined with '.') or from LibTorch's
// module objects (their tensor attributes, nested modules joined with '.').
std::vector<std::pair<std::string, const TensorRef*>> tensor_entries(const WeightsFile& file,
                                                                     const Value& value);

// Writes `value` as Python's torch.save does (protocol 2 pickle in a zip of stored entries, 64-byte
// aligned records), so that torch.load(path, weights_only=True) opens it on PyTorch 1.13 and 2.x.
// Dicts are written as plain dicts; `ordered_dicts` writes them as collections.OrderedDict, which is
// what model.state_dict() returns. Tensors are written from CPU memory (others are copied first);
// ints, floats, bools, strings, None, lists and tuples are supported.
std::string pickle_for_python(const c10::IValue& value, bool ordered_dicts,
                              std::vector<torch::Tensor>& storages);
void write_for_python(int fd, const std::string& archive_name, const c10::IValue& value, bool ordered_dicts);

// A zip archive of stored records under archive_name/, as write_for_python lays them out (for tests and
// the fuzzer, which wrap arbitrary pickles in archives with valid CRCs).
std::string make_archive(const std::string& archive_name,
                         const std::vector<std::pair<std::string, std::string>>& records);

// A zip file's CRC-32 (libdeflate's when available).
uint32_t crc32(uint32_t crc, const void* data, size_t size);

}  // namespace common::weights
