// The pickle writer: values as Python's torch.save pickles them, memo and all, byte for byte.
#include <cstring>
#include <limits>
#include <map>
#include <unordered_map>

#include <fmt/format.h>

#include "common/files/files.h"
#include "common/weights/internal.h"
#include "common/weights/pickle.h"

namespace common::weights {
namespace {

using pickle::Op;

// A protocol-2 pickler that memoizes as Python's does (every string, tuple, list, dict and call result is
// PUT once; a global, a storage key and the shared 'storage' and location strings are fetched with GET
// when they recur), so that the bytes match what torch.save writes for the same values.
class Pickler {
 public:
  explicit Pickler(bool ordered_dicts) : ordered_(ordered_dicts) {
    op(Op::PROTO);
    out_.push_back(2);
  }

  std::string finish(const c10::IValue& value, std::vector<torch::Tensor>& storages) {
    save(value, storages);
    op(Op::STOP);
    return std::move(out_);
  }

 private:
  void op(Op o) { out_.push_back(static_cast<char>(o)); }
  // A memo opcode: its one-byte form below 256, its four-byte form above.
  void memo_op(Op short_form, Op long_form, uint32_t id) {
    op(id < 256 ? short_form : long_form);
    if (id < 256) {
      out_.push_back(static_cast<char>(id));
    } else {
      append32(id);
    }
  }
  void put() { memo_op(Op::BINPUT, Op::LONG_BINPUT, next_++); }
  void get(uint32_t id) { memo_op(Op::BINGET, Op::LONG_BINGET, id); }
  void append32(uint32_t v) {
    for (int i = 0; i < 4; ++i) out_.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
  }
  void global(const std::string& module, const std::string& name) {
    const auto key = module + "\n" + name + "\n";
    if (const auto found = memo_.find("g:" + key); found != memo_.end()) return get(found->second);
    op(Op::GLOBAL);
    out_ += key;
    memo_["g:" + key] = next_;
    put();
  }
  void string(const std::string& s) {
    op(Op::BINUNICODE);
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
      op(Op::BININT1);
      out_.push_back(static_cast<char>(v));
    } else if (v >= 0 && v <= 0xFFFF) {
      op(Op::BININT2);
      out_.push_back(static_cast<char>(v & 0xFF));
      out_.push_back(static_cast<char>((v >> 8) & 0xFF));
    } else if (v >= std::numeric_limits<int32_t>::min() && v <= std::numeric_limits<int32_t>::max()) {
      op(Op::BININT);
      append32(static_cast<uint32_t>(static_cast<int32_t>(v)));
    } else {
      // The shortest little-endian two's complement, as Python's encode_long.
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
      op(Op::LONG1);
      out_.push_back(static_cast<char>(bytes.size()));
      out_ += bytes;
    }
  }
  // Python's save_tuple: EMPTY_TUPLE for none, TUPLE1 to TUPLE3 for a few, MARK ... TUPLE for more.
  // Returns whether it is to be memoized: the empty tuple never is.
  template <typename Items, typename Save>
  bool tuple(const Items& items, Save save_item) {
    if (items.empty()) {
      op(Op::EMPTY_TUPLE);
      return false;
    }
    if (items.size() > 3) op(Op::MARK);
    for (const auto& item : items) save_item(item);
    op(items.size() > 3 ? Op::TUPLE : pickle::small_tuple(items.size()));
    return true;
  }
  void ints(c10::IntArrayRef values) {
    if (tuple(values, [this](int64_t v) { integer(v); })) put();
  }
  // collections.OrderedDict(), as Python reduces an OrderedDict; its PUT is the caller's.
  void ordered_dict() {
    global("collections", "OrderedDict");
    op(Op::EMPTY_TUPLE);
    op(Op::REDUCE);
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
    op(Op::MARK);
    op(Op::MARK);
    shared_string("s:", "storage");
    global("torch", type);
    shared_string("k:", key);
    shared_string("s:", "cpu");
    integer(static_cast<int64_t>(t.storage().nbytes()) / elsize);
    op(Op::TUPLE);
    put();
    op(Op::BINPERSID);
    integer(t.storage_offset());
    ints(t.sizes());
    ints(t.strides());
    op(Op::NEWFALSE);  // requires_grad: a state dict's tensors are detached
    ordered_dict();
    put();
    op(Op::TUPLE);
    put();
    op(Op::REDUCE);
    put();
  }

  template <typename Items, typename Save>
  void batched(const Items& items, size_t n, Op one, Op many, Save save_item) {
    // Python's _batch_appends / _batch_setitems: batches of 1000, a single item without MARK.
    size_t i = 0;
    auto it = items.begin();
    while (i < n) {
      const size_t count = std::min<size_t>(1000, n - i);
      if (count > 1) op(Op::MARK);
      for (size_t k = 0; k < count; ++k, ++it) save_item(*it);
      op(count > 1 ? many : one);
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
      op(Op::NONE);
    } else if (v.isBool()) {
      op(v.toBool() ? Op::NEWTRUE : Op::NEWFALSE);
    } else if (v.isInt()) {
      integer(v.toInt());
    } else if (v.isDouble()) {
      double d = v.toDouble();
      uint64_t bits = 0;
      std::memcpy(&bits, &d, sizeof bits);
      op(Op::BINFLOAT);
      for (int i = 7; i >= 0; --i) out_.push_back(static_cast<char>((bits >> (8 * i)) & 0xFF));
    } else if (v.isString()) {
      containers_[v.internalToPointer()] = next_;
      string(v.toStringRef());
    } else if (v.isTensor()) {
      tensor(v.toTensor(), storages);
    } else if (v.isTuple()) {
      const auto& elements = v.toTupleRef().elements();
      if (!tuple(elements, [&](const c10::IValue& e) { save(e, storages); })) return;
      containers_[v.internalToPointer()] = next_;
      put();
    } else if (v.isList()) {
      const auto list = v.toListRef();
      op(Op::EMPTY_LIST);
      containers_[v.internalToPointer()] = next_;
      put();
      batched(list, list.size(), Op::APPEND, Op::APPENDS,
              [&](const c10::IValue& item) { save(item, storages); });
    } else if (v.isGenericDict()) {
      const auto dict = v.toGenericDict();
      if (ordered_) {
        ordered_dict();
      } else {
        op(Op::EMPTY_DICT);
      }
      containers_[v.internalToPointer()] = next_;
      put();
      batched(dict, dict.size(), Op::SETITEM, Op::SETITEMS, [&](const auto& entry) {
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
