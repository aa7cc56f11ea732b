#pragma once
// Checkpoints of the training lessons (11 and 13), in PyTorch's own convention:
//
//   {"model": model.state_dict(),
//    "optimizer": optimizer.state_dict(),  # SGD's: "state" by parameter index, "param_groups"
//    "epoch": 0-based epoch of the next step, "step": steps done,
//    "rng_state": torch.get_rng_state() at the start of that epoch,
//    "settings": {"epochs", "batch_size", "examples", "seed", "lr"}}
//
// Python resumes from one with model.load_state_dict(ck["model"]),
// optimizer.load_state_dict(ck["optimizer"]) and torch.set_rng_state(ck["rng_state"]); the C++ lessons
// read the very same file, and a file Python wrote, checking every field as input from elsewhere.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include <torch/torch.h>
#include <CLI/CLI.hpp>

namespace common::checkpoint {

namespace fs = std::filesystem;

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
// a run to continue. Within them, steps_per_epoch and every product of steps and epochs fit in 2^63.
template <typename T>
struct Range {
  T min, max;
};
inline constexpr Range<int64_t> kEpochsRange{1, 100000};
inline constexpr Range<int64_t> kBatchSizeRange{1, 1000000};
inline constexpr Range<int64_t> kExamplesRange{10, 100000000};
inline constexpr Range<double> kLrRange{1e-6, 10.0};
// What --seed accepts (common/lesson/options.cpp).
inline constexpr Range<int64_t> kSeedRange{0, INT64_MAX};

// --epochs, --batch-size, --examples and --lr, each checked against its range: the options of both
// training lessons. `batch_help` says what a batch is in the lesson.
void add_options(CLI::App& cli, Settings& settings, const std::string& batch_help);

// Where training stands: the next step to run, and the generator state at the start of its epoch (from
// which the epoch's shuffle is drawn again on resume).
struct Progress {
  int64_t epoch = 0;  // 0-based epoch of the next step
  int64_t step = 0;   // global steps done
  torch::Tensor rng_state;
};

// "checkpoint-00000040.pt": zero-padded, so that names sort as steps do.
std::string file_name(int64_t step);
// Whether a name is one file_name gives: only such files are listed, pruned, or have their temporaries swept.
bool is_file_name(const std::string& name);

// Writes the checkpoint atomically through the suite's checked writer: a crash leaves the old file or the
// new one, never half of one.
void save(const fs::path& path, const torch::nn::Module& model, const torch::optim::SGD& optimizer,
          const Progress& progress, const Settings& settings);

// A checkpoint whose settings differ from the run's: not damage, a mistake to report, never skipped.
struct SettingsMismatch : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Loaded {
  Progress progress;
  Settings settings;
};

// Reads a checkpoint (as data: nothing in the file runs) and checks every field: types, ranges, epoch and
// step against each other and the file's name, the generator state, the model's keys and shapes, and the
// optimizer's groups and momentum buffers against `optimizer`. Only then are model and optimizer changed.
// Throws naming the file; SettingsMismatch when the file is sound but was made under other settings than
// `expected`.
Loaded load(const fs::path& path, torch::nn::Module& model, torch::optim::SGD& optimizer,
            const Settings* expected = nullptr);

// Why a checkpoint would not load into model and optimizer under `expected` ("" when it would), with every
// check load makes; nothing is changed.
std::string why_not_loadable(const fs::path& path, const torch::nn::Module& model,
                             const torch::optim::SGD& optimizer, const Settings& expected);

using Warn = std::function<void(const std::string&)>;

// Checkpoint files in dir, newest (highest step) first. An entry that cannot be examined (a symlink loop,
// no permission) is reported through `warn` and skipped.
std::vector<fs::path> list(const fs::path& dir, const Warn& warn = {});

struct Resumed {
  fs::path path;
  Loaded loaded;
  std::vector<fs::path> skipped;  // newer checkpoints that did not load, each already warned about
};

// Loads the newest checkpoint in dir that loads. Each one that does not (cut short by the very crash we
// resume from, or lying) is reported through `warn`, naming it, and the one before it is tried. Throws
// when there is none, or none loads; a SettingsMismatch is thrown as it is.
Resumed resume(const fs::path& dir, torch::nn::Module& model, torch::optim::SGD& optimizer,
               const Settings& expected, const Warn& warn);

// Keeps the newest `keep` checkpoints that load and removes older ones that load. A file that does not load
// is neither counted nor removed: a damaged file must never push out a good one, and it may be evidence of
// what went wrong. Each is named in one warning. What a file was found to be is remembered for as long as
// its size and time are unchanged, so each file is read at most once.
class Pruner {
 public:
  // `why_not`: "" for a checkpoint that loads, else why not (why_not_loadable, for the run's model).
  Pruner(fs::path dir, int64_t keep, std::function<std::string(const fs::path&)> why_not, Warn warn);
  // A checkpoint this run has just written: it loads, and need not be read.
  void written(const fs::path& path);
  // Ones resume skipped: damaged, and already warned about.
  void skipped(const std::vector<fs::path>& paths);
  void prune();

 private:
  struct Seen {
    std::string stamp;  // size and modification time when it was examined
    bool loads = false;
  };
  bool loads(const fs::path& path);

  fs::path dir_;
  int64_t keep_;
  std::function<std::string(const fs::path&)> why_not_;
  Warn warn_;
  std::map<fs::path, Seen> seen_;
};

// An epoch's shuffle of `examples` indices, drawn from the global generator, and the first step of it to
// run. A resumed epoch restores the state its checkpoint recorded, so it draws the very same order and
// skips the steps already done; a new epoch records the state it starts from in progress.rng_state first.
struct Epoch {
  torch::Tensor order;
  int64_t first_step = 0;
};
Epoch begin_epoch(Progress& progress, int64_t epoch, const Settings& settings, bool resumed);

}  // namespace common::checkpoint
