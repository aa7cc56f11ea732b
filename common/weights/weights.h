#pragma once
// Weights are data, never code. The two zip formats that carry tensors, Python's torch.save and
// LibTorch's torch::save of a module, both describe their values with a pickle, and a pickle is a
// program: LibTorch's own reader runs TorchScript (__setstate__) from the file, and Python's plain
// torch.load runs any callable the pickle names. This reader is the equivalent of Python's
// torch.load(weights_only=True): it parses the zip itself, interprets the pickle with a machine that
// knows a short allow-list of opcodes and globals, and never calls anything the file names.
//
// The data flows through one file per step:
//   source.cpp         the bytes: a regular file read with pread, never mapped, or bytes in memory
//   zip_reader.cpp     the archive: end record, directory, records (CRC-checked)
//   records.cpp        many records' bytes at once, in parallel slices, with their CRCs
//   code.cpp           TorchScript code/ records, tokenized: any method definition refuses the file
//   pickle_reader.cpp  data.pkl -> values, by the allow-list machine
//   values.cpp         the few calls a weights file makes: storages and tensor descriptions, checked
//   weights.cpp        the file as a whole: its records, its code checked, its pickle run
//   tensors.cpp        its tensors: each storage read once through its CRC, each tensor a view of it
//   to_libtorch.cpp    values -> LibTorch: a state dict's names and tensors, or any value as an IValue
//   state_dict.cpp     a module's state: strict loading, and saving for Python (state_dict.h)
// and the writer, which state_dict.cpp uses: pickle_writer.cpp and zip_writer.cpp. The reader and the
// writer share the format's constants: zip.h (signatures and sizes) and pickle.h (opcodes).
//
// A file is read as PyTorch reads it or refused: docs/RELIABILITY.md lists each case a file could be
// read two ways and what is done. Every length, count, offset and size is checked against what is
// really there before anything is allocated, with overflow-checked arithmetic, and everything the reader
// builds or visits is drawn from one Budget, shared values counted once.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <torch/torch.h>

namespace common::weights {

inline constexpr size_t kMaxDepth = 64;                 // nesting of containers
inline constexpr size_t kMaxEntries = 1u << 16;         // zip entries
inline constexpr size_t kMaxDims = 64;                  // a tensor's dimensions
inline constexpr uint64_t kMaxCodeBytes = 16ull << 20;  // TorchScript code/ files, read only to be refused
// What the pickle and the values built from it may take. A state dict costs about 1 KB a tensor, so
// 64 MiB holds some 60,000 tensors: 30 times a 1000-layer model.
inline constexpr uint64_t kDefaultBudgetBytes = 64ull << 20;
// A storage is read whole, as Python reads it, unless its tensors leave more than this of it unreached:
// then only the part they reach is kept (docs/RELIABILITY.md).
inline constexpr uint64_t kUnreachedBytes = 64ull << 20;

// Every error about a file: the message starts with the file's name.
struct FileError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// One budget in bytes for a reading: the pickle's bytes, each value, each container slot, each string
// and each visit draw on it, so that no file costs more than it, whatever its shape.
class Budget {
 public:
  explicit Budget(uint64_t bytes = kDefaultBudgetBytes) : total_(bytes), left_(bytes) {}
  // Throws FileError "<file>: reading it needs more than the reader's budget ... (<what>)".
  void charge(uint64_t bytes, const char* what);
  uint64_t used() const { return total_ - left_; }
  // What a value that is no longer held took, given back.
  void refund(uint64_t bytes) { left_ = std::min(total_, left_ + bytes); }
  void name_file(std::string name) { file_ = std::move(name); }

 private:
  uint64_t total_;
  uint64_t left_;
  std::string file_;
};

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

// A tensor as the file describes it; nothing has been read yet. Checked when parsed: the element count
// fits an int64, the range that sizes, strides and offset reach lies inside the storage, and the storage
// is exactly its record.
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

// A value of the pickle, once interpreted: plain data only. Values are shared as the pickle shares them
// (its memo), as Python's objects are.
struct Value {
  enum class Kind : uint8_t {
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
  using Ptr = std::shared_ptr<Value>;
  Kind kind = Kind::kNone;
  bool boolean = false;
  bool ordered = false;  // an OrderedDict
  // Machine bookkeeping: a container that has been put inside another is sealed, so no pickle can build
  // a cycle; depth is checked against kMaxDepth.
  bool sealed = false;
  uint32_t depth = 0;
  int64_t integer = 0;
  double real = 0;
  std::string text;                          // a string; a global's "module.name"; an object's class
  std::vector<Ptr> items;                    // tuple, list
  std::vector<std::pair<Ptr, Ptr>> entries;  // dict, object attributes
  std::unique_ptr<TensorRef> tensor;         // tensor; storage

  static const char* kind_name(Kind kind);
};

// A file (or bytes in memory) read as weights. Throws FileError naming the file and what it found when
// anything is wrong or not allowed.
class WeightsFile {
 public:
  // Accepts regular files only: a FIFO, a device or a folder is refused before it is read.
  static WeightsFile open(const std::filesystem::path& path, uint64_t budget_bytes = kDefaultBudgetBytes);
  static WeightsFile from_bytes(std::string bytes, std::string name,
                                uint64_t budget_bytes = kDefaultBudgetBytes);

  const std::string& name() const { return name_; }
  const Value& root() const { return *root_; }
  const std::vector<Record>& records() const { return records_; }
  // "torch.save" or "torch::save (TorchScript archive)".
  const std::string& format() const { return format_; }
  Budget& budget() const { return *budget_; }
  // Whether a TorchScript archive's code declares an attribute of this name as a tensor (or, with
  // `module`, as a module): torch.jit.load refuses a module object whose attributes its code does not
  // declare so.
  bool declares(const std::string& attribute, bool module) const;

  // Checks the CRC of every record that a tensor uses (read in slices; nothing is kept).
  void verify(const std::vector<const TensorRef*>& refs) const;
  // Copies each tensor's values into its target, which has its shape and dtype. Contiguous CPU targets are
  // read into directly, with no intermediate tensor. The caller checks CRCs first (verify).
  void read_into(const std::vector<std::pair<const TensorRef*, torch::Tensor>>& targets) const;
  // The storage of a record as one CPU tensor, read and CRC-checked once per record however many tensors
  // view it (as Python shares a storage between its views); when more than kUnreachedBytes of it would be
  // reached by no tensor, only the part that holds `ref` (tensor() offsets its views so).
  torch::Tensor storage(const TensorRef& ref) const;
  // The tensor as Python rebuilds it: a view of its storage with the file's sizes, strides and offset.
  torch::Tensor tensor(const TensorRef& ref) const;

  struct Source;

 private:
  WeightsFile(std::shared_ptr<Source> source, std::string name, uint64_t budget_bytes);
  void parse();
  [[noreturn]] void fail(const std::string& what) const;
  // fail, as the stages' functions take it.
  std::function<void(const std::string& what)> failing() const;

  std::shared_ptr<Source> source_;
  std::string name_;
  std::string format_;
  std::vector<Record> records_;
  std::shared_ptr<Budget> budget_;
  // A kept part of a record's storage, from its element `first`.
  struct Piece {
    int64_t first = 0;
    torch::Tensor data;
  };
  // What the root's tensors reach of each record: the parts, in elements [first, last), merged where they
  // touch; and how many elements the tensors hold.
  struct Reached {
    std::vector<std::pair<int64_t, int64_t>> parts;
    int64_t used = 0;
  };
  const std::vector<Reached>& reached() const;
  void read_storage(const TensorRef& ref) const;
  // Reads a record in slices through its CRC, giving each slice to `visit` (if any); refuses a wrong CRC.
  void stream(const Record& r,
              const std::function<void(uint64_t at, const char* bytes, size_t n)>& visit) const;
  const Piece& piece(const TensorRef& ref) const;

  std::shared_ptr<std::vector<std::vector<Piece>>> storages_;  // by record, filled as they are first read
  mutable std::shared_ptr<std::vector<Reached>> reached_;
  std::shared_ptr<Value> root_;
  std::shared_ptr<std::unordered_multimap<std::string, std::string>> attributes_ =
      std::make_shared<std::unordered_multimap<std::string, std::string>>();
};

// Name -> tensor reference of a state dict: a dict of str -> tensor, as Python's state_dict() is (a
// nested dict is not flattened: Python's load_state_dict does not either), or LibTorch's module objects
// (their tensor attributes, nested modules joined with '.'). A name met twice, a module reached by two
// paths or any other value in a dict refuses the file.
std::vector<std::pair<std::string, const TensorRef*>> tensor_entries(const WeightsFile& file,
                                                                     const Value& value);
// The root's state dict, its tensors made from the file (each a view of its storage, read once).
std::vector<std::pair<std::string, torch::Tensor>> state_dict_tensors(const WeightsFile& file);
// Any value of the file (tensors, lists, tuples, dicts, numbers, strings) as LibTorch's IValue, shared
// where the pickle shares it; a module object or any other value that is not plain data refuses the file.
c10::IValue to_ivalue(const WeightsFile& file, const Value& value);

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
