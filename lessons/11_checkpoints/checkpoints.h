#pragma once
// "guardar periódicamente los resultados intermedios (puntos de control)": training that saves
// checkpoints as it goes, and resumes from the newest one that loads, bit for bit.
#include <algorithm>
#include <filesystem>
#include <functional>
#include <map>
#include <regex>
#include <stdexcept>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/torch.h>

#include "common/compat.h"
#include "common/files.h"
#include "common/lesson.h"
#include "common/serialize.h"
#include "common/training.h"

namespace checkpoints {

namespace fs = std::filesystem;

// The data, the model and the optimizer are common's (common/training.h): lesson 13 trains the same.
using common::Dataset;
using common::make_dataset;
using common::make_mlp;
using common::make_optimizer;

// Where training stands: the next step to run, and the generator state at the start of its epoch (from
// which the epoch's shuffle is drawn again on resume).
struct Progress {
  int64_t epoch = 0;  // 0-based epoch of the next step
  int64_t step = 0;   // global steps done
  torch::Tensor epoch_rng_state;
};

// The settings that shape training. A checkpoint records them; resuming under others would continue a
// different run (another batch size replays other batches: the loss goes to NaN), so it is refused.
struct Settings {
  // Epochs the run was asked for: a checkpoint past them lies. Not compared on resume: more epochs
  // continue a run.
  int64_t epochs = 3;
  int64_t batch_size = 32;
  int64_t examples = 2048;
  int64_t seed = 0;
  double lr = 0.05;

  int64_t steps_per_epoch() const { return (examples + batch_size - 1) / batch_size; }
};

// The range of each setting, for the options and for what a checkpoint records alike: a checkpoint is
// input from elsewhere, and a value no option accepts (a batch of 2^63 - 1, a NaN learning rate) is not
// a run to continue. Within them, steps_per_epoch and every product below cannot overflow.
template <typename T>
struct Range {
  T min, max;
};
inline constexpr Range<int64_t> kEpochsRange{1, 100000};
inline constexpr Range<int64_t> kBatchSizeRange{1, 1000000};
inline constexpr Range<int64_t> kExamplesRange{10, 100000000};
inline constexpr Range<double> kLrRange{1e-6, 10.0};

inline std::string checkpoint_name(int64_t step) { return fmt::format("checkpoint-{:08d}.pt", step); }

// Model parameters, momentum buffers, progress and settings in one torch.save file (Python opens it with
// torch.load(path, weights_only=True)), written atomically.
inline void save_checkpoint(const fs::path& path, const torch::nn::Module& model,
                            const torch::optim::SGD& optimizer, const Progress& progress,
                            const Settings& settings = {}) {
  c10::Dict<std::string, torch::Tensor> parameters, momentum;
  for (const auto& [name, tensor] : common::state_dict(model)) {
    parameters.insert(name, tensor.detach());
    const auto buffer = common::sgd_momentum_buffer(optimizer, tensor);
    if (buffer.defined()) momentum.insert(name, buffer);
  }
  c10::impl::GenericDict run(c10::StringType::get(), c10::AnyType::get());
  run.insert("epochs", settings.epochs);
  run.insert("batch_size", settings.batch_size);
  run.insert("examples", settings.examples);
  run.insert("seed", settings.seed);
  run.insert("lr", settings.lr);
  c10::impl::GenericDict checkpoint(c10::StringType::get(), c10::AnyType::get());
  checkpoint.insert("model", parameters);
  checkpoint.insert("momentum_buffer", momentum);
  checkpoint.insert("epoch", progress.epoch);
  checkpoint.insert("step", progress.step);
  checkpoint.insert("epoch_rng_state", progress.epoch_rng_state);
  checkpoint.insert("settings", run);
  common::save_for_python(checkpoint, path);
}

// A checkpoint whose settings differ from the run's: not damage, a mistake to report, never skipped.
struct SettingsMismatch : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Loaded {
  Progress progress;
  Settings settings;
};

namespace detail {
inline const c10::IValue& field(const c10::impl::GenericDict& dict, const std::string& key,
                                const fs::path& path) {
  const auto found = dict.find(key);
  if (found == dict.end())
    throw std::runtime_error(
        fmt::format("{}: not a checkpoint of this lesson (no '{}')", path.string(), key));
  return found->value();
}
inline int64_t int_field(const c10::impl::GenericDict& dict, const std::string& key, const fs::path& path) {
  const auto& v = field(dict, key, path);
  if (!v.isInt()) throw std::runtime_error(fmt::format("{}: '{}' is not an int", path.string(), key));
  return v.toInt();
}
inline common::StateDict tensors(const c10::IValue& v, const std::string& key, const fs::path& path) {
  if (!v.isGenericDict()) throw std::runtime_error(fmt::format("{}: '{}' is not a dict", path.string(), key));
  common::StateDict out;
  for (const auto& entry : v.toGenericDict()) {
    if (!entry.key().isString() || !entry.value().isTensor())
      throw std::runtime_error(
          fmt::format("{}: '{}' holds something other than name -> tensor", path.string(), key));
    out.emplace_back(entry.key().toStringRef(), entry.value().toTensor());
  }
  return out;
}
}  // namespace detail

// Reads a checkpoint (as data: nothing in the file runs) and checks it as input from elsewhere: the
// model's keys and shapes, a momentum buffer of the right shape per parameter, epoch and step consistent
// with each other and with the file's name, a generator state that LibTorch accepts, and the settings of
// `expected`. Only then are model and optimizer changed. Throws naming the file; SettingsMismatch when
// the file is sound but was made under other settings.
inline Loaded load_checkpoint(const fs::path& path, torch::nn::Module& model, torch::optim::SGD& optimizer,
                              const Settings* expected = nullptr) {
  const auto value = common::read_value(path);
  if (!value.isGenericDict())
    throw std::runtime_error(fmt::format("{}: not a checkpoint of this lesson", path.string()));
  const auto dict = value.toGenericDict();
  Loaded loaded;
  const auto& run = detail::field(dict, "settings", path);
  if (!run.isGenericDict())
    throw std::runtime_error(fmt::format("{}: 'settings' is not a dict", path.string()));
  const auto settings = run.toGenericDict();
  loaded.settings.epochs = detail::int_field(settings, "epochs", path);
  loaded.settings.batch_size = detail::int_field(settings, "batch_size", path);
  loaded.settings.examples = detail::int_field(settings, "examples", path);
  loaded.settings.seed = detail::int_field(settings, "seed", path);
  const auto& lr = detail::field(settings, "lr", path);
  if (!lr.isDouble()) throw std::runtime_error(fmt::format("{}: 'lr' is not a float", path.string()));
  loaded.settings.lr = lr.toDouble();
  const auto in_range = [&](const char* key, auto value, auto range) {
    // !(a <= b) is true for NaN too.
    if (!(range.min <= value && value <= range.max))
      throw std::runtime_error(fmt::format("{}: its setting '{}' is {}, outside [{}, {}]", path.string(), key,
                                           value, range.min, range.max));
  };
  in_range("epochs", loaded.settings.epochs, kEpochsRange);
  in_range("batch_size", loaded.settings.batch_size, kBatchSizeRange);
  in_range("examples", loaded.settings.examples, kExamplesRange);
  in_range("lr", loaded.settings.lr, kLrRange);

  auto& progress = loaded.progress;
  progress.epoch = detail::int_field(dict, "epoch", path);
  progress.step = detail::int_field(dict, "step", path);
  const int64_t per_epoch = loaded.settings.steps_per_epoch();
  if (progress.epoch < 0 || progress.step < 0 || progress.epoch > (int64_t{1} << 40) / per_epoch ||
      progress.step < progress.epoch * per_epoch || progress.step >= (progress.epoch + 1) * per_epoch) {
    throw std::runtime_error(fmt::format("{}: epoch {} and step {} do not agree ({} steps an epoch)",
                                         path.string(), progress.epoch, progress.step, per_epoch));
  }
  if (progress.epoch > loaded.settings.epochs) {
    throw std::runtime_error(fmt::format("{}: epoch {} is past the end of its run of {} epochs",
                                         path.string(), progress.epoch, loaded.settings.epochs));
  }
  if (path.filename().string() != checkpoint_name(progress.step))
    throw std::runtime_error(
        fmt::format("{}: it says step {}, its name another", path.string(), progress.step));
  const auto& rng = detail::field(dict, "epoch_rng_state", path);
  if (!rng.isTensor())
    throw std::runtime_error(fmt::format("{}: 'epoch_rng_state' is not a tensor", path.string()));
  // Tensors from a file may be views sharing one storage (as in Python): each gets memory of its own.
  progress.epoch_rng_state = rng.toTensor().clone(at::MemoryFormat::Contiguous);
  try {
    auto scratch = at::detail::createCPUGenerator();
    scratch.set_state(progress.epoch_rng_state);
  } catch (const c10::Error& e) {
    throw std::runtime_error(fmt::format("{}: its generator state is not one LibTorch accepts ({})",
                                         path.string(), common::one_line_message(e)));
  }

  const auto parameters = detail::tensors(detail::field(dict, "model", path), "model", path);
  const auto momentum =
      detail::tensors(detail::field(dict, "momentum_buffer", path), "momentum_buffer", path);
  // Checks every key and shape before changing anything.
  auto probe = make_mlp();
  common::load_state_dict(*probe, parameters, path.string());
  std::map<std::string, torch::Tensor> buffers(momentum.begin(), momentum.end());
  const auto expected_state = common::state_dict(model);
  for (const auto& [name, tensor] : expected_state) {
    const auto found = buffers.find(name);
    if (found != buffers.end() &&
        (found->second.sizes() != tensor.sizes() || found->second.dtype() != tensor.dtype()))
      throw std::runtime_error(
          fmt::format("{}: the momentum buffer of {} does not fit it", path.string(), name));
  }
  if (buffers.size() > expected_state.size())
    throw std::runtime_error(fmt::format("{}: more momentum buffers than parameters", path.string()));

  if (expected != nullptr) {
    std::vector<std::string> differences;
    const auto differ = [&](const char* option, auto had, auto now) {
      if (had != now)
        differences.push_back(fmt::format("{} was {} (now {}); pass {} {}", option, had, now, option, had));
    };
    differ("--batch-size", loaded.settings.batch_size, expected->batch_size);
    differ("--examples", loaded.settings.examples, expected->examples);
    differ("--seed", loaded.settings.seed, expected->seed);
    differ("--lr", loaded.settings.lr, expected->lr);
    if (!differences.empty()) {
      throw SettingsMismatch(
          fmt::format("--resume: {} was made by a run with other settings: {}; or train afresh in "
                      "another --out-dir",
                      path.string(), fmt::join(differences, "; ")));
    }
  }

  const auto device = model.parameters().at(0).device();
  common::load_state_dict(model, parameters, path.string());
  for (const auto& [name, tensor] : expected_state) {
    const auto found = buffers.find(name);
    if (found != buffers.end())
      common::set_sgd_momentum_buffer(optimizer, tensor,
                                      found->second.to(device).clone(at::MemoryFormat::Contiguous));
  }
  return loaded;
}

// Checkpoint files in dir, newest (highest step) first. An entry that cannot be examined (a symlink
// loop, no permission) is reported through `warn` and skipped.
inline std::vector<fs::path> list_checkpoints(const fs::path& dir,
                                              const std::function<void(const std::string&)>& warn = {}) {
  std::vector<fs::path> found;
  static const std::regex name_re{R"(checkpoint-[0-9]{8}\.pt)"};
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (!std::regex_match(it->path().filename().string(), name_re)) continue;
    std::error_code type_error;
    const bool regular = it->is_regular_file(type_error);
    if (type_error || !regular) {
      if (warn) {
        warn(fmt::format("skipping {}: {}", it->path().filename().string(),
                         type_error ? type_error.message() : "not a regular file"));
      }
      continue;
    }
    found.push_back(it->path());
  }
  std::sort(found.begin(), found.end(), std::greater<>());
  return found;
}

// Keeps the newest `keep` checkpoints and removes the rest.
inline void prune_checkpoints(const fs::path& dir, int64_t keep) {
  const auto found = list_checkpoints(dir);
  std::error_code ignored;  // a file another process removed first is already pruned
  for (size_t i = static_cast<size_t>(keep); i < found.size(); ++i) fs::remove(found[i], ignored);
}

struct EpochReport {
  int64_t epoch = 0;
  double loss = 0;
  double accuracy = 0;
  int64_t examples = 0;
};

struct TrainOptions {
  Settings settings;  // epochs, batch size and what the checkpoints record
  int64_t checkpoint_every = 10;
  int64_t keep = 3;
  fs::path checkpoint_dir;
};

// Trains from `progress` to the end, saving a checkpoint every checkpoint_every steps. on_epoch gets the
// mean loss and the accuracy over the steps of each epoch run here; on_step each step (for a live line).
inline void train(torch::nn::Sequential& model, torch::optim::SGD& optimizer, const Dataset& data,
                  const TrainOptions& options, Progress progress,
                  const std::function<void(const EpochReport&)>& on_epoch,
                  const std::function<void(int64_t step_in_epoch, int64_t steps_per_epoch)>& on_step) {
  at::Generator gen = at::detail::getDefaultCPUGenerator();
  const int64_t n = data.X.size(0);
  if (n != options.settings.examples)
    throw std::invalid_argument(
        fmt::format("the dataset has {} examples, the settings say {}", n, options.settings.examples));
  const int64_t steps_per_epoch = (n + options.settings.batch_size - 1) / options.settings.batch_size;
  const auto device = model->parameters().at(0).device();
  bool resumed_epoch = progress.epoch_rng_state.defined();
  for (int64_t epoch = progress.epoch; epoch < options.settings.epochs; ++epoch) {
    // The shuffle is drawn from the generator at the epoch's start; a resumed run restores that state, so
    // it draws the very same order and skips the batches already done.
    if (resumed_epoch) {
      gen.set_state(progress.epoch_rng_state);
    } else {
      progress.epoch_rng_state = gen.get_state();
    }
    const int64_t first = resumed_epoch ? progress.step - epoch * steps_per_epoch : 0;
    resumed_epoch = false;
    auto order = torch::randperm(n, torch::kLong);
    EpochReport report{epoch, 0, 0, 0};
    int64_t correct = 0;
    for (int64_t b = first; b < steps_per_epoch; ++b) {
      auto idx =
          order.slice(0, b * options.settings.batch_size, std::min(n, (b + 1) * options.settings.batch_size));
      auto xb = data.X.index_select(0, idx).to(device);
      auto yb = data.y.index_select(0, idx).to(device);
      auto logits = model->forward(xb);
      auto loss = torch::nn::functional::cross_entropy(logits, yb);
      optimizer.zero_grad();
      loss.backward();
      optimizer.step();
      ++progress.step;
      report.loss += loss.item<double>() * static_cast<double>(idx.size(0));
      correct += logits.argmax(1).eq(yb).sum().item<int64_t>();
      report.examples += idx.size(0);
      if (on_step) on_step(b + 1, steps_per_epoch);

      if (progress.step % options.checkpoint_every == 0) {
        Progress snapshot = progress;
        snapshot.epoch = epoch;
        if (b + 1 ==
            steps_per_epoch) {  // the next step opens the next epoch, from the generator as it is now
          snapshot.epoch = epoch + 1;
          snapshot.epoch_rng_state = gen.get_state();
        }
        save_checkpoint(options.checkpoint_dir / checkpoint_name(progress.step), *model, optimizer, snapshot,
                        options.settings);
        prune_checkpoints(options.checkpoint_dir, options.keep);
      }
    }
    if (report.examples > 0) {
      report.loss /= static_cast<double>(report.examples);
      report.accuracy = static_cast<double>(correct) / static_cast<double>(report.examples);
    }
    on_epoch(report);
  }
}

}  // namespace checkpoints
