#include "common/training/checkpoint.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/version.h>

#include "common/compat.h"
#include "common/lesson/lesson.h"
#include "common/lesson/print.h"
#include "common/weights/state_dict.h"

namespace common::checkpoint {

namespace {

// Python's name for what a value is, for messages about a file Python may have written.
std::string python_kind(const c10::IValue& v) {
  if (v.isNone()) return "None";
  if (v.isBool()) return "bool";
  if (v.isInt()) return "int";
  if (v.isDouble()) return "float";
  if (v.isString()) return "str";
  if (v.isTensor()) return "tensor";
  if (v.isTuple()) return "tuple";
  if (v.isList()) return "list";
  if (v.isGenericDict()) return "dict";
  return v.tagKind();
}

// A dict of the checkpoint, with the path of its fields ("optimizer.param_groups[0]"), so that every error
// names the file and the field.
class Fields {
 public:
  Fields(const c10::IValue& value, std::string where, const fs::path& file)
      : where_(std::move(where)), file_(file) {
    if (!value.isGenericDict())
      fail(fmt::format("{} is a {}, not a dict", where_.empty() ? "the checkpoint" : where_,
                       python_kind(value)));
    dict_ = value.toGenericDict();
    for (const auto& entry : dict_) {
      if (!entry.key().isString())
        fail(fmt::format("{} has a key that is a {}, not a str", where_, python_kind(entry.key())));
    }
  }

  [[noreturn]] void fail(const std::string& what) const {
    throw std::runtime_error(fmt::format("{}: {}", file_.string(), what));
  }

  std::string name(const std::string& key) const { return where_.empty() ? key : where_ + "." + key; }

  bool has(const std::string& key) const { return dict_.contains(key); }

  c10::IValue get(const std::string& key) const {
    if (!has(key)) fail(fmt::format("no '{}': not a checkpoint of the training lessons", name(key)));
    return dict_.at(key);
  }

  // Keys beyond `known` are refused: a field this reader would ignore may change what Python does.
  void only(std::initializer_list<const char*> known) const {
    for (const auto& entry : dict_) {
      const auto& key = entry.key().toStringRef();
      if (std::none_of(known.begin(), known.end(), [&](const char* k) { return key == k; }))
        fail(fmt::format("{} holds '{}', which this lesson does not know",
                         where_.empty() ? "the checkpoint" : where_, printable(key)));
    }
  }

  int64_t integer(const std::string& key) const {
    const auto v = get(key);
    if (!v.isInt()) fail(fmt::format("'{}' is a {}, not an int", name(key), python_kind(v)));
    return v.toInt();
  }

  // Python keeps a number as given: SGD's default dampening is the int 0, a learning rate a float.
  double number(const std::string& key) const {
    const auto v = get(key);
    if (v.isInt()) return static_cast<double>(v.toInt());
    if (!v.isDouble()) fail(fmt::format("'{}' is a {}, not a number", name(key), python_kind(v)));
    return v.toDouble();
  }

  bool boolean(const std::string& key) const {
    const auto v = get(key);
    if (!v.isBool()) fail(fmt::format("'{}' is a {}, not a bool", name(key), python_kind(v)));
    return v.toBool();
  }

  torch::Tensor tensor(const std::string& key) const {
    const auto v = get(key);
    if (!v.isTensor()) fail(fmt::format("'{}' is a {}, not a tensor", name(key), python_kind(v)));
    return v.toTensor();
  }

  const c10::impl::GenericDict& dict() const { return dict_; }

 private:
  std::string where_;
  const fs::path& file_;
  c10::impl::GenericDict dict_{c10::StringType::get(), c10::AnyType::get()};
};

// `what`: "setting" or "field", for the message.
template <typename T, typename R>
void in_range(const Fields& f, const char* key, T value, R range, const char* what = "setting") {
  // !(a <= b) is true for NaN too.
  if (!(range.min <= value && value <= range.max))
    f.fail(fmt::format("its {} '{}' is {}, outside [{}, {}]", what, key, value, range.min, range.max));
}

Settings read_settings(const Fields& root, const fs::path& path) {
  const Fields f(root.get("settings"), "settings", path);
  f.only({"epochs", "batch_size", "examples", "seed", "lr"});
  Settings s;
  s.epochs = f.integer("epochs");
  s.batch_size = f.integer("batch_size");
  s.examples = f.integer("examples");
  s.seed = f.integer("seed");
  s.lr = f.number("lr");
  in_range(f, "epochs", s.epochs, kEpochsRange);
  in_range(f, "batch_size", s.batch_size, kBatchSizeRange);
  in_range(f, "examples", s.examples, kExamplesRange);
  in_range(f, "seed", s.seed, kSeedRange);
  in_range(f, "lr", s.lr, kLrRange);
  return s;
}

Progress read_progress(const Fields& root, const Settings& s, const fs::path& path) {
  Progress p;
  p.epoch = root.integer("epoch");
  p.step = root.integer("step");
  const int64_t per_epoch = s.steps_per_epoch();
  // Within the settings' ranges per_epoch * (epochs + 1) is below 2^44: no product here overflows. A run
  // that is done stands at the start of the epoch after its last.
  if (p.epoch > s.epochs)
    root.fail(fmt::format("epoch {} is past the end of its run of {} epochs", p.epoch, s.epochs));
  in_range(root, "epoch", p.epoch, Range<int64_t>{0, s.epochs}, "field");
  in_range(root, "step", p.step, Range<int64_t>{0, s.epochs * per_epoch}, "field");
  if (p.step < p.epoch * per_epoch || p.step >= (p.epoch + 1) * per_epoch ||
      (p.epoch == s.epochs && p.step != p.epoch * per_epoch))
    root.fail(fmt::format("epoch {} and step {} do not agree ({} steps an epoch, {} epochs)", p.epoch, p.step,
                          per_epoch, s.epochs));
  if (path.filename().string() != file_name(p.step))
    root.fail(fmt::format("it says step {}, its name another", p.step));
  // Tensors from a file may be views sharing one storage (as in Python): the state gets memory of its own.
  const auto rng = root.tensor("rng_state");
  const auto expected = at::detail::getDefaultCPUGenerator().get_state();
  if (rng.scalar_type() != torch::kUInt8 || rng.dim() != 1 || rng.numel() != expected.numel())
    root.fail(
        fmt::format("'rng_state' is not a generator state: a {} tensor of shape [{}], where "
                    "torch.get_rng_state() gives {} bytes",
                    c10::toString(rng.scalar_type()), fmt::join(rng.sizes(), ", "), expected.numel()));
  p.rng_state = rng.clone(at::MemoryFormat::Contiguous);
  try {
    auto scratch = at::detail::createCPUGenerator();
    scratch.set_state(p.rng_state);
  } catch (const c10::Error& e) {
    root.fail(fmt::format("its generator state is not one LibTorch accepts ({})", one_line_message(e)));
  }
  return p;
}

StateDict read_model(const Fields& root, const torch::nn::Module& model, const fs::path& path) {
  const Fields f(root.get("model"), "model", path);
  StateDict state;
  for (const auto& entry : f.dict()) {
    if (!entry.value().isTensor())
      f.fail(fmt::format("model['{}'] is a {}, not a tensor", printable(entry.key().toStringRef()),
                         python_kind(entry.value())));
    state.emplace_back(entry.key().toStringRef(), entry.value().toTensor());
  }
  check_state_dict(model, state, path.string());
  return state;
}

const torch::optim::SGDOptions& sgd_options(const torch::optim::SGD& optimizer) {
  return static_cast<const torch::optim::SGDOptions&>(optimizer.param_groups().at(0).options());
}

// The one parameter group Python's SGD holds for the lessons' model, checked against `optimizer`: a group
// that would make Python's SGD compute otherwise than this one is refused, not ignored.
void check_param_group(const c10::IValue& value, const torch::optim::SGD& optimizer, int64_t parameters,
                       const Settings& settings, const fs::path& path) {
  const Fields g(value, "optimizer.param_groups[0]", path);
  g.only({"lr", "momentum", "dampening", "weight_decay", "nesterov", "maximize", "foreach", "differentiable",
          "fused", "params"});
  const auto& mine = sgd_options(optimizer);
  const auto same = [&](const char* key, double had, double want) {
    if (had != want) g.fail(fmt::format("'{}' is {}, this lesson's SGD has {}", g.name(key), had, want));
  };
  if (g.number("lr") != settings.lr)
    g.fail(fmt::format("'{}' is {}, its settings say {}", g.name("lr"), g.number("lr"), settings.lr));
  same("momentum", g.number("momentum"), mine.momentum());
  same("dampening", g.number("dampening"), mine.dampening());
  same("weight_decay", g.number("weight_decay"), mine.weight_decay());
  if (g.boolean("nesterov") != mine.nesterov()) g.fail(fmt::format("'{}' differs", g.name("nesterov")));
  // Python fills in the flags a group lacks (an older PyTorch wrote it) with their defaults.
  if (g.has("maximize") && g.boolean("maximize")) g.fail(fmt::format("'{}' is True", g.name("maximize")));
  if (g.has("differentiable") && g.boolean("differentiable"))
    g.fail(fmt::format("'{}' is True", g.name("differentiable")));
  // foreach only groups the same elementwise arithmetic; a fused kernel is other arithmetic.
  if (g.has("foreach") && !g.get("foreach").isNone()) g.boolean("foreach");
  if (g.has("fused") && !g.get("fused").isNone() && g.boolean("fused"))
    g.fail(fmt::format("'{}' is True: a fused SGD, which LibTorch does not have", g.name("fused")));
  const auto params = g.get("params");
  bool indices = params.isList() && static_cast<int64_t>(params.toListRef().size()) == parameters;
  for (int64_t i = 0; indices && i < parameters; ++i) {
    const auto& index = params.toListRef()[static_cast<size_t>(i)];
    indices = index.isInt() && index.toInt() == i;
  }
  if (!indices)
    g.fail(fmt::format("'{}' is not the indices 0..{} of the model's {} parameters", g.name("params"),
                       parameters - 1, parameters));
}

// optimizer.state_dict(): "state" maps a parameter's index to {"momentum_buffer": tensor}, and holds no
// entry for a parameter that has not taken a step.
std::vector<torch::Tensor> read_optimizer(const Fields& root, const torch::nn::Module& model,
                                          const torch::optim::SGD& optimizer, const Settings& settings,
                                          const fs::path& path) {
  const Fields f(root.get("optimizer"), "optimizer", path);
  f.only({"state", "param_groups"});
  const auto params = model.parameters();
  const auto n = static_cast<int64_t>(params.size());
  const auto groups = f.get("param_groups");
  if (!groups.isList() || groups.toListRef().size() != 1)
    f.fail("'optimizer.param_groups' is not a list of one group, as the lessons' SGD has");
  check_param_group(groups.toListRef()[0], optimizer, n, settings, path);

  const auto state = f.get("state");
  if (!state.isGenericDict())
    f.fail(fmt::format("'optimizer.state' is a {}, not a dict", python_kind(state)));
  std::vector<torch::Tensor> buffers(params.size());
  for (const auto& entry : state.toGenericDict()) {
    if (!entry.key().isInt() || entry.key().toInt() < 0 || entry.key().toInt() >= n)
      f.fail(fmt::format(
          "'optimizer.state' has the key {}, not the index of one of the model's {} parameters",
          entry.key().isInt() ? std::to_string(entry.key().toInt()) : python_kind(entry.key()), n));
    const auto i = entry.key().toInt();
    const Fields buffer(entry.value(), fmt::format("optimizer.state[{}]", i), path);
    buffer.only({"momentum_buffer"});
    if (buffer.get("momentum_buffer").isNone()) continue;
    const auto t = buffer.tensor("momentum_buffer");
    const auto& p = params[static_cast<size_t>(i)];
    if (t.sizes() != p.sizes() || t.scalar_type() != p.scalar_type())
      f.fail(fmt::format("the momentum buffer of parameter {} is {} [{}], the parameter {} [{}]", i,
                         c10::toString(t.scalar_type()), fmt::join(t.sizes(), ", "),
                         c10::toString(p.scalar_type()), fmt::join(p.sizes(), ", ")));
    buffers[static_cast<size_t>(i)] = t;
  }
  return buffers;
}

void check_same_settings(const Settings& had, const Settings& expected, const fs::path& path) {
  std::vector<std::string> differences;
  const auto differ = [&](const char* option, auto was, auto now) {
    if (was != now)
      differences.push_back(fmt::format("{} was {} (now {}); pass {} {}", option, was, now, option, was));
  };
  differ("--batch-size", had.batch_size, expected.batch_size);
  differ("--examples", had.examples, expected.examples);
  differ("--seed", had.seed, expected.seed);
  differ("--lr", had.lr, expected.lr);
  if (!differences.empty()) {
    throw SettingsMismatch(fmt::format(
        "--resume: {} was made by a run with other settings: {}; or train afresh in another --out-dir",
        path.string(), fmt::join(differences, "; ")));
  }
}

// SGD's defaults are Python ints (dampening=0, weight_decay=0), and state_dict() keeps them so.
c10::IValue as_python_number(double value) {
  if (value == 0) return int64_t{0};
  return value;
}

}  // namespace

std::string file_name(int64_t step) { return fmt::format("checkpoint-{:08d}.pt", step); }

void save(const fs::path& path, const torch::nn::Module& model, const torch::optim::SGD& optimizer,
          const Progress& progress, const Settings& settings) {
  c10::Dict<std::string, torch::Tensor> parameters;
  for (const auto& [name, tensor] : state_dict(model)) parameters.insert(name, tensor.detach());

  const auto params = model.parameters();
  c10::impl::GenericDict state(c10::IntType::get(), c10::AnyType::get());
  c10::impl::GenericList indices(c10::IntType::get());
  for (size_t i = 0; i < params.size(); ++i) {
    indices.push_back(static_cast<int64_t>(i));
    const auto buffer = sgd_momentum_buffer(optimizer, params[i]);
    if (!buffer.defined()) continue;
    c10::Dict<std::string, torch::Tensor> entry;
    entry.insert("momentum_buffer", buffer);
    state.insert(static_cast<int64_t>(i), entry);
  }
  // The fields and their order are those of Python's torch.optim.SGD of the same version.
  const auto& options = sgd_options(optimizer);
  c10::impl::GenericDict group(c10::StringType::get(), c10::AnyType::get());
  group.insert("lr", options.lr());
  group.insert("momentum", options.momentum());
  group.insert("dampening", as_python_number(options.dampening()));
  group.insert("weight_decay", as_python_number(options.weight_decay()));
  group.insert("nesterov", options.nesterov());
  group.insert("maximize", false);
  group.insert("foreach", c10::IValue());
  group.insert("differentiable", false);
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 3)
  group.insert("fused", c10::IValue());
#endif
  group.insert("params", indices);
  c10::impl::GenericList groups(c10::AnyType::get());
  groups.push_back(group);
  c10::impl::GenericDict sgd(c10::StringType::get(), c10::AnyType::get());
  sgd.insert("state", state);
  sgd.insert("param_groups", groups);

  c10::impl::GenericDict run(c10::StringType::get(), c10::AnyType::get());
  run.insert("epochs", settings.epochs);
  run.insert("batch_size", settings.batch_size);
  run.insert("examples", settings.examples);
  run.insert("seed", settings.seed);
  run.insert("lr", settings.lr);
  c10::impl::GenericDict checkpoint(c10::StringType::get(), c10::AnyType::get());
  checkpoint.insert("model", parameters);
  checkpoint.insert("optimizer", sgd);
  checkpoint.insert("epoch", progress.epoch);
  checkpoint.insert("step", progress.step);
  checkpoint.insert("rng_state", progress.rng_state);
  checkpoint.insert("settings", run);
  save_for_python(checkpoint, path);
}

namespace {

// A checkpoint read and checked whole, not yet applied.
struct Checked {
  Loaded loaded;
  StateDict parameters;
  std::vector<torch::Tensor> buffers;
};

Checked read_checked(const fs::path& path, const torch::nn::Module& model, const torch::optim::SGD& optimizer,
                     const Settings* expected) {
  const Fields root(read_value(path), "", path);
  root.only({"model", "optimizer", "epoch", "step", "rng_state", "settings"});
  Checked c;
  c.loaded.settings = read_settings(root, path);
  c.loaded.progress = read_progress(root, c.loaded.settings, path);
  c.parameters = read_model(root, model, path);
  c.buffers = read_optimizer(root, model, optimizer, c.loaded.settings, path);
  if (expected != nullptr) check_same_settings(c.loaded.settings, *expected, path);
  return c;
}

}  // namespace

Loaded load(const fs::path& path, torch::nn::Module& model, torch::optim::SGD& optimizer,
            const Settings* expected) {
  const auto c = read_checked(path, model, optimizer, expected);
  // Everything was checked: nothing below can fail half-way.
  load_state_dict(model, c.parameters, path.string());
  const auto params = model.parameters();
  for (size_t i = 0; i < params.size(); ++i) {
    if (c.buffers[i].defined())
      set_sgd_momentum_buffer(optimizer, params[i],
                              c.buffers[i].to(params[i].device()).clone(at::MemoryFormat::Contiguous));
  }
  return c.loaded;
}

std::string why_not_loadable(const fs::path& path, const torch::nn::Module& model,
                             const torch::optim::SGD& optimizer, const Settings& expected) {
  try {
    read_checked(path, model, optimizer, &expected);
    return "";
  } catch (const std::exception& e) {
    return one_line_message(e);
  }
}

}  // namespace common::checkpoint
