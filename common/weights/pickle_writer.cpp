// The pickle writer: values as Python's torch.save pickles them, memo and all, byte for byte.
#include <cstring>
#include <limits>
#include <map>
#include <unordered_map>

#include <fmt/format.h>

#include "common/files/files.h"
#include "common/weights/internal.h"

namespace common::weights {
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
    // A container or a string met again (the same object, as Python's pickler keys its memo by id) is
    // fetched from the memo: shared values stay shared, a value reached by 2^60 paths is written once, and
    // a string read once and referenced 100,000 times is written once.
    const bool container = v.isTuple() || v.isList() || v.isGenericDict() || v.isString();
    if (container) {
      if (const auto found = containers_.find(v.internalToPointer()); found != containers_.end())
        return get(found->second);
    }
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
      containers_[v.internalToPointer()] = next_;
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
      containers_[v.internalToPointer()] = next_;
      put();
    } else if (v.isList()) {
      const auto list = v.toListRef();
      out_.push_back(']');
      containers_[v.internalToPointer()] = next_;
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
      containers_[v.internalToPointer()] = next_;
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
  std::unordered_map<const void*, uint32_t> containers_;
};

}  // namespace

std::string pickle_for_python(const c10::IValue& value, bool ordered_dicts,
                              std::vector<torch::Tensor>& storages) {
  return Pickler(ordered_dicts).finish(value, storages);
}

void write_for_python(int fd, const std::string& archive_name, const c10::IValue& value, bool ordered_dicts) {
  std::vector<torch::Tensor> storages;
  const std::string pickle = pickle_for_python(value, ordered_dicts, storages);
  // PyTorch 2.x records the byte order; 1.13 ignores records it does not know.
  std::vector<ZipPart> parts{{"data.pkl", pickle.data(), pickle.size()}, {"byteorder", "little", 6}};
  for (size_t i = 0; i < storages.size(); ++i) {
    const auto& s = storages[i];
    parts.push_back({"data/" + std::to_string(i), s.storage().data(), s.storage().nbytes()});
  }
  parts.push_back({"version", "3\n", 2});
  write_zip(archive_name, parts, [fd](const void* data, size_t size) { write_all(fd, data, size); });
}

}  // namespace common::weights
