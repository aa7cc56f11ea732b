// Values and the calls a weights file makes. A value is charged to the budget for what it is; the few
// callables a state dict names (OrderedDict, _rebuild_tensor_v2, _rebuild_parameter,
// LibTorch's module classes) are interpreted here, never called, and each argument is checked as Python's
// torch.load would check it, or more strictly.
#include <limits>
#include <map>
#include <string>

#include <fmt/format.h>

#include "common/lesson/print.h"
#include "common/weights/internal.h"

namespace common::weights {
namespace {

// The dtypes a storage of torch.save may hold. Its class is the dtype's name as c10 spells it, and "Storage":
// torch.FloatStorage, torch.BFloat16Storage, torch.ComplexDoubleStorage.
constexpr c10::ScalarType kStorageDtypes[] = {
    c10::ScalarType::Float,    c10::ScalarType::Double,       c10::ScalarType::Half,
    c10::ScalarType::BFloat16, c10::ScalarType::Long,         c10::ScalarType::Int,
    c10::ScalarType::Short,    c10::ScalarType::Char,         c10::ScalarType::Byte,
    c10::ScalarType::Bool,     c10::ScalarType::ComplexFloat, c10::ScalarType::ComplexDouble,
};

const std::map<c10::ScalarType, std::string>& class_names() {
  static const auto names = [] {
    std::map<c10::ScalarType, std::string> by_dtype;
    for (const auto dtype : kStorageDtypes) by_dtype[dtype] = std::string(c10::toString(dtype)) + "Storage";
    return by_dtype;
  }();
  return names;
}

// What one value costs: the value, shared_ptr's control block, and the pointer that holds it.
constexpr uint64_t kValueCost = sizeof(Value) + 16 + sizeof(Value::Ptr);
constexpr int64_t kSharedInts = 256;

// torch.load restores a storage only on a device it knows, and refuses any other tag. The suite reads every
// storage into memory, as torch.load(..., map_location="cpu") does, so a CUDA tag is read too: the bytes are
// the same whichever device the tensor was saved from.
bool known_location(const std::string& location) {
  if (location == "cpu" || location == "cuda") return true;
  // A device index as torch.device parses one: decimal, no leading zero, below c10's limit of 128.
  if (location.rfind("cuda:", 0) != 0) return false;
  const auto index = location.substr(5);
  if (index.empty() || index.size() > 3 || index.find_first_not_of("0123456789") != std::string::npos ||
      (index.size() > 1 && index[0] == '0'))
    return false;
  return std::stoi(index) < 128;
}

}  // namespace

std::optional<c10::ScalarType> storage_dtype(const std::string& name) {
  for (const auto& [dtype, class_name] : class_names())
    if (name == class_name) return dtype;
  return std::nullopt;
}

const char* storage_name(c10::ScalarType dtype) {
  const auto it = class_names().find(dtype);
  return it == class_names().end() ? nullptr : it->second.c_str();
}

void Values::error(size_t at, const std::string& what) const {
  fail_(fmt::format("not a weights file: {} (data.pkl, byte {})", what, at));
  throw std::logic_error("unreachable");
}

Value::Ptr Values::make(Value::Kind kind) {
  budget_.charge(kValueCost, "values");
  auto v = std::make_shared<Value>();
  v->kind = kind;
  return v;
}

// Immutable values are shared, as Python shares None, True, False and small ints; a container never is.
Value::Ptr Values::none() {
  if (!none_) none_ = make(Value::Kind::kNone);
  return none_;
}

Value::Ptr Values::empty_tuple() {
  if (!empty_tuple_) empty_tuple_ = make(Value::Kind::kTuple);
  return empty_tuple_;
}

Value::Ptr Values::boolean(bool b) {
  auto& shared = b ? true_ : false_;
  if (!shared) {
    shared = make(Value::Kind::kBool);
    shared->boolean = b;
  }
  return shared;
}

Value::Ptr Values::integer(int64_t i) {
  if (i >= 0 && i < kSharedInts) {
    if (small_ints_.empty()) small_ints_.resize(kSharedInts);
    auto& shared = small_ints_[static_cast<size_t>(i)];
    if (!shared) {
      shared = make(Value::Kind::kInt);
      shared->integer = i;
    }
    return shared;
  }
  auto v = make(Value::Kind::kInt);
  v->integer = i;
  return v;
}

Value::Ptr Values::string(const char* data, size_t size) {
  budget_.charge(size, "strings");
  auto v = make(Value::Kind::kString);
  v->text.assign(data, size);
  return v;
}

bool Rebuilder::allowed(const std::string& module, const std::string& name,
                        const std::unordered_set<std::string>& classes) {
  const std::string full = module + "." + name;
  return full == "collections.OrderedDict" || full == "torch._utils._rebuild_tensor_v2" ||
         full == "torch._utils._rebuild_parameter" ||
         (module == "torch" && storage_dtype(name).has_value()) ||
         ((module == "__torch__" || module.rfind("__torch__.", 0) == 0) && name == "Module" &&
          classes.count(full) == 1);
}

Value::Ptr Rebuilder::call(const Value& callable, const Value& args, bool newobj, size_t at) {
  if (callable.kind != Value::Kind::kGlobal)
    values_.error(at, fmt::format("a call of a {}", Value::kind_name(callable.kind)));
  if (args.kind != Value::Kind::kTuple) values_.error(at, "call arguments that are not a tuple");
  const auto& name = callable.text;
  const bool torchscript_class = name.rfind("__torch__", 0) == 0;
  if (newobj != torchscript_class) {
    values_.error(at, fmt::format("{} of {}, which PyTorch's unpicklers refuse: {}",
                                  newobj ? "NEWOBJ" : "REDUCE", printable(name),
                                  newobj ? "they call a function only through REDUCE"
                                         : "they make a TorchScript object only through NEWOBJ"));
  }
  if (name == "collections.OrderedDict") {
    if (!args.items.empty()) values_.error(at, "OrderedDict called with arguments");
    auto d = values_.make(Value::Kind::kDict);
    d->ordered = true;
    return d;
  }
  if (name == "torch._utils._rebuild_parameter") return rebuild_parameter(args, at);
  if (name == "torch._utils._rebuild_tensor_v2") return rebuild_tensor(args, at);
  if (name.rfind("__torch__", 0) == 0) {
    if (!args.items.empty()) values_.error(at, fmt::format("{} created with arguments", printable(name)));
    auto object = values_.make(Value::Kind::kObject);
    object->text = name;
    return object;
  }
  values_.error(at,
                fmt::format("a call of {}, which is not a function a weights file needs", printable(name)));
}

namespace {

const Value& arg(const Values& values, const Value& args, size_t i, Value::Kind kind, const char* what,
                 size_t at) {
  if (i >= args.items.size() || args.items[i]->kind != kind)
    values.error(at, fmt::format("{}: argument {} is not a {}", what, i, Value::kind_name(kind)));
  return *args.items[i];
}

std::vector<int64_t> int_tuple(Values& values, const Value& t, const char* what, size_t at) {
  if (t.kind != Value::Kind::kTuple && t.kind != Value::Kind::kList)
    values.error(at, fmt::format("{} is not a tuple", what));
  if (t.items.size() > kMaxDims)
    values.error(at, fmt::format("a tensor with more than {} dimensions", kMaxDims));
  values.budget().charge(t.items.size() * sizeof(int64_t), "tensor descriptions");
  std::vector<int64_t> out;
  out.reserve(t.items.size());
  for (const auto& item : t.items) {
    if (item->kind != Value::Kind::kInt || item->integer < 0)
      values.error(at, fmt::format("{} holds something other than a non-negative int", what));
    out.push_back(item->integer);
  }
  return out;
}

bool no_hooks(const Value& hooks) { return hooks.kind == Value::Kind::kDict && hooks.entries.empty(); }

}  // namespace

// _rebuild_parameter(data, requires_grad, backward_hooks): hooks are code, refused as on a tensor.
Value::Ptr Rebuilder::rebuild_parameter(const Value& args, size_t at) {
  if (args.items.size() != 3 || args.items[0]->kind != Value::Kind::kTensor)
    values_.error(at, "_rebuild_parameter without a tensor");
  const bool requires_grad = arg(values_, args, 1, Value::Kind::kBool, "_rebuild_parameter", at).boolean;
  if (!no_hooks(*args.items[2]))
    values_.error(at, "a parameter with backward hooks (code), which a state dict never has");
  const auto& data = *args.items[0]->tensor;
  if (requires_grad && !(c10::isFloatingType(data.dtype) || c10::isComplexType(data.dtype)))
    values_.error(
        at, "a parameter of integers that requires grad: only floating-point tensors can require gradients");
  auto t = values_.make(Value::Kind::kTensor);
  t->tensor = std::make_unique<TensorRef>(data);
  t->tensor->requires_grad = requires_grad;
  return t;
}

Value::Ptr Rebuilder::rebuild_tensor(const Value& args, size_t at) {
  // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
  const char* what = "_rebuild_tensor_v2";
  if (args.items.size() != 6 && args.items.size() != 7)
    values_.error(at, "_rebuild_tensor_v2 with a wrong number of arguments");
  // 2.x's metadata: {'neg': ...} or {'conj': ...} makes a negated or conjugated view of the storage (1.13
  // refuses a 7th argument). Only what 2.x skips (`if metadata:`) reads the same: None or an empty dict.
  if (args.items.size() == 7 && args.items[6]->kind != Value::Kind::kNone &&
      !(args.items[6]->kind == Value::Kind::kDict && args.items[6]->entries.empty()))
    values_.error(at,
                  "a tensor saved with a negative or conjugate bit (_rebuild_tensor_v2's metadata), which "
                  "PyTorch 1.13 refuses and 2.x applies: resolve_neg()/resolve_conj() it before saving");
  const auto& storage = arg(values_, args, 0, Value::Kind::kStorage, what, at);
  const int64_t offset = arg(values_, args, 1, Value::Kind::kInt, what, at).integer;
  auto sizes = int_tuple(values_, *args.items[2], "a tensor's size", at);
  auto strides = int_tuple(values_, *args.items[3], "a tensor's stride", at);
  const bool requires_grad = arg(values_, args, 4, Value::Kind::kBool, what, at).boolean;
  if (!no_hooks(*args.items[5]))
    values_.error(at, "a tensor with backward hooks (code), which a state dict never has");
  if (sizes.size() != strides.size()) values_.error(at, "a tensor whose size and stride differ in length");
  if (offset < 0) values_.error(at, "a negative storage offset");
  const auto dtype = storage.tensor->dtype;
  if (requires_grad && !(c10::isFloatingType(dtype) || c10::isComplexType(dtype)))
    values_.error(
        at, "a tensor of integers that requires grad: only floating-point tensors can require gradients");
  // The element count must fit an int64 (Python refuses it: "numel: integer multiplication overflow"),
  // and the last element the tensor reaches must lie inside its storage; every product and sum is checked.
  int64_t numel = 1;
  for (const auto s : sizes) {
    if (__builtin_mul_overflow(numel, s, &numel))
      values_.error(at, "a tensor of more elements than an int64 counts");
  }
  if (numel > 0) {
    int64_t last = offset;
    for (size_t i = 0; i < sizes.size(); ++i) {
      int64_t span = 0;
      if (__builtin_mul_overflow(sizes[i] - 1, strides[i], &span) ||
          __builtin_add_overflow(last, span, &last))
        values_.error(at, "a tensor whose size and stride overflow");
    }
    if (last >= storage.tensor->storage_numel)
      values_.error(at, fmt::format("a tensor reaching element {} of a storage of {} elements", last,
                                    storage.tensor->storage_numel));
  }
  auto t = values_.make(Value::Kind::kTensor);
  values_.budget().charge(sizeof(TensorRef), "tensor descriptions");
  t->tensor = std::make_unique<TensorRef>(*storage.tensor);
  t->tensor->storage_offset = offset;
  t->tensor->sizes = std::move(sizes);
  t->tensor->strides = std::move(strides);
  t->tensor->requires_grad = requires_grad;
  return t;
}

// BINPERSID: ('storage', torch.<Type>Storage, key, location, numel), a record of the archive.
Value::Ptr Rebuilder::storage(const Value& pid, size_t at) {
  if (pid.kind != Value::Kind::kTuple || pid.items.size() != 5 ||
      pid.items[0]->kind != Value::Kind::kString || pid.items[0]->text != "storage" ||
      pid.items[1]->kind != Value::Kind::kGlobal || pid.items[2]->kind != Value::Kind::kString ||
      pid.items[3]->kind != Value::Kind::kString || pid.items[4]->kind != Value::Kind::kInt) {
    values_.error(at, "a persistent id that is not a tensor storage");
  }
  const auto& type = pid.items[1]->text;
  const auto dtype = type.rfind("torch.", 0) == 0 ? storage_dtype(type.substr(6)) : std::nullopt;
  if (!dtype) values_.error(at, fmt::format("a storage of type {}", printable(type)));
  if (!known_location(pid.items[3]->text))
    values_.error(at, fmt::format("a storage on device '{}', which PyTorch does not know how to restore",
                                  printable(pid.items[3]->text)));
  const int64_t numel = pid.items[4]->integer;
  if (numel < 0) values_.error(at, "a storage with a negative size");
  const std::string key = printable(pid.items[2]->text);
  const auto index = lookup_("data/" + pid.items[2]->text);
  if (!index) values_.error(at, fmt::format("a storage whose record data/{} is not in the archive", key));
  const auto& record = records_[*index];
  if (record.deflated) values_.error(at, "a compressed storage");
  const auto element = static_cast<uint64_t>(c10::elementSize(*dtype));
  uint64_t bytes = 0;
  if (__builtin_mul_overflow(static_cast<uint64_t>(numel), element, &bytes) || bytes != record.size) {
    values_.error(
        at, fmt::format("storage data/{} declares {} elements of {} bytes but its record holds {} bytes", key,
                        numel, element, record.size));
  }
  // Python keeps the first storage made for a key and gives it to every later reference, whatever dtype
  // that one names: the two readings differ, so the file is refused.
  if (const auto found = storages_.find(*index); found != storages_.end()) {
    const auto& first = *found->second->tensor;
    if (first.dtype != *dtype)
      values_.error(at, fmt::format("storage data/{} is used as two dtypes ({} and {})", key,
                                    c10::toString(first.dtype), c10::toString(*dtype)));
    return found->second;
  }
  auto s = values_.make(Value::Kind::kStorage);
  values_.budget().charge(sizeof(TensorRef) + 64, "tensor descriptions");
  s->tensor = std::make_unique<TensorRef>();
  s->tensor->dtype = *dtype;
  s->tensor->record = *index;
  s->tensor->storage_numel = numel;
  storages_.emplace(*index, s);
  return s;
}

}  // namespace common::weights
