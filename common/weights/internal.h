#pragma once
// The stages' parts, in the order a file goes through them: source -> zip -> records -> (code check) ->
// pickle -> values, which weights.cpp joins; then the writer's zip.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/weights/weights.h"

namespace common::weights {

// Where the bytes come from: a file read with pread (never mapped, so a file truncated by another
// program is an error, not SIGBUS) or bytes in memory.
struct WeightsFile::Source {
  virtual ~Source() = default;
  virtual uint64_t size() const = 0;
  // Reads exactly n bytes at offset into dst, or throws.
  virtual void read(uint64_t offset, void* dst, size_t n) const = 0;
};
using Source = WeightsFile::Source;

// Every refusal goes through one of these: it throws FileError naming the file.
using Fail = std::function<void(const std::string& what)>;

// --- source.cpp -------------------------------------------------------------------------------------
// A regular file, opened for pread: a FIFO, a device or a folder is refused before it is read.
std::shared_ptr<Source> open_source(const std::filesystem::path& path);
std::shared_ptr<Source> bytes_source(std::string bytes);

// --- zip_reader.cpp ---------------------------------------------------------------------------------
// A record's name as miniz compares names, whatever their ASCII case (MZ_TOLOWER).
std::string folded(std::string name);
// Little-endian integers, as zip, pickle and safetensors store them.
uint16_t le16(const unsigned char* p);
uint32_t le32(const unsigned char* p);
uint64_t le64(const unsigned char* p);
// The archive's records, names without the archive's folder. The end record is the one PyTorch's reader
// (miniz) takes, the last signature in the file; its directory is read entry by entry, so nothing is
// allocated for what the end record claims.
std::vector<Record> read_directory(const Source& source, Budget& budget, const Fail& fail);
// A record's bytes, CRC-checked; a deflated one inflated to exactly its declared size.
std::string read_record(const Source& source, const Record& record, Budget& budget, const Fail& fail);
// Refuses the file, naming the record, when crc is not the record's: every path that reads a record's
// bytes, whole, streamed or in parallel slices, ends here.
void check_crc(const Record& record, uint32_t crc, const Fail& fail);

// --- records.cpp ------------------------------------------------------------------------------------
// A byte range of the source, read into `into` (nullptr: into a scratch buffer, only to be summed).
struct Range {
  uint64_t offset;
  uint64_t size;
  char* into;
};
// Reads every range once, in parallel slices; with `crc`, gives each range's CRC-32.
std::vector<uint32_t> read_ranges(const Source& source, const std::vector<Range>& ranges, bool crc);
// The CRC-32 of A followed by B, from CRC(A), CRC(B) and B's size.
uint32_t crc32_combine(uint32_t first, uint32_t second, uint64_t second_size);

// --- code.cpp --------------------------------------------------------------------------------
// The names of the functions a TorchScript code file defines, found by Python's tokens (`def` as a
// keyword, whatever whitespace, continuation lines or comments surround it).
std::vector<std::string> defined_methods(std::string_view code);
// The attributes a code file's classes declare: name and type ("Tensor", "__torch__.Module", ...).
std::vector<std::pair<std::string, std::string>> declared_attributes(std::string_view code);
// The names that follow a keyword as tokens: `class` gives the classes a code file declares.
std::vector<std::string> names_after(std::string_view code, std::string_view keyword);

// --- pickle_reader.cpp ------------------------------------------------------------------------------
// Finds a storage's record by its key ("data/0"): its index, or nullopt.
using RecordLookup = std::function<std::optional<size_t>(const std::string& name)>;
// `classes`: the TorchScript classes the archive's code declares ("__torch__.Module"), the only __torch__
// names the pickle may use (torch.jit.load refuses others; torch.load(weights_only=True) refuses them all).
Value::Ptr run_pickle(const std::string& bytes, const std::vector<Record>& records,
                      const RecordLookup& lookup, const std::unordered_set<std::string>& classes,
                      Budget& budget, const Fail& fail);

// --- values.cpp -----------------------------------------------------------------------------
// A storage type's dtype by its name ("FloatStorage"), and the reverse: the pickler writes what the
// reader accepts.
std::optional<c10::ScalarType> storage_dtype(const std::string& name);
const char* storage_name(c10::ScalarType dtype);
// Makes values, each charged to the budget for what it is. None, booleans and small integers are shared,
// as Python shares them.
class Values {
 public:
  Values(Budget& budget, Fail fail) : budget_(budget), fail_(std::move(fail)) {}
  Value::Ptr make(Value::Kind kind);
  Value::Ptr none();
  Value::Ptr empty_tuple();
  Value::Ptr boolean(bool b);
  Value::Ptr integer(int64_t i);
  Value::Ptr string(const char* data, size_t size);
  // Charges the growth of a container before an element is added to it.
  template <typename T>
  void grow(std::vector<T>& v, const char* what) {
    if (v.size() == v.capacity()) {
      const size_t next = v.empty() ? 4 : v.capacity() * 2;
      budget_.charge((next - v.capacity()) * sizeof(T), what);
      v.reserve(next);
    }
  }
  Budget& budget() { return budget_; }
  [[noreturn]] void error(size_t at, const std::string& what) const;

 private:
  Budget& budget_;
  Fail fail_;
  Value::Ptr none_, true_, false_, empty_tuple_;
  std::vector<Value::Ptr> small_ints_;
};

// The calls a weights file may make, by name: OrderedDict, _rebuild_tensor_v2, _rebuild_parameter,
// LibTorch's module classes (torch.jit._pickle.restore_type_tag is not one: weights_only refuses it); and
// BINPERSID's storages. Every argument is checked.
class Rebuilder {
 public:
  Rebuilder(Values& values, const std::vector<Record>& records, RecordLookup lookup)
      : values_(values), records_(records), lookup_(std::move(lookup)) {}
  static bool allowed(const std::string& module, const std::string& name,
                      const std::unordered_set<std::string>& classes);
  // REDUCE (`newobj` false) calls a function, as Python's weights-only unpickler does for OrderedDict and
  // the _rebuild functions; NEWOBJ (`newobj` true) makes an object of a class, which PyTorch's unpicklers
  // do only for TorchScript's classes (1.13's weights-only unpickler for nn.Parameter alone, which a
  // state dict never holds): each callable is accepted by the opcode PyTorch accepts it by, and no other.
  Value::Ptr call(const Value& callable, const Value& args, bool newobj, size_t at);
  Value::Ptr storage(const Value& pid, size_t at);

 private:
  Value::Ptr rebuild_tensor(const Value& args, size_t at);
  Value::Ptr rebuild_parameter(const Value& args, size_t at);

  Values& values_;
  const std::vector<Record>& records_;
  RecordLookup lookup_;
  // One storage value per record, as Python's persistent_load keeps one storage per key.
  std::unordered_map<size_t, Value::Ptr> storages_;
};

// --- zip_writer.cpp -------------------------------------------------------------------------
struct ZipPart {
  std::string name;
  const void* data;
  size_t size;
};
using ZipSink = std::function<void(const void* data, size_t size)>;
void write_zip(const std::string& archive_name, const std::vector<ZipPart>& parts, const ZipSink& sink);

}  // namespace common::weights
