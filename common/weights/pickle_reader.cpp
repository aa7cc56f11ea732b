// data.pkl -> values. The pickle machine knows the opcodes torch.save and torch::save write and nothing
// else. A global is only a name, resolved against the allow-list when it is called (REDUCE, NEWOBJ,
// BINPERSID), and nothing outside the list is ever called. Values are shared as the memo shares them, and
// every value, container slot and memo entry is charged to the budget as it is made.
#include <cstring>
#include <unordered_map>

#include <fmt/format.h>

#include "common/lesson/print.h"
#include "common/weights/internal.h"
#include "common/weights/pickle.h"

namespace common::weights {
namespace {

using Ptr = Value::Ptr;
using Kind = Value::Kind;
using pickle::Op;

// A dict key as Python hashes it for the keys a weights file may use: strings and ints.
struct Key {
  Kind kind;
  int64_t integer;
  std::string_view text;
  bool operator==(const Key& o) const { return kind == o.kind && integer == o.integer && text == o.text; }
};
struct KeyHash {
  size_t operator()(const Key& k) const {
    return std::hash<std::string_view>()(k.text) ^ (std::hash<int64_t>()(k.integer) * 31) ^
           static_cast<size_t>(k.kind);
  }
};

class Machine {
 public:
  Machine(const std::string& bytes, Values& values, Rebuilder& rebuilder,
          const std::unordered_set<std::string>& classes)
      : in_(bytes), values_(values), rebuilder_(rebuilder), classes_(classes) {}

  Ptr run() {
    while (true) {
      const size_t at = pos_;
      const auto op = static_cast<pickle::Op>(byte());
      if (op == Op::STOP) {
        if (stack_.size() != 1 || !marks_.empty()) error(at, "the pickle ends with a malformed stack");
        return stack_.back();
      }
      step(op, at);
    }
  }

 private:
  // The opcodes that push one value: that value, or nullptr when op is of another kind.
  Ptr value(Op op, size_t at) {
    switch (op) {
      case Op::NONE:
        return values_.none();
      case Op::NEWTRUE:
        return values_.boolean(true);
      case Op::NEWFALSE:
        return values_.boolean(false);
      case Op::BININT1:
        return values_.integer(static_cast<unsigned char>(byte()));
      case Op::BININT2:
        return values_.integer(le16(take(2)));
      case Op::BININT:
        return values_.integer(static_cast<int32_t>(le32(take(4))));
      case Op::LONG1:
        return long1(at);
      case Op::BINFLOAT:
        return binfloat();
      case Op::BINUNICODE:
        return string(le32(take(4)));
      case Op::EMPTY_TUPLE:
        return values_.empty_tuple();
      case Op::TUPLE:
        return tuple_from(pop_mark(at), at);
      case Op::TUPLE1:
        return tuple_of(1, at);
      case Op::TUPLE2:
        return tuple_of(2, at);
      case Op::TUPLE3:
        return tuple_of(3, at);
      case Op::EMPTY_LIST:
        return values_.make(Kind::kList);
      case Op::EMPTY_DICT:
        return values_.make(Kind::kDict);
      case Op::BINGET:
        return memo_get(static_cast<unsigned char>(byte()), at);
      case Op::LONG_BINGET:
        return memo_get(le32(take(4)), at);
      default:
        return nullptr;
    }
  }

  void step(Op op, size_t at) {
    if (auto v = value(op, at)) return push(std::move(v));
    switch (op) {
      case Op::PROTO: {
        const auto proto = static_cast<unsigned char>(byte());
        if (proto < 2 || proto > 5)
          error(at, fmt::format("pickle protocol {} is not one torch.save writes", proto));
        return;
      }
      case Op::MARK:
        values_.grow(marks_, "the pickle's stack");
        marks_.push_back(stack_.size());
        return;
      case Op::APPEND: {
        auto item = pop(at);
        return append(top(at), item, at);
      }
      case Op::APPENDS: {
        auto items = pop_mark(at);
        auto list = top(at);
        // Python checks the target even when there is nothing to add ("Can only extend lists").
        if (list->kind != Kind::kList)
          error(at, fmt::format("APPENDS to a {}", Value::kind_name(list->kind)));
        for (auto& item : items) append(list, item, at);
        return;
      }
      case Op::SETITEM: {
        auto value = pop(at);
        auto key = pop(at);
        return set_item(top(at), key, value, at);
      }
      case Op::SETITEMS: {
        auto items = pop_mark(at);
        if (items.size() % 2 != 0) error(at, "SETITEMS with an odd number of values");
        auto dict = top(at);
        for (size_t i = 0; i < items.size(); i += 2) set_item(dict, items[i], items[i + 1], at);
        return;
      }
      case Op::BINPUT:
        return memo_put(static_cast<unsigned char>(byte()), at);
      case Op::LONG_BINPUT:
        return memo_put(le32(take(4)), at);
      case Op::GLOBAL: {
        const auto module = line(at);
        const auto name = line(at);
        return push(global(module, name, at));
      }
      case Op::REDUCE:
      case Op::NEWOBJ: {
        auto args = pop(at);
        auto callable = pop(at);
        return push(rebuilder_.call(*callable, *args, op == Op::NEWOBJ, at));
      }
      case Op::BUILD: {
        auto state = pop(at);
        return build(top(at), state, at);
      }
      case Op::BINPERSID:
        return push(rebuilder_.storage(*pop(at), at));
      default:
        // Protocol 4's opcodes (FRAME, MEMOIZE, STACK_GLOBAL, SHORT_BINUNICODE, BINUNICODE8) among them:
        // torch.load(weights_only=True) refuses them in every version, and neither torch.save nor
        // LibTorch's pickler writes them.
        refuse(static_cast<unsigned char>(op), at);
    }
  }

  [[noreturn]] void error(size_t at, const std::string& what) const { values_.error(at, what); }
  [[noreturn]] void refuse(unsigned char op, size_t at) const {
    error(at, fmt::format("pickle opcode 0x{:02x} ('{}') is not one a state dict needs; refused", op,
                          op >= 0x20 && op < 0x7f ? static_cast<char>(op) : '?'));
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
  std::string line(size_t at) {
    const auto end = in_.find('\n', pos_);
    if (end == std::string::npos || end - pos_ > 256) error(at, "a GLOBAL name that does not end");
    std::string s = in_.substr(pos_, end - pos_);
    pos_ = end + 1;
    return s;
  }

  Ptr long1(size_t at) {
    const auto n = static_cast<unsigned char>(byte());
    if (n > 8) error(at, "an integer wider than 64 bits");
    const auto* p = take(n);
    uint64_t v = 0;
    for (size_t i = 0; i < n; ++i) v |= static_cast<uint64_t>(p[i]) << (8 * i);
    if (n > 0 && n < 8 && (p[n - 1] & 0x80) != 0) v |= ~uint64_t{0} << (8 * n);  // sign-extend
    return values_.integer(static_cast<int64_t>(v));
  }
  Ptr binfloat() {  // big-endian
    const auto* p = take(8);
    uint64_t bits = 0;
    for (int i = 0; i < 8; ++i) bits = (bits << 8) | p[i];
    auto v = values_.make(Kind::kFloat);
    std::memcpy(&v->real, &bits, sizeof bits);
    return v;
  }
  Ptr string(uint64_t length) {
    const size_t at = pos_;
    const auto* p = take(length);  // checked against what is left before anything is allocated
    if (!utf8(p, static_cast<size_t>(length)))
      error(at, "a string that is not UTF-8 (Python's unpickler refuses it)");
    return values_.string(reinterpret_cast<const char*>(p), static_cast<size_t>(length));
  }
  // UTF-8 as Python's unpickler decodes a pickle's strings ("surrogatepass").
  static bool utf8(const unsigned char* p, size_t n) {
    const std::string_view text(reinterpret_cast<const char*>(p), n);
    for (size_t i = 0, len = 0; i < n; i += len) {
      len = utf8_sequence(text, i, /*surrogates=*/true);
      if (len == 0) return false;
    }
    return true;
  }

  void push(Ptr v) {
    values_.grow(stack_, "the pickle's stack");
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
    values_.budget().charge((stack_.size() - start) * sizeof(Ptr), "containers");
    std::vector<Ptr> items(std::make_move_iterator(stack_.begin() + static_cast<std::ptrdiff_t>(start)),
                           std::make_move_iterator(stack_.end()));
    stack_.resize(start);
    return items;
  }

  static bool is_container(const Value& v) {
    return v.kind == Kind::kTuple || v.kind == Kind::kList || v.kind == Kind::kDict ||
           v.kind == Kind::kObject;
  }
  // Puts child inside parent. A container, once inside another, can no longer change: no cycle can be
  // built, and every depth is final when it is checked.
  void adopt(Value& parent, Value& child, size_t at) {
    if (&parent == &child) error(at, "a container put inside itself (a cycle), which a state dict never has");
    if (is_container(child)) child.sealed = true;
    parent.depth = std::max<uint32_t>(parent.depth, child.depth + 1);
    if (parent.depth > kMaxDepth) error(at, fmt::format("values nested deeper than {}", kMaxDepth));
  }
  void mutate(const Value& target, size_t at) {
    if (target.sealed)
      error(at, "the pickle changes a container after using it (a cycle), which a state dict never does");
  }

  Ptr tuple_from(std::vector<Ptr> items, size_t at) {
    auto t = values_.make(Kind::kTuple);
    for (auto& item : items) adopt(*t, *item, at);
    t->items = std::move(items);
    return t;
  }
  Ptr tuple_of(size_t n, size_t at) {
    std::vector<Ptr> items(n);
    for (size_t i = n; i-- > 0;) items[i] = pop(at);
    values_.budget().charge(n * sizeof(Ptr), "containers");
    return tuple_from(std::move(items), at);
  }
  void append(const Ptr& list, const Ptr& item, size_t at) {
    if (list->kind != Kind::kList) error(at, fmt::format("APPEND to a {}", Value::kind_name(list->kind)));
    mutate(*list, at);
    adopt(*list, *item, at);
    values_.grow(list->items, "containers");
    list->items.push_back(item);
  }
  // Keys are found through a hash per dict, kept only while the pickle runs: a dict of n keys costs n,
  // not n^2.
  void set_item(const Ptr& dict, const Ptr& key, const Ptr& value, size_t at) {
    if (dict->kind != Kind::kDict) error(at, fmt::format("SETITEM on a {}", Value::kind_name(dict->kind)));
    if (key->kind != Kind::kString && key->kind != Kind::kInt)
      error(at, fmt::format("a dict key that is a {}", Value::kind_name(key->kind)));
    mutate(*dict, at);
    adopt(*dict, *value, at);
    auto& [owner, index] = indexes_[dict.get()];
    if (!owner) owner = dict;  // held, so that no other dict can take its address while the pickle runs
    const Key k{key->kind, key->integer, key->text};
    if (const auto found = index.find(k); found != index.end()) {
      dict->entries[found->second].second = value;  // as Python's dict does
      return;
    }
    values_.budget().charge(64, "dict keys");
    values_.grow(dict->entries, "containers");
    index.emplace(k, dict->entries.size());
    dict->entries.emplace_back(key, value);
  }

  void memo_put(uint32_t index, size_t at) {
    // Python's unpickler starts a new stack at each MARK: a PUT right after one has nothing to store.
    if (stack_.empty() || (!marks_.empty() && stack_.size() <= marks_.back()))
      error(at, "PUT with an empty stack");
    auto [slot, inserted] = memo_.try_emplace(index);
    if (inserted) values_.budget().charge(64, "the pickle's memo");
    slot->second = stack_.back();
  }
  Ptr memo_get(uint32_t index, size_t at) {
    const auto found = memo_.find(index);
    if (found == memo_.end()) error(at, fmt::format("GET of memo entry {}, which was never put", index));
    return found->second;
  }

  Ptr global(const std::string& module, const std::string& name, size_t at) {
    if (!Rebuilder::allowed(module, name, classes_)) {
      error(at, fmt::format(
                    "the pickle names {}.{}, which a weights file never needs (only tensors, dicts, lists "
                    "and numbers are read, and nothing from the file is run)",
                    printable(module), printable(name)));
    }
    auto g = values_.make(Kind::kGlobal);
    g->text = module + "." + name;
    return g;
  }

  void build(const Ptr& target, const Ptr& state, size_t at) {
    mutate(*target, at);
    if (target->kind == Kind::kObject) {
      // LibTorch's module objects: the state is a dict of attribute name -> value, set once.
      if (state->kind != Kind::kDict || !target->entries.empty())
        error(at, "a module object built twice or from a non-dict");
      for (auto& [key, value] : state->entries) {
        if (key->kind != Kind::kString) error(at, "a module attribute whose name is not a string");
        adopt(*target, *value, at);
      }
      values_.budget().charge(state->entries.size() * sizeof(state->entries[0]), "containers");
      target->entries = state->entries;
      return;
    }
    if (target->kind == Kind::kDict && target->ordered && state->kind == Kind::kDict) {
      // model.state_dict()'s OrderedDict carries _metadata (module versions) as an attribute: read, unused.
      adopt(*target, *state, at);
      return;
    }
    error(at, fmt::format("BUILD of a {}, which a state dict never needs", Value::kind_name(target->kind)));
  }

  const std::string& in_;
  Values& values_;
  Rebuilder& rebuilder_;
  const std::unordered_set<std::string>& classes_;
  size_t pos_ = 0;
  std::vector<Ptr> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint32_t, Ptr> memo_;
  std::unordered_map<const Value*, std::pair<Ptr, std::unordered_map<Key, size_t, KeyHash>>> indexes_;
};

}  // namespace

Value::Ptr run_pickle(const std::string& bytes, const std::vector<Record>& records,
                      const RecordLookup& lookup, const std::unordered_set<std::string>& classes,
                      Budget& budget, const Fail& fail) {
  Values values(budget, fail);
  Rebuilder rebuilder(values, records, lookup);
  return Machine(bytes, values, rebuilder, classes).run();
}

}  // namespace common::weights
