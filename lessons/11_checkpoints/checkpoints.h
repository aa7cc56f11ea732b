#pragma once
// "guardar periódicamente los resultados intermedios (puntos de control)": training that saves
// checkpoints as it goes, and resumes from the newest one that loads, bit for bit.
#include <algorithm>
#include <filesystem>
#include <functional>
#include <stdexcept>

#include <fmt/format.h>
#include <torch/torch.h>

#include "common/lesson/print.h"
#include "common/training/checkpoint.h"
#include "common/training/training.h"

namespace checkpoints {

namespace fs = std::filesystem;

// The data, the model and the optimizer are common's (common/training/training.h): lesson 13 trains the same.
using common::Dataset;
using common::make_dataset;
using common::make_mlp;
using common::make_optimizer;

// The checkpoint itself (format, writer, checked reader, directory scan) is common's
// (common/training/checkpoint.h): lesson 13 writes and resumes from the same files, and so does Python.
using common::checkpoint::Progress;
using common::checkpoint::Settings;

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
  // Checkpoints that --resume skipped: they stay, and do not count toward `keep`.
  std::vector<fs::path> skipped;
};

// Trains from `progress` to the end, saving a checkpoint every checkpoint_every steps. on_epoch gets the
// mean loss and the accuracy over the steps of each epoch run here; on_step each step (for a live line).
inline void train(torch::nn::Sequential& model, torch::optim::SGD& optimizer, const Dataset& data,
                  const TrainOptions& options, Progress progress,
                  const std::function<void(const EpochReport&)>& on_epoch,
                  const std::function<void(int64_t step_in_epoch, int64_t steps_per_epoch)>& on_step) {
  const int64_t n = data.X.size(0);
  if (n != options.settings.examples)
    throw std::invalid_argument(
        fmt::format("the dataset has {} examples, the settings say {}", n, options.settings.examples));
  const int64_t steps_per_epoch = options.settings.steps_per_epoch();
  const auto device = model->parameters().at(0).device();
  common::checkpoint::Pruner pruner(
      options.checkpoint_dir, options.keep,
      [&](const fs::path& path) {
        return common::checkpoint::why_not_loadable(path, *model, optimizer, options.settings);
      },
      common::print_warning);
  pruner.skipped(options.skipped);
  bool resumed_epoch = progress.rng_state.defined();
  for (int64_t epoch = progress.epoch; epoch < options.settings.epochs; ++epoch) {
    // The shuffle is drawn from the generator at the epoch's start; a resumed run restores that state, so
    // it draws the very same order and skips the batches already done.
    const auto [order, first] =
        common::checkpoint::begin_epoch(progress, epoch, options.settings, resumed_epoch);
    resumed_epoch = false;
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
          snapshot.rng_state = at::detail::getDefaultCPUGenerator().get_state();
        }
        const auto path = options.checkpoint_dir / common::checkpoint::file_name(progress.step);
        common::checkpoint::save(path, *model, optimizer, snapshot, options.settings);
        pruner.written(path);
        pruner.prune();
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
