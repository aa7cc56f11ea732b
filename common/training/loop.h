#pragma once
// The one training loop of lessons 11 and 13: epochs of shuffled batches, each step forward, loss,
// backward, the optimizer's step, as the notes train. What a lesson adds (lesson 11 its checkpoint every N
// steps and a live line, lesson 13 its rank's shard, the allreduce of gradients and a checkpoint an epoch)
// comes in through hooks, so that both run the very same arithmetic: their checkpoints agree byte for byte.
#include <cstdint>
#include <functional>

#include <torch/torch.h>

#include "common/training/checkpoint.h"
#include "common/training/training.h"

namespace common::training {

using checkpoint::Progress;
using checkpoint::Settings;

// An epoch's shuffle of `examples` indices, drawn from the global generator, and the first step of it to
// run. A resumed epoch restores the state its checkpoint recorded, so it draws the very same order and
// skips the steps already done; a new epoch records the state it starts from in progress.rng_state first.
struct Epoch {
  torch::Tensor order;
  int64_t first_step = 0;
};
Epoch begin_epoch(Progress& progress, int64_t epoch, const Settings& settings, bool resumed);

struct EpochReport {
  int64_t epoch = 0;
  double loss = 0;      // mean over the examples of the steps run
  double accuracy = 0;  // over the same examples
  int64_t examples = 0;
};

struct Hooks {
  // The examples of a global batch this process trains on (lesson 13: its rank's shard); all by default.
  std::function<torch::Tensor(const torch::Tensor& batch)> take;
  // Between backward and the optimizer's step (lesson 13: the gradients averaged over the ranks).
  std::function<void()> after_backward;
  // After each step, with where training stands then: what a checkpoint written now records (the next
  // epoch and the generator as it is, after an epoch's last step).
  std::function<void(const Progress& now, int64_t step_in_epoch, int64_t steps_per_epoch)> after_step;
  // The epoch's sums (loss times examples, correct, examples: doubles) from every process that trained
  // (lesson 13: an allreduce over the ranks); this process's alone by default.
  std::function<torch::Tensor(torch::Tensor sums)> sum;
  // After each epoch, with where the next one starts.
  std::function<void(const EpochReport&, const Progress& next)> after_epoch;
};

// One epoch over `shuffle.order` from its first step, `progress` advancing with each step.
EpochReport run_epoch(torch::nn::Sequential& model, torch::optim::SGD& optimizer, const Dataset& data,
                      const Settings& settings, int64_t epoch, const Epoch& shuffle, Progress& progress,
                      const Hooks& hooks = {});

// Trains from `progress` to the end of settings.epochs. `resumed`: progress came from a checkpoint, whose
// first epoch's shuffle is drawn again from its recorded state.
void train(torch::nn::Sequential& model, torch::optim::SGD& optimizer, const Dataset& data,
           const Settings& settings, Progress progress, bool resumed, const Hooks& hooks);

}  // namespace common::training
