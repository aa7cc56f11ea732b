#pragma once
// "guardar periódicamente los resultados intermedios (puntos de control)": training that saves
// checkpoints as it goes, and resumes from the newest one that loads, bit for bit.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <functional>
#include <vector>

#include <fmt/format.h>
#include <torch/torch.h>
#include <CLI/CLI.hpp>

#include "common/lesson/options.h"
#include "common/lesson/print.h"
#include "common/training/checkpoint.h"
#include "common/training/folder.h"
#include "common/training/loop.h"
#include "common/training/options.h"
#include "common/training/training.h"

namespace checkpoints {

namespace fs = std::filesystem;

// The data, the model and the optimizer are common's (common/training/training.h): lesson 13 trains the same.
using common::Dataset;
using common::make_dataset;
using common::make_mlp;
using common::make_optimizer;

// The checkpoint itself (format, writer, checked reader, directory scan) is common's
// (common/training/checkpoint.h, folder.h): lesson 13 writes and resumes from the same files, and so does
// Python. So is the loop (common/training/loop.h), which lesson 13 runs too.
using common::checkpoint::Progress;
using common::checkpoint::Settings;
using common::training::EpochReport;

// The lesson's options: the common ones, the training settings, and how often and how many checkpoints.
struct Options : common::Options {
  Settings settings;
  int64_t checkpoint_every = 10;
  int64_t keep = 3;
  bool resume = false;

  Options(int argc, char** argv)
      : common::Options("11_checkpoints", "Checkpoints: train, save as you go, resume bit for bit") {
    common::training::add_options(cli(), settings, "examples per step");
    cli()
        .add_option("--checkpoint-every", checkpoint_every, "save a checkpoint every N steps")
        ->capture_default_str()
        ->check(CLI::Range(1, 1000000000));
    cli()
        .add_option("--keep", keep, "keep the newest K checkpoints")
        ->capture_default_str()
        ->check(CLI::Range(1, 1000000));
    cli().add_flag("--resume", resume, "continue from the newest checkpoint in --out-dir that loads");
    parse(argc, argv);
    settings.seed = seed;
  }
};

struct TrainOptions {
  Settings settings;  // epochs, batch size and what the checkpoints record
  int64_t checkpoint_every = 10;
  int64_t keep = 3;
  fs::path checkpoint_dir;
  // Checkpoints that --resume skipped: they stay, and do not count toward `keep`.
  std::vector<fs::path> skipped;
};

inline TrainOptions train_options(const Options& options, const fs::path& checkpoint_dir,
                                  std::vector<fs::path> skipped = {}) {
  return {options.settings, options.checkpoint_every, options.keep, checkpoint_dir, std::move(skipped)};
}

// Trains from `progress` (resumed when it holds a generator state) to the end, in common's loop, saving a
// checkpoint every checkpoint_every steps and pruning the folder to the newest `keep`. on_epoch gets the
// mean loss and the accuracy over the steps of each epoch run here; on_step each step (for a live line).
inline void train(torch::nn::Sequential& model, torch::optim::SGD& optimizer, const Dataset& data,
                  const TrainOptions& options, Progress progress,
                  const std::function<void(const EpochReport&)>& on_epoch,
                  const std::function<void(int64_t step_in_epoch, int64_t steps_per_epoch)>& on_step) {
  common::checkpoint::Pruner pruner(
      options.checkpoint_dir, options.keep,
      [&](const fs::path& path) {
        return common::checkpoint::why_not_loadable(path, *model, optimizer, options.settings);
      },
      common::print_warning);
  pruner.skipped(options.skipped);
  common::training::Hooks hooks;
  hooks.after_step = [&](const Progress& now, int64_t step_in_epoch, int64_t steps_per_epoch) {
    if (on_step) on_step(step_in_epoch, steps_per_epoch);
    if (now.step % options.checkpoint_every != 0) return;
    const auto path = options.checkpoint_dir / common::checkpoint::file_name(now.step);
    common::checkpoint::save(path, *model, optimizer, now, options.settings);
    pruner.written(path);
    pruner.prune();
  };
  hooks.after_epoch = [&](const EpochReport& report, const Progress&) { on_epoch(report); };
  const bool resumed = progress.rng_state.defined();
  common::training::train(model, optimizer, data, options.settings, std::move(progress), resumed, hooks);
}

// The "step k/n" line that a terminal shows while an epoch trains, rewritten in place, and cleared before
// the epoch's own line. Printed to a file or a pipe (the tests, the parity check), it prints nothing.
class LiveLine {
 public:
  LiveLine() : live_(isatty(STDOUT_FILENO) != 0) {}
  void step(int64_t step, int64_t steps) const {
    if (!live_) return;
    fmt::print("\r  step {}/{}", step, steps);
    std::fflush(stdout);
  }
  void clear() const {
    if (live_) fmt::print("\r\033[K");
  }

 private:
  bool live_;
};

}  // namespace checkpoints
