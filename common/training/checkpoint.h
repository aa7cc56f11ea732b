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
// The folder of checkpoints is folder.h's; the loop that writes them, loop.h's.
#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>

#include <torch/torch.h>

#include "common/training/settings.h"

namespace common::checkpoint {

namespace fs = std::filesystem;

// Where training stands: the next step to run, and the generator state at the start of its epoch (from
// which the epoch's shuffle is drawn again on resume).
struct Progress {
  int64_t epoch = 0;  // 0-based epoch of the next step
  int64_t step = 0;   // global steps done
  torch::Tensor rng_state;
};

// "checkpoint-00000040.pt": zero-padded, so that names sort as steps do.
std::string file_name(int64_t step);

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

}  // namespace common::checkpoint
