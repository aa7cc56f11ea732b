// Values -> LibTorch: what a file holds, made into what LibTorch uses. A state dict becomes its names and
// tensor references (each tensor made from the file only when it is read); any other value becomes an
// IValue, as Python's torch.load returns its objects.
#include <unordered_map>
#include <unordered_set>

#include <fmt/format.h>

#include "common/lesson/print.h"
#include "common/weights/weights.h"

namespace common::weights {
namespace {

// The walk of tensor_entries: each value visited once, every name checked, on one budget.
class Flattener {
 public:
  explicit Flattener(const WeightsFile& file) : file_(file) {}

  std::vector<std::pair<std::string, const TensorRef*>> run(const Value& root) {
    if (root.kind == Value::Kind::kDict) {
      for (const auto& [key, item] : root.entries) {
        if (key->kind != Value::Kind::kString)
          fail(fmt::format("a state dict's keys are strings, and this one has the {} {}",
                           Value::kind_name(key->kind), key->integer));
        if (item->kind != Value::Kind::kTensor)
          fail(fmt::format("entry '{}' is a {}, not a tensor", printable(key->text),
                           Value::kind_name(item->kind)));
        add(key->text, *item->tensor);
      }
    } else if (root.kind == Value::Kind::kObject) {
      object(root, "");
    } else {
      fail(fmt::format("holds a {}, not a dict of name -> tensor (a state dict)",
                       Value::kind_name(root.kind)));
    }
    return std::move(out_);
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw FileError(fmt::format("{}: {}", file_.name(), what));
  }
  void add(std::string name, const TensorRef& ref) {
    file_.budget().charge(name.size() + 64, "the names of its tensors");
    if (!names_.insert(name).second)
      fail(fmt::format(
          "the tensor '{}' is named twice (a dotted attribute and a submodule's, or two entries), "
          "which loaders resolve differently",
          printable(name)));
    out_.emplace_back(std::move(name), &ref);
  }
  // LibTorch's module objects: tensor attributes, nested modules joined with '.'; a module's other
  // attributes (training: bool) are not state.
  void object(const Value& v, const std::string& prefix) {
    if (!visited_.insert(&v).second)
      fail(fmt::format("the submodule '{}' is reached by two paths; a module's state names each tensor once",
                       printable(prefix)));
    file_.budget().charge(v.entries.size() * 16 + 64, "the walk of its modules");
    for (const auto& [key, item] : v.entries) {
      // A tensor or a submodule must be declared as one by the code (`training`, a bool, is every module's).
      const bool module = item->kind == Value::Kind::kObject;
      if ((module || item->kind == Value::Kind::kTensor) && !file_.declares(key->text, module))
        fail(
            fmt::format("the module attribute '{}' is not declared as a {} by the archive's code, so "
                        "torch.jit.load refuses the file",
                        printable(prefix + key->text), module ? "module" : "tensor"));
      const std::string name = prefix + key->text;
      if (item->kind == Value::Kind::kTensor) {
        add(name, *item->tensor);
      } else if (item->kind == Value::Kind::kObject) {
        object(*item, name + ".");
      }
    }
  }

  const WeightsFile& file_;
  std::vector<std::pair<std::string, const TensorRef*>> out_;
  std::unordered_set<std::string> names_;
  std::unordered_set<const Value*> visited_;
};

// Values become IValues once each: a value the pickle shares (its memo) is shared in the result too, as
// Python's objects are, so a file of 2^60 paths through a few KB converts in a few KB, and a tensor or a
// string reached 100,000 times through the memo is one tensor or one string. Each conversion is charged
// what LibTorch allocates for it, measured on LibTorch 1.13 with mallinfo2 (a one-key dict 639
// bytes, a 64-dimension tensor 1296, a one-item list 112), rounded up.
class Converter {
 public:
  explicit Converter(const WeightsFile& file) : file_(file) {}

  c10::IValue operator()(const Value& v) {
    using Kind = Value::Kind;
    const bool shared = v.kind == Kind::kTuple || v.kind == Kind::kList || v.kind == Kind::kDict ||
                        v.kind == Kind::kString || v.kind == Kind::kTensor;
    if (!shared) return convert(v);
    if (const auto found = done_.find(&v); found != done_.end()) return found->second;
    file_.budget().charge(kMemoEntryCost + cost(v), "the values it holds");
    auto out = convert(v);
    done_.emplace(&v, out);
    return out;
  }

 private:
  c10::IValue convert(const Value& v) {
    using Kind = Value::Kind;
    switch (v.kind) {
      case Kind::kNone:
        return {};
      case Kind::kBool:
        return v.boolean;
      case Kind::kInt:
        return v.integer;
      case Kind::kFloat:
        return v.real;
      case Kind::kString:
        return v.text;
      case Kind::kTensor:
        return file_.tensor(*v.tensor);
      case Kind::kTuple: {
        std::vector<c10::IValue> items;
        items.reserve(v.items.size());
        for (const auto& item : v.items) items.push_back((*this)(*item));
        return c10::ivalue::Tuple::create(std::move(items));
      }
      case Kind::kList: {
        c10::impl::GenericList list(c10::AnyType::get());
        list.reserve(v.items.size());
        for (const auto& item : v.items) list.push_back((*this)(*item));
        return list;
      }
      case Kind::kDict: {
        c10::impl::GenericDict dict(c10::AnyType::get(), c10::AnyType::get());
        for (const auto& [key, value] : v.entries) dict.insert_or_assign((*this)(*key), (*this)(*value));
        return dict;
      }
      default:
        throw FileError(
            fmt::format("{}: holds a {}, which is not a plain value; read it with read_state_dict",
                        file_.name(), Value::kind_name(v.kind)));
    }
  }

  static constexpr uint64_t kMemoEntryCost = 64;  // a node of done_

  // What LibTorch allocates for the value's own IValue (its items are charged as they are converted).
  static uint64_t cost(const Value& v) {
    using Kind = Value::Kind;
    switch (v.kind) {
      case Kind::kString:
        return 64 + v.text.size();
      case Kind::kTensor:
        return 320 + 16 * v.tensor->sizes.size() + (v.tensor->requires_grad ? 256 : 0);
      case Kind::kDict:
        return 640 + 128 * v.entries.size();
      default:
        return 128 + 16 * v.items.size();
    }
  }

  const WeightsFile& file_;
  std::unordered_map<const Value*, c10::IValue> done_;
};

}  // namespace

std::vector<std::pair<std::string, const TensorRef*>> tensor_entries(const WeightsFile& file,
                                                                     const Value& value) {
  return Flattener(file).run(value);
}

std::vector<std::pair<std::string, torch::Tensor>> state_dict_tensors(const WeightsFile& file) {
  std::vector<std::pair<std::string, torch::Tensor>> state;
  for (const auto& [name, ref] : tensor_entries(file, file.root()))
    state.emplace_back(name, file.tensor(*ref));
  return state;
}

c10::IValue to_ivalue(const WeightsFile& file, const Value& value) { return Converter(file)(value); }

}  // namespace common::weights
