#pragma once
// "guardar periódicamente los resultados intermedios (puntos de control)": training that saves
// checkpoints as it goes, and resumes from the newest one that loads, bit for bit.
#include <algorithm>
#include <csignal>
#include <filesystem>
#include <functional>
#include <regex>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <torch/torch.h>

#include "common/files.h"
#include "common/serialize.h"

namespace checkpoints {

namespace fs = std::filesystem;

// A synthetic 10-class problem, the same for a given seed: 20 features drawn from N(0, 1), labelled by
// the largest of 10 fixed random projections. Made with its own generator, so that building it does not
// move the global one that initialises the model.
struct Dataset {
  torch::Tensor X;  // [n, 20]
  torch::Tensor y;  // [n], int64 in 0..9
};

inline Dataset make_dataset(int64_t n, uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed + 1000003);
  auto X = torch::randn({n, 20}, gen);
  auto projection = torch::randn({20, 10}, gen);
  return {X, X.mm(projection).argmax(1)};
}

// The notes' MLP: Linear(20, 256), ReLU, Linear(256, 10), layers built in order.
inline torch::nn::Sequential make_mlp() {
  torch::nn::Linear hidden(20, 256);
  torch::nn::Linear output(256, 10);
  return torch::nn::Sequential(hidden, torch::nn::ReLU(), output);
}

inline torch::optim::SGD make_optimizer(const torch::nn::Sequential& model, double lr) {
  // Momentum gives the optimizer state (a buffer per parameter) that a checkpoint must carry.
  return torch::optim::SGD(model->parameters(), torch::optim::SGDOptions(lr).momentum(0.9));
}

// Where training stands: the next step to run, and the generator state at the start of its epoch (from
// which the epoch's shuffle is drawn again on resume).
struct Progress {
  int64_t epoch = 0;  // 0-based epoch of the next step
  int64_t step = 0;   // global steps done
  torch::Tensor epoch_rng_state;
};

inline std::string checkpoint_name(int64_t step) { return fmt::format("checkpoint-{:08d}.pt", step); }

// Model parameters, optimizer state, epoch, step and generator state, in one archive, written atomically.
inline void save_checkpoint(const fs::path& path, const torch::nn::Module& model,
                            const torch::optim::Optimizer& optimizer, const Progress& progress) {
  torch::serialize::OutputArchive archive, model_archive, optimizer_archive;
  model.save(model_archive);
  optimizer.save(optimizer_archive);
  archive.write("model", model_archive);
  archive.write("optimizer", optimizer_archive);
  archive.write("epoch", torch::tensor(progress.epoch));
  archive.write("step", torch::tensor(progress.step));
  archive.write("epoch_rng_state", progress.epoch_rng_state);
  common::atomic_write(path, [&](const fs::path& tmp) { archive.save_to(tmp.string()); });
}

// Loads a checkpoint into model and optimizer (strictly: the model must match exactly) and returns the
// progress. Throws naming the file when it is damaged or does not fit; model and optimizer are only
// changed once everything has been read and checked.
inline Progress load_checkpoint(const fs::path& path, torch::nn::Module& model,
                                torch::optim::Optimizer& optimizer) {
  torch::serialize::InputArchive archive, model_archive, optimizer_archive;
  // Read straight onto the model's device: the optimizer's momentum buffers must live beside the
  // parameters they update.
  const auto device = model.parameters().at(0).device();
  common::load_checked_archive(archive, path, device);
  torch::Tensor epoch, step, rng;
  if (!archive.try_read("model", model_archive) || !archive.try_read("optimizer", optimizer_archive) ||
      !archive.try_read("epoch", epoch) || !archive.try_read("step", step) ||
      !archive.try_read("epoch_rng_state", rng)) {
    throw std::runtime_error(
        fmt::format("{}: not a checkpoint of this lesson (model, optimizer, epoch, step and "
                    "epoch_rng_state expected)",
                    path.string()));
  }
  const auto state = common::state_dict_from_archive(model_archive);
  // Checks every key and shape before changing anything.
  auto probe = make_mlp();
  common::load_state_dict(*probe, state, path.string());
  try {
    // The optimizer restores its momentum buffers into a copy first, so a damaged file leaves it intact.
    probe->to(device);
    auto trial = make_optimizer(probe, 0.1);
    trial.load(optimizer_archive);
  } catch (const c10::Error& e) {
    throw std::runtime_error(
        fmt::format("{}: the optimizer state does not load ({})", path.string(), e.what_without_backtrace()));
  }
  common::load_state_dict(model, state, path.string());
  optimizer.load(optimizer_archive);
  return {epoch.item<int64_t>(), step.item<int64_t>(), rng.clone()};
}

// Checkpoint files in dir, newest (highest step) first.
inline std::vector<fs::path> list_checkpoints(const fs::path& dir) {
  std::vector<fs::path> found;
  static const std::regex name_re{R"(checkpoint-[0-9]{8}\.pt)"};
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (entry.is_regular_file() && std::regex_match(entry.path().filename().string(), name_re))
      found.push_back(entry.path());
  }
  std::sort(found.begin(), found.end(), std::greater<>());
  return found;
}

// Keeps the newest `keep` checkpoints and removes the rest.
inline void prune_checkpoints(const fs::path& dir, int64_t keep) {
  const auto found = list_checkpoints(dir);
  for (size_t i = static_cast<size_t>(keep); i < found.size(); ++i) fs::remove(found[i]);
}

struct EpochReport {
  int64_t epoch = 0;
  double loss = 0;
  double accuracy = 0;
  int64_t examples = 0;
};

struct TrainOptions {
  int64_t epochs = 3;
  int64_t batch_size = 32;
  int64_t checkpoint_every = 10;
  int64_t keep = 3;
  fs::path checkpoint_dir;
  int64_t kill_at_step = -1;  // for tests: SIGKILL itself after this step, as a pulled plug would
};

// Trains from `progress` to the end, saving a checkpoint every checkpoint_every steps. on_epoch gets the
// mean loss and the accuracy over the steps of each epoch run here; on_step each step (for a live line).
inline void train(torch::nn::Sequential& model, torch::optim::Optimizer& optimizer, const Dataset& data,
                  const TrainOptions& options, Progress progress,
                  const std::function<void(const EpochReport&)>& on_epoch,
                  const std::function<void(int64_t step_in_epoch, int64_t steps_per_epoch)>& on_step) {
  at::Generator gen = at::detail::getDefaultCPUGenerator();
  const int64_t n = data.X.size(0);
  const int64_t steps_per_epoch = (n + options.batch_size - 1) / options.batch_size;
  const auto device = model->parameters().at(0).device();
  bool resumed_epoch = progress.epoch_rng_state.defined();
  for (int64_t epoch = progress.epoch; epoch < options.epochs; ++epoch) {
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
      auto idx = order.slice(0, b * options.batch_size, std::min(n, (b + 1) * options.batch_size));
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
        save_checkpoint(options.checkpoint_dir / checkpoint_name(progress.step), *model, optimizer, snapshot);
        prune_checkpoints(options.checkpoint_dir, options.keep);
      }
      if (progress.step == options.kill_at_step) std::raise(SIGKILL);
    }
    if (report.examples > 0) {
      report.loss /= static_cast<double>(report.examples);
      report.accuracy = static_cast<double>(correct) / static_cast<double>(report.examples);
    }
    on_epoch(report);
  }
}

}  // namespace checkpoints
