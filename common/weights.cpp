#include "common/weights.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <unordered_map>

#include <fmt/format.h>
#include <fmt/ranges.h>

#ifndef MP_HAVE_LIBDEFLATE
#define MP_HAVE_LIBDEFLATE 0
#endif
#if MP_HAVE_LIBDEFLATE
#include <libdeflate.h>
#endif

#include "common/files.h"

namespace common::weights {
namespace fs = std::filesystem;

uint32_t crc32(uint32_t crc, const void* data, size_t size) {
#if MP_HAVE_LIBDEFLATE
  return libdeflate_crc32(crc, data, size);
#else
  // The table-driven CRC-32 of zip (polynomial 0xEDB88320), about 0.5 GB/s: only for builds without
  // libdeflate (about 11 GB/s here).
  static const auto table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  const auto* p = static_cast<const unsigned char*>(data);
  crc = ~crc;
  for (size_t i = 0; i < size; ++i) crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
  return ~crc;
#endif
}

// --- Where the bytes come from ---------------------------------------------------------------------

struct WeightsFile::Source {
  virtual ~Source() = default;
  virtual uint64_t size() const = 0;
  // Reads exactly n bytes at offset into dst, or throws.
  virtual void read(uint64_t offset, void* dst, size_t n) const = 0;
};

namespace {

class FdSource final : public WeightsFile::Source {
 public:
  FdSource(int fd, uint64_t size, std::string name) : fd_(fd), size_(size), name_(std::move(name)) {}
  ~FdSource() override { ::close(fd_); }
  FdSource(const FdSource&) = delete;
  FdSource& operator=(const FdSource&) = delete;
  uint64_t size() const override { return size_; }
  void read(uint64_t offset, void* dst, size_t n) const override {
    auto* out = static_cast<char*>(dst);
    while (n > 0) {
      const ssize_t got = ::pread(fd_, out, n, static_cast<off_t>(offset));
      if (got < 0) {
        if (errno == EINTR) continue;
        throw std::runtime_error(fmt::format("{}: cannot read it: {}", name_, std::strerror(errno)));
      }
      if (got == 0) {
        throw std::runtime_error(
            fmt::format("{}: the file ended early: it was truncated or replaced while it was read", name_));
      }
      out += got;
      offset += static_cast<uint64_t>(got);
      n -= static_cast<size_t>(got);
    }
  }

 private:
  int fd_;
  uint64_t size_;
  std::string name_;
};

class BytesSource final : public WeightsFile::Source {
 public:
  explicit BytesSource(std::string bytes) : bytes_(std::move(bytes)) {}
  uint64_t size() const override { return bytes_.size(); }
  void read(uint64_t offset, void* dst, size_t n) const override {
    if (offset > bytes_.size() || n > bytes_.size() - offset) throw std::runtime_error("read past the end");
    std::memcpy(dst, bytes_.data() + offset, n);
  }

 private:
  std::string bytes_;
};

uint16_t le16(const unsigned char* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
uint32_t le32(const unsigned char* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
         (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24);
}
uint64_t le64(const unsigned char* p) { return le32(p) | (static_cast<uint64_t>(le32(p + 4)) << 32); }

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

struct StorageType {
  const char* name;
  c10::ScalarType dtype;
};
constexpr StorageType kStorageTypes[] = {
    {"FloatStorage", c10::ScalarType::Float},
    {"DoubleStorage", c10::ScalarType::Double},
    {"HalfStorage", c10::ScalarType::Half},
    {"BFloat16Storage", c10::ScalarType::BFloat16},
    {"LongStorage", c10::ScalarType::Long},
    {"IntStorage", c10::ScalarType::Int},
    {"ShortStorage", c10::ScalarType::Short},
    {"CharStorage", c10::ScalarType::Char},
    {"ByteStorage", c10::ScalarType::Byte},
    {"BoolStorage", c10::ScalarType::Bool},
    {"ComplexFloatStorage", c10::ScalarType::ComplexFloat},
    {"ComplexDoubleStorage", c10::ScalarType::ComplexDouble},
};

const char* storage_name(c10::ScalarType dtype) {
  for (const auto& type : kStorageTypes)
    if (type.dtype == dtype) return type.name;
  return nullptr;
}

// Raw deflate of `packed` into `out`, which has the exact expected size.
bool inflate_exactly(const std::string& packed, std::string& out) {
#if MP_HAVE_LIBDEFLATE
  libdeflate_decompressor* d = libdeflate_alloc_decompressor();
  if (d == nullptr) return false;
  size_t produced = 0;
  const auto rc =
      libdeflate_deflate_decompress(d, packed.data(), packed.size(), out.data(), out.size(), &produced);
  libdeflate_free_decompressor(d);
  return rc == LIBDEFLATE_SUCCESS && produced == out.size();
#else
  (void)packed;
  (void)out;
  return false;  // built without libdeflate: compressed TorchScript code cannot be checked, so it is refused
#endif
}

}  // namespace

const char* Value::kind_name(Kind kind) {
  switch (kind) {
    case Kind::kNone:
      return "None";
    case Kind::kBool:
      return "bool";
    case Kind::kInt:
      return "int";
    case Kind::kFloat:
      return "float";
    case Kind::kString:
      return "str";
    case Kind::kTuple:
      return "tuple";
    case Kind::kList:
      return "list";
    case Kind::kDict:
      return "dict";
    case Kind::kTensor:
      return "tensor";
    case Kind::kObject:
      return "module object";
    case Kind::kGlobal:
      return "global";
    case Kind::kStorage:
      return "storage";
  }
  return "value";
}

int64_t TensorRef::numel() const {
  int64_t n = 1;
  for (const auto s : sizes) n *= s;  // bounded by the storage when parsed
  return n;
}

bool TensorRef::contiguous() const {
  int64_t expected = 1;
  for (size_t i = sizes.size(); i-- > 0;) {
    if (sizes[i] != 1 && strides[i] != expected) return false;
    expected *= sizes[i];
  }
  return true;
}

// --- Opening -------------------------------------------------------------------------------------

WeightsFile::WeightsFile(std::shared_ptr<Source> source, std::string name)
    : source_(std::move(source)), name_(std::move(name)) {}

void WeightsFile::fail(const std::string& what) const {
  throw std::runtime_error(fmt::format("{}: {}", name_, what));
}

WeightsFile WeightsFile::open(const fs::path& path) {
  const std::string name = path.string();
  // O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused just below.
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error(fmt::format("cannot open {}: {}", name, std::strerror(errno)));
  struct stat info {};
  if (::fstat(fd, &info) != 0) {
    const int error = errno;
    ::close(fd);
    throw std::runtime_error(fmt::format("cannot read {}: {}", name, std::strerror(error)));
  }
  if (!S_ISREG(info.st_mode)) {
    ::close(fd);
    const char* what = S_ISDIR(info.st_mode)                            ? "a folder"
                       : S_ISFIFO(info.st_mode)                         ? "a FIFO (named pipe)"
                       : S_ISCHR(info.st_mode) || S_ISBLK(info.st_mode) ? "a device"
                       : S_ISSOCK(info.st_mode)                         ? "a socket"
                                                                        : "not a regular file";
    throw std::runtime_error(
        fmt::format("{} is {}, not a file; give the path of a saved model file", name, what));
  }
  WeightsFile file(std::make_shared<FdSource>(fd, static_cast<uint64_t>(info.st_size), name), name);
  file.parse();
  return file;
}

WeightsFile WeightsFile::from_bytes(std::string bytes, std::string name) {
  WeightsFile file(std::make_shared<BytesSource>(std::move(bytes)), std::move(name));
  file.parse();
  return file;
}

// --- The zip archive -------------------------------------------------------------------------------

namespace {

struct ZipEnd {
  uint64_t entries = 0;
  uint64_t cd_offset = 0;
  uint64_t cd_size = 0;
  uint64_t end_start = 0;  // where the end records begin: the central directory must end there
};

}  // namespace

namespace {

// The pickle machine. It builds plain values; a global is only a name, resolved against the allow-list
// when it is called (REDUCE, NEWOBJ, BINPERSID), and nothing outside the list is ever called.
class Machine {
 public:
  using Ptr = std::shared_ptr<Value>;
  using RecordLookup = std::function<const Record*(const std::string& key, size_t* index)>;

  Machine(const std::string& bytes, RecordLookup lookup, std::function<void(const std::string&)> fail)
      : in_(bytes), lookup_(std::move(lookup)), fail_(std::move(fail)) {}

  Ptr run() {
    while (true) {
      const size_t at = pos_;
      const auto op = static_cast<unsigned char>(byte());
      switch (op) {
        case 0x80: {  // PROTO
          const auto proto = static_cast<unsigned char>(byte());
          if (proto < 2 || proto > 5)
            error(at, fmt::format("pickle protocol {} is not one torch.save writes", proto));
          break;
        }
        case 0x95:
          skip(8);
          break;  // FRAME: a length hint only
        case '(':
          if (marks_.size() >= kMaxStack) error(at, "too many marks");
          marks_.push_back(stack_.size());
          break;
        case '.': {  // STOP
          if (stack_.size() != 1 || !marks_.empty()) error(at, "the pickle ends with a malformed stack");
          return stack_.back();
        }
        case 'N':
          push(make(Value::Kind::kNone));
          break;
        case 0x88:
          push(make_bool(true));
          break;
        case 0x89:
          push(make_bool(false));
          break;
        case 'K':
          push(make_int(static_cast<unsigned char>(byte())));
          break;
        case 'M':
          push(make_int(le16(take(2))));
          break;
        case 'J':
          push(make_int(static_cast<int32_t>(le32(take(4)))));
          break;
        case 0x8a: {  // LONG1
          const auto n = static_cast<unsigned char>(byte());
          if (n > 8) error(at, "an integer wider than 64 bits");
          const auto* p = take(n);
          uint64_t v = 0;
          for (size_t i = 0; i < n; ++i) v |= static_cast<uint64_t>(p[i]) << (8 * i);
          if (n > 0 && n < 8 && (p[n - 1] & 0x80) != 0) v |= ~uint64_t{0} << (8 * n);  // sign-extend
          push(make_int(static_cast<int64_t>(v)));
          break;
        }
        case 'G': {  // BINFLOAT, big-endian
          const auto* p = take(8);
          uint64_t bits = 0;
          for (int i = 0; i < 8; ++i) bits = (bits << 8) | p[i];
          auto v = make(Value::Kind::kFloat);
          std::memcpy(&v->real, &bits, sizeof bits);
          push(v);
          break;
        }
        case 'X':
          push(make_string(le32(take(4)), at));
          break;
        case 0x8c:
          push(make_string(static_cast<unsigned char>(byte()), at));
          break;
        case 0x8d:
          push(make_string(le64(take(8)), at));
          break;
        case ')':
          push(make(Value::Kind::kTuple));
          break;
        case 't':
          push(tuple_from(pop_mark(at), at));
          break;
        case 0x85:
          push(tuple_of(1, at));
          break;
        case 0x86:
          push(tuple_of(2, at));
          break;
        case 0x87:
          push(tuple_of(3, at));
          break;
        case ']':
          push(make(Value::Kind::kList));
          break;
        case '}':
          push(make(Value::Kind::kDict));
          break;
        case 'a': {  // APPEND
          auto item = pop(at);
          append(top(at), item, at);
          break;
        }
        case 'e': {  // APPENDS
          auto items = pop_mark(at);
          auto list = top(at);
          for (auto& item : items) append(list, item, at);
          break;
        }
        case 's': {  // SETITEM
          auto value = pop(at);
          auto key = pop(at);
          set_item(top(at), key, value, at);
          break;
        }
        case 'u': {  // SETITEMS
          auto items = pop_mark(at);
          if (items.size() % 2 != 0) error(at, "SETITEMS with an odd number of values");
          auto dict = top(at);
          for (size_t i = 0; i < items.size(); i += 2) set_item(dict, items[i], items[i + 1], at);
          break;
        }
        case 'q':
          memo_put(static_cast<unsigned char>(byte()), at);
          break;
        case 'r':
          memo_put(le32(take(4)), at);
          break;
        case 0x94:
          memo_put(static_cast<uint32_t>(memo_.size()), at);
          break;  // MEMOIZE
        case 'h':
          memo_get(static_cast<unsigned char>(byte()), at);
          break;
        case 'j':
          memo_get(le32(take(4)), at);
          break;
        case 'c': {  // GLOBAL module\nname\n
          const auto module = line(at);
          const auto name = line(at);
          push(global(module, name, at));
          break;
        }
        case 0x93: {  // STACK_GLOBAL
          auto name = pop(at);
          auto module = pop(at);
          if (module->kind != Value::Kind::kString || name->kind != Value::Kind::kString)
            error(at, "STACK_GLOBAL without two strings");
          push(global(module->text, name->text, at));
          break;
        }
        case 'R': {  // REDUCE
          auto args = pop(at);
          auto callable = pop(at);
          push(call(callable, args, at));
          break;
        }
        case 0x81: {  // NEWOBJ
          auto args = pop(at);
          auto cls = pop(at);
          push(call(cls, args, at));
          break;
        }
        case 'b': {  // BUILD
          auto state = pop(at);
          build(top(at), state, at);
          break;
        }
        case 'Q':
          push(storage(pop(at), at));
          break;  // BINPERSID
        default:
          error(at, fmt::format("pickle opcode 0x{:02x} ('{}') is not one a state dict needs; refused", op,
                                op >= 0x20 && op < 0x7f ? static_cast<char>(op) : '?'));
      }
    }
  }

 private:
  [[noreturn]] void error(size_t at, const std::string& what) const {
    fail_(fmt::format("not a weights file: {} (data.pkl, byte {})", what, at));
    throw std::logic_error("unreachable");
  }

  char byte() {
    if (pos_ >= in_.size()) error(pos_, "the pickle ends without STOP");
    return in_[pos_++];
  }
  const unsigned char* take(uint64_t n) {
    if (n > in_.size() - pos_) error(pos_, "a length runs past the end of the pickle");
    const auto* p = reinterpret_cast<const unsigned char*>(in_.data() + pos_);
    pos_ += static_cast<size_t>(n);
    return p;
  }
  void skip(uint64_t n) { take(n); }
  std::string line(size_t at) {
    const auto end = in_.find('\n', pos_);
    if (end == std::string::npos || end - pos_ > 256) error(at, "a GLOBAL name that does not end");
    std::string s = in_.substr(pos_, end - pos_);
    pos_ = end + 1;
    return s;
  }

  Ptr make(Value::Kind kind) {
    auto v = std::make_shared<Value>();
    v->kind = kind;
    return v;
  }
  Ptr make_bool(bool b) {
    auto v = make(Value::Kind::kBool);
    v->boolean = b;
    return v;
  }
  Ptr make_int(int64_t i) {
    auto v = make(Value::Kind::kInt);
    v->integer = i;
    return v;
  }
  Ptr make_string(uint64_t length, size_t at) {
    const auto* p = take(length);  // checked against what is left before anything is allocated
    (void)at;
    auto v = make(Value::Kind::kString);
    v->text.assign(reinterpret_cast<const char*>(p), static_cast<size_t>(length));
    return v;
  }

  void push(Ptr v) {
    if (stack_.size() >= kMaxStack) error(pos_, "the pickle's stack grows past its limit");
    stack_.push_back(std::move(v));
  }
  Ptr pop(size_t at) {
    if (stack_.empty() || (!marks_.empty() && stack_.size() <= marks_.back()))
      error(at, "the pickle's stack underflows");
    auto v = std::move(stack_.back());
    stack_.pop_back();
    return v;
  }
  Ptr top(size_t at) {
    if (stack_.empty() || (!marks_.empty() && stack_.size() <= marks_.back()))
      error(at, "the pickle's stack underflows");
    return stack_.back();
  }
  std::vector<Ptr> pop_mark(size_t at) {
    if (marks_.empty()) error(at, "no MARK to close");
    const size_t start = marks_.back();
    marks_.pop_back();
    std::vector<Ptr> items(std::make_move_iterator(stack_.begin() + static_cast<std::ptrdiff_t>(start)),
                           std::make_move_iterator(stack_.end()));
    stack_.resize(start);
    return items;
  }

  static bool is_container(const Value& v) {
    return v.kind == Value::Kind::kTuple || v.kind == Value::Kind::kList || v.kind == Value::Kind::kDict ||
           v.kind == Value::Kind::kObject;
  }
  // Puts child inside parent. A container, once inside another, can no longer change: no cycle can be
  // built, and every depth is final when it is checked.
  void adopt(Value& parent, Value& child, size_t at) {
    if (&parent == &child) error(at, "a container put inside itself (a cycle), which a state dict never has");
    if (is_container(child)) child.sealed = true;
    parent.depth = std::max(parent.depth, child.depth + 1);
    if (parent.depth > kMaxDepth) error(at, fmt::format("values nested deeper than {}", kMaxDepth));
    if (++elements_ > kMaxStack) error(at, "more values than a state dict holds");
  }
  void mutate(const Value& target, size_t at) {
    if (target.sealed)
      error(at, "the pickle changes a container after using it (a cycle), which a state dict never does");
  }

  Ptr tuple_from(std::vector<Ptr> items, size_t at) {
    auto t = make(Value::Kind::kTuple);
    for (auto& item : items) adopt(*t, *item, at);
    t->items = std::move(items);
    return t;
  }
  Ptr tuple_of(size_t n, size_t at) {
    std::vector<Ptr> items(n);
    for (size_t i = n; i-- > 0;) items[i] = pop(at);
    return tuple_from(std::move(items), at);
  }
  void append(const Ptr& list, const Ptr& item, size_t at) {
    if (list->kind != Value::Kind::kList)
      error(at, fmt::format("APPEND to a {}", Value::kind_name(list->kind)));
    mutate(*list, at);
    adopt(*list, *item, at);
    list->items.push_back(item);
  }
  void set_item(const Ptr& dict, const Ptr& key, const Ptr& value, size_t at) {
    if (dict->kind != Value::Kind::kDict)
      error(at, fmt::format("SETITEM on a {}", Value::kind_name(dict->kind)));
    if (key->kind != Value::Kind::kString && key->kind != Value::Kind::kInt)
      error(at, fmt::format("a dict key that is a {}", Value::kind_name(key->kind)));
    mutate(*dict, at);
    adopt(*dict, *value, at);
    for (auto& entry : dict->entries) {
      if (entry.first->kind == key->kind && entry.first->text == key->text &&
          entry.first->integer == key->integer) {
        entry.second = value;  // as Python's dict does
        return;
      }
    }
    dict->entries.emplace_back(key, value);
  }

  void memo_put(uint32_t index, size_t at) {
    if (stack_.empty()) error(at, "PUT with an empty stack");
    if (memo_.size() >= kMaxMemo && memo_.count(index) == 0)
      error(at, "the pickle's memo grows past its limit");
    memo_[index] = stack_.back();
  }
  void memo_get(uint32_t index, size_t at) {
    const auto found = memo_.find(index);
    if (found == memo_.end()) error(at, fmt::format("GET of memo entry {}, which was never put", index));
    push(found->second);
  }

  Ptr global(const std::string& module, const std::string& name, size_t at) {
    const std::string full = module + "." + name;
    const bool allowed = full == "collections.OrderedDict" || full == "torch._utils._rebuild_tensor_v2" ||
                         full == "torch._utils._rebuild_parameter" ||
                         full == "torch.jit._pickle.restore_type_tag" ||
                         (module == "torch" && storage_dtype(name).has_value()) ||
                         ((module == "__torch__" || module.rfind("__torch__.", 0) == 0) && name == "Module");
    if (!allowed) {
      error(at, fmt::format(
                    "the pickle names {}, which a weights file never needs (only tensors, dicts, lists and "
                    "numbers are read, and nothing from the file is run)",
                    full));
    }
    auto g = make(Value::Kind::kGlobal);
    g->text = full;
    return g;
  }
  static std::optional<c10::ScalarType> storage_dtype(const std::string& name) {
    for (const auto& type : kStorageTypes)
      if (name == type.name) return type.dtype;
    return std::nullopt;
  }

  const Value& arg(const Ptr& args, size_t i, Value::Kind kind, const char* what, size_t at) {
    if (i >= args->items.size() || args->items[i]->kind != kind)
      error(at, fmt::format("{}: argument {} is not a {}", what, i, Value::kind_name(kind)));
    return *args->items[i];
  }

  std::vector<int64_t> int_tuple(const Value& t, const char* what, size_t at) {
    if (t.kind != Value::Kind::kTuple && t.kind != Value::Kind::kList)
      error(at, fmt::format("{} is not a tuple", what));
    if (t.items.size() > kMaxDims) error(at, fmt::format("a tensor with more than {} dimensions", kMaxDims));
    std::vector<int64_t> out;
    for (const auto& item : t.items) {
      if (item->kind != Value::Kind::kInt || item->integer < 0)
        error(at, fmt::format("{} holds something other than a non-negative int", what));
      out.push_back(item->integer);
    }
    return out;
  }

  Ptr call(const Ptr& callable, const Ptr& args, size_t at) {
    if (callable->kind != Value::Kind::kGlobal)
      error(at, fmt::format("a call of a {}", Value::kind_name(callable->kind)));
    if (args->kind != Value::Kind::kTuple) error(at, "call arguments that are not a tuple");
    const auto& name = callable->text;
    if (name == "collections.OrderedDict") {
      if (!args->items.empty()) error(at, "OrderedDict called with arguments");
      auto d = make(Value::Kind::kDict);
      d->ordered = true;
      return d;
    }
    if (name == "torch.jit._pickle.restore_type_tag") {
      if (args->items.size() != 2) error(at, "restore_type_tag with other than two arguments");
      return args->items[0];
    }
    if (name == "torch._utils._rebuild_parameter") {
      if (args->items.size() != 3 || args->items[0]->kind != Value::Kind::kTensor)
        error(at, "_rebuild_parameter without a tensor");
      auto t = std::make_shared<Value>(*args->items[0]);
      t->tensor.requires_grad = arg(args, 1, Value::Kind::kBool, "_rebuild_parameter", at).boolean;
      return t;
    }
    if (name == "torch._utils._rebuild_tensor_v2") return rebuild_tensor(args, at);
    if (name.rfind("__torch__", 0) == 0) {
      if (!args->items.empty()) error(at, fmt::format("{} created with arguments", name));
      auto object = make(Value::Kind::kObject);
      object->text = name;
      return object;
    }
    error(at, fmt::format("a call of {}, which is not a function a weights file needs", name));
  }

  Ptr rebuild_tensor(const Ptr& args, size_t at) {
    // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
    const char* what = "_rebuild_tensor_v2";
    if (args->items.size() != 6 && args->items.size() != 7)
      error(at, "_rebuild_tensor_v2 with a wrong number of arguments");
    const auto& storage = arg(args, 0, Value::Kind::kStorage, what, at);
    const int64_t offset = arg(args, 1, Value::Kind::kInt, what, at).integer;
    auto sizes = int_tuple(*args->items[2], "a tensor's size", at);
    auto strides = int_tuple(*args->items[3], "a tensor's stride", at);
    const bool requires_grad = arg(args, 4, Value::Kind::kBool, what, at).boolean;
    const auto& hooks = *args->items[5];
    if (hooks.kind != Value::Kind::kDict || !hooks.entries.empty())
      error(at, "a tensor with backward hooks (code), which a state dict never has");
    if (sizes.size() != strides.size()) error(at, "a tensor whose size and stride differ in length");
    if (offset < 0) error(at, "a negative storage offset");
    // The last element the tensor reaches must lie inside its storage; every product and sum is checked
    // for overflow.
    bool empty = false;
    for (const auto s : sizes) empty = empty || s == 0;
    if (!empty) {
      int64_t last = offset;
      for (size_t i = 0; i < sizes.size(); ++i) {
        int64_t span = 0;
        if (__builtin_mul_overflow(sizes[i] - 1, strides[i], &span) ||
            __builtin_add_overflow(last, span, &last))
          error(at, "a tensor whose size and stride overflow");
      }
      if (last >= storage.tensor.storage_numel)
        error(at, fmt::format("a tensor reaching element {} of a storage of {} elements", last,
                              storage.tensor.storage_numel));
    }
    auto t = make(Value::Kind::kTensor);
    t->tensor = storage.tensor;
    t->tensor.storage_offset = offset;
    t->tensor.sizes = std::move(sizes);
    t->tensor.strides = std::move(strides);
    t->tensor.requires_grad = requires_grad;
    return t;
  }

  // BINPERSID: ('storage', torch.<Type>Storage, key, location, numel), a record of the archive.
  Ptr storage(const Ptr& pid, size_t at) {
    if (pid->kind != Value::Kind::kTuple || pid->items.size() != 5 ||
        pid->items[0]->kind != Value::Kind::kString || pid->items[0]->text != "storage" ||
        pid->items[1]->kind != Value::Kind::kGlobal || pid->items[2]->kind != Value::Kind::kString ||
        pid->items[3]->kind != Value::Kind::kString || pid->items[4]->kind != Value::Kind::kInt) {
      error(at, "a persistent id that is not a tensor storage");
    }
    const auto& type = pid->items[1]->text;
    const auto dtype = type.rfind("torch.", 0) == 0 ? storage_dtype(type.substr(6)) : std::nullopt;
    if (!dtype) error(at, fmt::format("a storage of type {}", type));
    const int64_t numel = pid->items[4]->integer;
    if (numel < 0) error(at, "a storage with a negative size");
    size_t index = 0;
    const Record* record = lookup_("data/" + pid->items[2]->text, &index);
    if (record == nullptr)
      error(at, fmt::format("a storage whose record data/{} is not in the archive", pid->items[2]->text));
    if (record->deflated) error(at, "a compressed storage");
    const auto element = static_cast<uint64_t>(c10::elementSize(*dtype));
    uint64_t bytes = 0;
    if (__builtin_mul_overflow(static_cast<uint64_t>(numel), element, &bytes) || bytes != record->size) {
      error(at, fmt::format("storage data/{} declares {} elements of {} bytes but its record holds {} bytes",
                            pid->items[2]->text, numel, element, record->size));
    }
    auto s = make(Value::Kind::kStorage);
    s->tensor.dtype = *dtype;
    s->tensor.record = index;
    s->tensor.storage_numel = numel;
    return s;
  }

  void build(const Ptr& target, const Ptr& state, size_t at) {
    mutate(*target, at);
    if (target->kind == Value::Kind::kObject) {
      // LibTorch's module objects: the state is a dict of attribute name -> value, set once.
      if (state->kind != Value::Kind::kDict || !target->entries.empty())
        error(at, "a module object built twice or from a non-dict");
      for (auto& [key, value] : state->entries) {
        if (key->kind != Value::Kind::kString) error(at, "a module attribute whose name is not a string");
        adopt(*target, *value, at);
      }
      target->entries = state->entries;
      return;
    }
    if (target->kind == Value::Kind::kDict && target->ordered && state->kind == Value::Kind::kDict) {
      // model.state_dict()'s OrderedDict carries _metadata (module versions) as an attribute: read, unused.
      adopt(*target, *state, at);
      return;
    }
    error(at, fmt::format("BUILD of a {}, which a state dict never needs", Value::kind_name(target->kind)));
  }

  const std::string& in_;
  RecordLookup lookup_;
  std::function<void(const std::string&)> fail_;
  size_t pos_ = 0;
  size_t elements_ = 0;
  std::vector<Ptr> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint32_t, Ptr> memo_;
};

}  // namespace

void WeightsFile::parse() {
  const uint64_t size = source_->size();
  if (size == 0) fail("the file is empty");
  unsigned char head[4] = {};
  if (size < 22) fail("not a model file: too short to be the zip archive that PyTorch and LibTorch write");
  source_->read(0, head, 4);
  if (le32(head) != 0x04034b50) {
    fail(
        "not a model file: PyTorch and LibTorch files are zip archives, and this one does not start like "
        "one");
  }

  // The end of central directory record, in the last 64 KiB + 22 bytes, and its zip64 form when present.
  const uint64_t tail_size = std::min<uint64_t>(size, 65557);
  std::vector<unsigned char> tail(tail_size);
  source_->read(size - tail_size, tail.data(), tail.size());
  ZipEnd end;
  bool found = false;
  for (size_t i = tail.size() - 22 + 1; i-- > 0;) {
    if (le32(&tail[i]) == 0x06054b50 && i + 22 + le16(&tail[i + 20]) == tail.size()) {
      const unsigned char* e = &tail[i];
      if (le16(e + 4) != 0 || le16(e + 6) != 0) fail("not a valid model file: a multi-part zip archive");
      end.entries = le16(e + 10);
      end.cd_size = le32(e + 12);
      end.cd_offset = le32(e + 16);
      end.end_start = size - tail_size + i;
      found = true;
      if (i >= 20 && le32(&tail[i - 20]) == 0x07064b50) {
        const uint64_t z64 = le64(&tail[i - 20 + 8]);
        unsigned char rec[56];
        if (z64 > end.end_start || end.end_start - z64 < 56 + 20)
          fail("not a valid model file: a damaged zip64 record");
        source_->read(z64, rec, sizeof rec);
        if (le32(rec) != 0x06064b50) fail("not a valid model file: a damaged zip64 record");
        end.entries = le64(rec + 32);
        end.cd_size = le64(rec + 40);
        end.cd_offset = le64(rec + 48);
        end.end_start = z64;
      }
      break;
    }
  }
  if (!found) fail("not a valid model file: the zip archive is damaged or truncated (no end record)");
  if (end.entries == 0 || end.entries > kMaxEntries)
    fail(fmt::format("not a valid model file: {} archive entries", end.entries));
  if (end.cd_offset > end.end_start || end.cd_size != end.end_start - end.cd_offset ||
      end.cd_size < 46 * end.entries)
    fail("not a valid model file: the zip archive's directory is damaged");

  std::vector<unsigned char> cd(static_cast<size_t>(end.cd_size));
  source_->read(end.cd_offset, cd.data(), cd.size());
  std::string prefix;
  std::set<std::string> names;
  size_t p = 0;
  for (uint64_t n = 0; n < end.entries; ++n) {
    if (cd.size() - p < 46 || le32(&cd[p]) != 0x02014b50)
      fail("not a valid model file: the zip archive's directory is damaged");
    const unsigned char* h = &cd[p];
    const uint16_t flags = le16(h + 8), method = le16(h + 10);
    const uint32_t crc = le32(h + 16);
    uint64_t csize = le32(h + 20), usize = le32(h + 24), offset = le32(h + 42);
    const size_t nlen = le16(h + 28), elen = le16(h + 30), clen = le16(h + 32);
    if (cd.size() - p - 46 < nlen + elen + clen)
      fail("not a valid model file: the zip archive's directory is damaged");
    std::string entry(reinterpret_cast<const char*>(h + 46), nlen);
    // zip64: the sizes and offset that do not fit in 32 bits follow in extra field 0x0001, in this order.
    for (size_t e = 0; e + 4 <= elen;) {
      const unsigned char* x = h + 46 + nlen + e;
      const size_t xlen = le16(x + 2);
      if (e + 4 + xlen > elen) break;
      if (le16(x) == 0x0001) {
        size_t q = 4;
        for (uint64_t* field : {&usize, &csize, &offset}) {
          if (*field != 0xFFFFFFFFu) continue;
          if (q + 8 > 4 + xlen)
            fail(fmt::format("not a valid model file: entry {} has a damaged zip64 field", entry));
          *field = le64(x + q);
          q += 8;
        }
      }
      e += 4 + xlen;
    }
    p += 46 + nlen + elen + clen;

    if ((flags & 1) != 0) fail(fmt::format("not a model file: entry {} is encrypted", entry));
    const auto slash_at = entry.find('/');
    const bool code = slash_at != std::string::npos && entry.compare(slash_at + 1, 5, "code/") == 0;
    const bool deflated = method == 8 && code;
    if (!deflated && (method != 0 || csize != usize)) {
      fail(fmt::format(
          "not a model file: entry {} is compressed (method {}); PyTorch and LibTorch never compress "
          "what they save, so this file was made by something else",
          entry, method));
    }
    const auto slash = entry.find('/');
    if (slash == std::string::npos || slash == 0)
      fail(fmt::format("not a model file: entry {} is outside the archive's folder", entry));
    if (prefix.empty()) prefix = entry.substr(0, slash + 1);
    if (entry.compare(0, prefix.size(), prefix) != 0)
      fail(fmt::format("not a model file: entry {} is outside folder {}", entry, prefix));
    if (!names.insert(entry).second)
      fail(fmt::format("not a valid model file: entry {} appears twice", entry));

    // The local header gives where the data starts; both headers must name the same entry.
    unsigned char local[30];
    if (offset > end.cd_offset || end.cd_offset - offset < 30)
      fail(fmt::format("not a valid model file: entry {} lies outside the archive", entry));
    source_->read(offset, local, sizeof local);
    const size_t lnlen = le16(local + 26), lelen = le16(local + 28);
    if (le32(local) != 0x04034b50 || lnlen != nlen)
      fail(fmt::format("not a valid model file: entry {} has a damaged header", entry));
    const uint64_t data = offset + 30 + lnlen + lelen;
    if (data > end.cd_offset || csize > end.cd_offset - data)
      fail(fmt::format("not a valid model file: entry {} runs past the end of its data", entry));
    std::string local_name(lnlen, '\0');
    source_->read(offset + 30, local_name.data(), lnlen);
    if (local_name != entry)
      fail(fmt::format("not a valid model file: entry {} has a damaged header", entry));
    records_.push_back({entry.substr(prefix.size()), data, usize, crc, deflated, csize});
  }

  const auto read_record = [&](const Record& r) {
    std::string bytes(static_cast<size_t>(r.size), '\0');
    if (r.deflated) {
      // Inflated into exactly the size the directory declares (bounded by kMaxCodeBytes by the caller):
      // a stream that would inflate to more is an error, not a bigger buffer.
      std::string packed(static_cast<size_t>(r.stored_size), '\0');
      source_->read(r.offset, packed.data(), packed.size());
      if (!inflate_exactly(packed, bytes))
        fail(fmt::format("not a valid model file: entry {} does not inflate to its declared size", r.name));
    } else {
      source_->read(r.offset, bytes.data(), bytes.size());
    }
    if (crc32(0, bytes.data(), bytes.size()) != r.crc)
      fail(fmt::format("not a valid model file: entry {} is damaged (CRC error)", r.name));
    return bytes;
  };

  // A TorchScript archive (torch::save) may carry code. A module that only holds tensors has classes with
  // attribute declarations and no methods; a method (def __setstate__, def forward, ...) is something a
  // loader would have to run, so such a file is refused rather than read without it.
  const bool torchscript = std::any_of(records_.begin(), records_.end(),
                                       [](const Record& r) { return r.name == "constants.pkl"; });
  format_ = torchscript ? "torch::save (TorchScript archive)" : "torch.save";
  uint64_t code_bytes = 0;
  for (const auto& r : records_) {
    if (r.name.rfind("code/", 0) != 0 || !ends_with(r.name, ".py")) continue;
    if (r.size > kMaxCodeBytes || (code_bytes += r.size) > kMaxCodeBytes)
      fail("not a weights file: its TorchScript code is larger than any module of weights");
    const auto code = read_record(r);
    std::vector<std::string> methods;
    size_t line_start = 0;
    while (line_start < code.size()) {
      size_t line_end = code.find('\n', line_start);
      if (line_end == std::string::npos) line_end = code.size();
      const auto first = code.find_first_not_of(" \t", line_start);
      if (first != std::string::npos && first < line_end && code.compare(first, 4, "def ") == 0) {
        const auto name_end = code.find_first_of("( :", first + 4);
        methods.push_back(code.substr(first + 4, std::min(name_end, line_end) - first - 4));
      }
      line_start = line_end + 1;
    }
    if (!methods.empty()) {
      // __setstate__ is the one a loader runs; name it first when it is there.
      const bool setstate = std::find(methods.begin(), methods.end(), "__setstate__") != methods.end();
      fail(fmt::format(
          "not a weights file: {} defines {} ({}), code that a loader would have to run; this reader "
          "loads only data, so the file is refused",
          r.name, setstate ? "__setstate__" : methods.front(), fmt::join(methods, ", ")));
    }
  }

  const auto pkl =
      std::find_if(records_.begin(), records_.end(), [](const Record& r) { return r.name == "data.pkl"; });
  if (pkl == records_.end()) fail("not a model file: the archive has no data.pkl");
  if (pkl->size > kMaxPickleBytes)
    fail(fmt::format("not a weights file: its data.pkl is {} bytes, more than any state dict's", pkl->size));
  const std::string pickle = read_record(*pkl);
  std::unordered_map<std::string, size_t> by_name;
  for (size_t i = 0; i < records_.size(); ++i) by_name.emplace(records_[i].name, i);
  Machine machine(
      pickle,
      [&](const std::string& key, size_t* index) -> const Record* {
        const auto found = by_name.find(key);
        if (found == by_name.end()) return nullptr;
        *index = found->second;
        return &records_[found->second];
      },
      [this](const std::string& what) { fail(what); });
  root_ = machine.run();
}

// --- Reading tensors -------------------------------------------------------------------------------

void WeightsFile::verify(const std::vector<const TensorRef*>& refs) const {
  std::set<size_t> done;
  std::vector<char> slice(1 << 20);
  for (const auto* ref : refs) {
    if (!done.insert(ref->record).second) continue;
    const auto& r = records_.at(ref->record);
    uint32_t crc = 0;
    for (uint64_t at = 0; at < r.size; at += slice.size()) {
      const auto n = static_cast<size_t>(std::min<uint64_t>(slice.size(), r.size - at));
      source_->read(r.offset + at, slice.data(), n);
      crc = crc32(crc, slice.data(), n);
    }
    if (crc != r.crc) fail(fmt::format("not a valid model file: entry {} is damaged (CRC error)", r.name));
  }
}

void WeightsFile::read_into(const TensorRef& ref, torch::Tensor& target) const {
  const auto& r = records_.at(ref.record);
  const auto element = static_cast<uint64_t>(c10::elementSize(ref.dtype));
  if (target.device().is_cpu() && target.is_contiguous() && target.scalar_type() == ref.dtype &&
      ref.contiguous() && target.numel() == ref.numel()) {
    source_->read(r.offset + static_cast<uint64_t>(ref.storage_offset) * element, target.data_ptr(),
                  static_cast<size_t>(ref.numel()) * element);
    return;
  }
  auto storage = torch::empty({ref.storage_numel}, torch::TensorOptions().dtype(ref.dtype));
  source_->read(r.offset, storage.data_ptr(), static_cast<size_t>(r.size));
  target.copy_(storage.as_strided(ref.sizes, ref.strides, ref.storage_offset));
}

torch::Tensor WeightsFile::tensor(const TensorRef& ref) const {
  auto out = torch::empty(ref.sizes, torch::TensorOptions().dtype(ref.dtype));
  const auto& r = records_.at(ref.record);
  if (ref.contiguous() && ref.storage_offset == 0 && ref.numel() == ref.storage_numel) {
    // The whole record, read once into the tensor and checked there.
    source_->read(r.offset, out.data_ptr(), static_cast<size_t>(r.size));
    if (crc32(0, out.data_ptr(), static_cast<size_t>(r.size)) != r.crc)
      fail(fmt::format("not a valid model file: entry {} is damaged (CRC error)", r.name));
  } else {
    verify({&ref});
    read_into(ref, out);
  }
  if (ref.requires_grad) out.requires_grad_(true);
  return out;
}

std::vector<std::pair<std::string, const TensorRef*>> tensor_entries(const WeightsFile& file,
                                                                     const Value& value) {
  std::vector<std::pair<std::string, const TensorRef*>> out;
  std::function<void(const Value&, const std::string&)> walk = [&](const Value& v,
                                                                   const std::string& prefix) {
    for (const auto& [key, item] : v.entries) {
      const std::string name =
          prefix + (key->kind == Value::Kind::kString ? key->text : std::to_string(key->integer));
      if (item->kind == Value::Kind::kTensor) {
        out.emplace_back(name, &item->tensor);
      } else if (item->kind == Value::Kind::kObject ||
                 (v.kind == Value::Kind::kDict && item->kind == Value::Kind::kDict)) {
        walk(*item, name + ".");
      } else if (v.kind == Value::Kind::kDict) {
        throw std::runtime_error(fmt::format("{}: entry '{}' is a {}, not a tensor", file.name(), name,
                                             Value::kind_name(item->kind)));
      }
      // A module object's other attributes (training: bool) are not state.
    }
  };
  if (value.kind != Value::Kind::kDict && value.kind != Value::Kind::kObject) {
    throw std::runtime_error(fmt::format("{}: holds a {}, not a dict of name -> tensor (a state dict)",
                                         file.name(), Value::kind_name(value.kind)));
  }
  walk(value, "");
  return out;
}

// --- Writing Python's format -------------------------------------------------------------------------

namespace {

// A protocol-2 pickler that memoizes as Python's does (every string, tuple, list, dict and call result is
// PUT once; a global, a storage key and the shared 'storage' and location strings are fetched with GET
// when they recur), so that the bytes match what torch.save writes for the same values.
class Pickler {
 public:
  explicit Pickler(bool ordered_dicts) : ordered_(ordered_dicts) { out_ = std::string("\x80\x02", 2); }

  std::string finish(const c10::IValue& value, std::vector<torch::Tensor>& storages) {
    save(value, storages);
    out_.push_back('.');
    return std::move(out_);
  }

 private:
  // A memo opcode: its one-byte form below 256, its four-byte form above.
  void memo_op(char short_form, char long_form, uint32_t id) {
    out_.push_back(id < 256 ? short_form : long_form);
    if (id < 256) {
      out_.push_back(static_cast<char>(id));
    } else {
      append32(id);
    }
  }
  void put() { memo_op('q', 'r', next_++); }        // BINPUT / LONG_BINPUT
  void get(uint32_t id) { memo_op('h', 'j', id); }  // BINGET / LONG_BINGET
  void append32(uint32_t v) {
    for (int i = 0; i < 4; ++i) out_.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
  }
  void global(const std::string& module, const std::string& name) {
    const auto key = module + "\n" + name + "\n";
    if (const auto found = memo_.find("g:" + key); found != memo_.end()) return get(found->second);
    out_ += "c" + key;
    memo_["g:" + key] = next_;
    put();
  }
  void string(const std::string& s) {
    out_.push_back('X');
    append32(static_cast<uint32_t>(s.size()));
    out_ += s;
    put();
  }
  // A string that Python passes as one object each time (a constant, a storage's key).
  void shared_string(const std::string& tag, const std::string& s) {
    if (const auto found = memo_.find(tag + s); found != memo_.end()) return get(found->second);
    memo_[tag + s] = next_;
    string(s);
  }
  void integer(int64_t v) {
    if (v >= 0 && v <= 0xFF) {
      out_.push_back('K');
      out_.push_back(static_cast<char>(v));
    } else if (v >= 0 && v <= 0xFFFF) {
      out_.push_back('M');
      out_.push_back(static_cast<char>(v & 0xFF));
      out_.push_back(static_cast<char>((v >> 8) & 0xFF));
    } else if (v >= std::numeric_limits<int32_t>::min() && v <= std::numeric_limits<int32_t>::max()) {
      out_.push_back('J');
      append32(static_cast<uint32_t>(static_cast<int32_t>(v)));
    } else {
      // LONG1: the shortest little-endian two's complement, as Python's encode_long.
      std::string bytes;
      auto u = static_cast<uint64_t>(v);
      for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<char>((u >> (8 * i)) & 0xFF));
      while (bytes.size() > 1) {
        const auto last = static_cast<unsigned char>(bytes.back());
        const auto prev = static_cast<unsigned char>(bytes[bytes.size() - 2]);
        if ((last == 0 && (prev & 0x80) == 0) || (last == 0xFF && (prev & 0x80) != 0)) {
          bytes.pop_back();
        } else {
          break;
        }
      }
      out_.push_back('\x8a');
      out_.push_back(static_cast<char>(bytes.size()));
      out_ += bytes;
    }
  }
  void ints(c10::IntArrayRef values) {
    if (values.empty()) {
      out_.push_back(')');
      return;
    }
    if (values.size() > 3) out_.push_back('(');
    for (const auto v : values) integer(v);
    out_.push_back(values.size() > 3 ? 't' : static_cast<char>(0x84 + values.size()));
    put();
  }
  void empty_ordered_dict() {
    global("collections", "OrderedDict");
    out_.push_back(')');
    out_.push_back('R');
    put();
  }

  void tensor(const torch::Tensor& original, std::vector<torch::Tensor>& storages) {
    const auto t = original.detach().cpu();
    const char* type = storage_name(t.scalar_type());
    if (type == nullptr)
      throw std::runtime_error(
          fmt::format("cannot save a tensor of dtype {}", c10::toString(t.scalar_type())));
    const auto elsize = static_cast<int64_t>(t.element_size());
    const void* data = t.storage().data();
    // One storage per distinct memory, as Python keys storages (tied parameters share theirs).
    std::string key;
    if (const auto found = storage_keys_.find(data); found != storage_keys_.end()) {
      key = found->second;
    } else {
      key = std::to_string(storage_keys_.size());
      storage_keys_.emplace(data, key);
      storages.push_back(torch::empty({0}, t.options()).set_(t.storage()));
    }
    global("torch._utils", "_rebuild_tensor_v2");
    out_.push_back('(');
    out_.push_back('(');
    shared_string("s:", "storage");
    global("torch", type);
    shared_string("k:", key);
    shared_string("s:", "cpu");
    integer(static_cast<int64_t>(t.storage().nbytes()) / elsize);
    out_.push_back('t');
    put();
    out_.push_back('Q');
    integer(t.storage_offset());
    ints(t.sizes());
    ints(t.strides());
    out_.push_back('\x89');  // requires_grad: a state dict's tensors are detached
    empty_ordered_dict();
    out_.push_back('t');
    put();
    out_.push_back('R');
    put();
  }

  template <typename Items, typename Save>
  void batched(const Items& items, size_t n, char one, char many, Save save_item) {
    // Python's _batch_appends / _batch_setitems: batches of 1000, a single item without MARK.
    size_t i = 0;
    auto it = items.begin();
    while (i < n) {
      const size_t count = std::min<size_t>(1000, n - i);
      if (count > 1) out_.push_back('(');
      for (size_t k = 0; k < count; ++k, ++it) save_item(*it);
      out_.push_back(count > 1 ? many : one);
      i += count;
    }
  }

  void save(const c10::IValue& v, std::vector<torch::Tensor>& storages) {
    if (v.isNone()) {
      out_.push_back('N');
    } else if (v.isBool()) {
      out_.push_back(v.toBool() ? '\x88' : '\x89');
    } else if (v.isInt()) {
      integer(v.toInt());
    } else if (v.isDouble()) {
      double d = v.toDouble();
      uint64_t bits = 0;
      std::memcpy(&bits, &d, sizeof bits);
      out_.push_back('G');
      for (int i = 7; i >= 0; --i) out_.push_back(static_cast<char>((bits >> (8 * i)) & 0xFF));
    } else if (v.isString()) {
      string(v.toStringRef());
    } else if (v.isTensor()) {
      tensor(v.toTensor(), storages);
    } else if (v.isTuple()) {
      const auto& elements = v.toTupleRef().elements();
      if (elements.empty()) {
        out_.push_back(')');
        return;
      }
      if (elements.size() > 3) out_.push_back('(');
      for (const auto& e : elements) save(e, storages);
      out_.push_back(elements.size() > 3 ? 't' : static_cast<char>(0x84 + elements.size()));
      put();
    } else if (v.isList()) {
      const auto list = v.toListRef();
      out_.push_back(']');
      put();
      batched(list, list.size(), 'a', 'e', [&](const c10::IValue& item) { save(item, storages); });
    } else if (v.isGenericDict()) {
      const auto dict = v.toGenericDict();
      if (ordered_) {
        global("collections", "OrderedDict");
        out_.push_back(')');
        out_.push_back('R');
      } else {
        out_.push_back('}');
      }
      put();
      batched(dict, dict.size(), 's', 'u', [&](const auto& entry) {
        save(entry.key(), storages);
        save(entry.value(), storages);
      });
    } else {
      throw std::runtime_error(fmt::format("cannot save a {} for Python", v.tagKind()));
    }
  }

  bool ordered_;
  std::string out_;
  uint32_t next_ = 0;
  std::map<std::string, uint32_t> memo_;
  std::map<const void*, std::string> storage_keys_;
};

class ZipWriter {
 public:
  using Sink = std::function<void(const void* data, size_t size)>;
  ZipWriter(Sink sink, std::string prefix) : sink_(std::move(sink)), prefix_(std::move(prefix)) {}

  void add(const std::string& name, const void* data, size_t size) {
    const std::string full = prefix_ + "/" + name;
    const uint32_t crc = weights::crc32(0, data, size);
    // Data starts on a 64-byte boundary, as PyTorch aligns it, padded with an extra field ("FB").
    const uint64_t header_end = offset_ + 30 + full.size() + 4;
    const uint64_t pad = (64 - header_end % 64) % 64;
    if (offset_ + 30 + full.size() + 4 + pad + size > 0xFFFFFFFFull)
      throw std::runtime_error("this writer stores files up to 4 GiB; the model is larger");
    std::string h;
    put32(h, 0x04034b50);
    put16(h, 20);    // version needed: 2.0
    put16(h, 0);     // flags
    put16(h, 0);     // stored
    put16(h, 0);     // time
    put16(h, 0x21);  // date: 1980-01-01
    put32(h, crc);
    put32(h, static_cast<uint32_t>(size));
    put32(h, static_cast<uint32_t>(size));
    put16(h, static_cast<uint16_t>(full.size()));
    put16(h, static_cast<uint16_t>(4 + pad));
    h += full;
    put16(h, 0x4246);
    put16(h, static_cast<uint16_t>(pad));
    h.append(pad, 'Z');
    entries_.push_back({full, crc, size, offset_});
    write(h.data(), h.size());
    write(data, size);
  }

  void finish() {
    const uint64_t cd_start = offset_;
    std::string cd;
    for (const auto& e : entries_) {
      put32(cd, 0x02014b50);
      put16(cd, 0x031e);  // made by: Unix, 3.0
      put16(cd, 20);
      put16(cd, 0);
      put16(cd, 0);
      put16(cd, 0);
      put16(cd, 0x21);
      put32(cd, e.crc);
      put32(cd, static_cast<uint32_t>(e.size));
      put32(cd, static_cast<uint32_t>(e.size));
      put16(cd, static_cast<uint16_t>(e.name.size()));
      put16(cd, 0);
      put16(cd, 0);
      put16(cd, 0);
      put16(cd, 0);
      put32(cd, 0);
      put32(cd, static_cast<uint32_t>(e.offset));
      cd += e.name;
    }
    const auto cd_size = static_cast<uint32_t>(cd.size());
    put32(cd, 0x06054b50);
    put16(cd, 0);
    put16(cd, 0);
    put16(cd, static_cast<uint16_t>(entries_.size()));
    put16(cd, static_cast<uint16_t>(entries_.size()));
    put32(cd, cd_size);
    put32(cd, static_cast<uint32_t>(cd_start));
    put16(cd, 0);
    write(cd.data(), cd.size());
  }

 private:
  struct Entry {
    std::string name;
    uint32_t crc;
    uint64_t size;
    uint64_t offset;
  };
  static void put16(std::string& s, uint16_t v) {
    s.push_back(static_cast<char>(v & 0xFF));
    s.push_back(static_cast<char>(v >> 8));
  }
  static void put32(std::string& s, uint32_t v) {
    for (int i = 0; i < 4; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
  }
  void write(const void* data, size_t size) {
    sink_(data, size);
    offset_ += size;
  }

  Sink sink_;
  std::string prefix_;
  uint64_t offset_ = 0;
  std::vector<Entry> entries_;
};

}  // namespace

std::string pickle_for_python(const c10::IValue& value, bool ordered_dicts,
                              std::vector<torch::Tensor>& storages) {
  return Pickler(ordered_dicts).finish(value, storages);
}

void write_for_python(int fd, const std::string& archive_name, const c10::IValue& value, bool ordered_dicts) {
  std::vector<torch::Tensor> storages;
  const std::string pickle = pickle_for_python(value, ordered_dicts, storages);
  ZipWriter zip([fd](const void* data, size_t size) { write_all(fd, data, size); }, archive_name);
  zip.add("data.pkl", pickle.data(), pickle.size());
  // PyTorch 2.x records the byte order; 1.13 ignores records it does not know.
  zip.add("byteorder", "little", 6);
  for (size_t i = 0; i < storages.size(); ++i) {
    const auto& s = storages[i];
    zip.add("data/" + std::to_string(i), s.storage().data(), s.storage().nbytes());
  }
  zip.add("version", "3\n", 2);
  zip.finish();
}

std::string make_archive(const std::string& archive_name,
                         const std::vector<std::pair<std::string, std::string>>& records) {
  std::string out;
  ZipWriter zip([&out](const void* data, size_t size) { out.append(static_cast<const char*>(data), size); },
                archive_name);
  for (const auto& [name, bytes] : records) zip.add(name, bytes.data(), bytes.size());
  zip.finish();
  return out;
}

}  // namespace common::weights
