#pragma once
// Data-parallel training across processes with LibTorch's own c10d: ranks meet through a TCPStore, one
// ProcessGroupGloo holds them all, each rank trains on its shard of every batch, and the gradients are
// averaged with an allreduce before every step, which is what Python's DistributedDataParallel does. The
// loop is lesson 11's (common/training/loop.h); the collectives come in through its hooks. Who this process
// is comes from options.cpp; starting the ranks is launcher.h's. The bodies are in distributed.cpp.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <torch/torch.h>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>

#include "common/launch/environment.h"
#include "common/lesson/lesson.h"
#include "common/training/checkpoint.h"
#include "common/training/loop.h"
#include "common/training/training.h"

namespace distributed {

using common::launch::kMaxWorldSize;
using common::launch::Meeting;

// What every rank must agree on, and what a checkpoint records: lesson 11's settings, the same file.
// batch_size is the global batch: each rank takes batch_size / world_size of it.
using common::checkpoint::Progress;
using common::checkpoint::Settings;
using common::training::EpochReport;

// The lesson's options: the common ones, the training settings, and the launch. Made, they say who this
// process is (from the options, or from torchrun's or Slurm's environment), every option that must hold
// before any rank starts checked. A process that is to start the ranks itself (no --rank, no launcher's
// environment) runs no cell: the constructor starts them, waits for them and ends the program with their
// status (launcher.h). A rank prints its lines after "[rank k] ", and ranks other than 0 write into
// rank-k/ of --out-dir.
struct Options : common::Options {
  Settings settings;
  common::launch::Launch launch;
  std::chrono::milliseconds timeout{20000};
  bool resume = false;
  // The command line as given: the ranks this process starts are given the same.
  std::vector<std::string> arguments;

  Options(int argc, char** argv);
};

// A rank's view of the group: who it is, how many there are, and the process group itself.
struct Group {
  int rank = 0;
  int world_size = 1;
  std::vector<std::string> where;  // each rank's record (common/launch/rank_record.h)
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg;
};

inline bool is_loopback(const std::string& addr) { return addr == "127.0.0.1" || addr == "localhost"; }

// The address of this host from which `addr` is reached: the one the Gloo device listens on, so that
// ranks on other hosts (or other network namespaces) can connect to it. No packet is sent: connecting a
// UDP socket only picks the route.
std::string local_address_towards(const std::string& addr, int port);

// Meets the other ranks and builds the process group. Rank 0 hosts the store unless torchrun's agent does.
// Everything listens on loopback when the address is 127.0.0.1; another address is how ranks on other
// machines meet.
Group join(int rank, int world_size, const Meeting& at, std::chrono::milliseconds timeout);

// One tensor holding every parameter (or gradient) end to end: one collective instead of one per tensor,
// as DistributedDataParallel's buckets do.
torch::Tensor flat(const std::vector<torch::Tensor>& tensors);

void unflatten_into(const torch::Tensor& flat_values, const std::vector<torch::Tensor>& tensors);

torch::Tensor allreduce(Group& g, torch::Tensor t, c10d::ReduceOp op = c10d::ReduceOp::SUM);

// Rank 0's parameters, copied to every rank.
void broadcast_parameters(Group& g, torch::nn::Module& model);

// Every rank's gradients summed, then divided by the number of ranks: each rank then holds the gradient of
// the whole batch's mean loss, as one process would compute it.
void average_gradients(Group& g, torch::nn::Module& model);

// Rank `rank`'s part of a batch: contiguous, equal shards.
torch::Tensor shard(const torch::Tensor& batch_indices, int rank, int world_size);

// The loop's hooks for data parallelism: this rank's shard of every batch, the gradients averaged over the
// ranks after backward (unless `average` is false, which only the tests do, to show the ranks then drift
// apart), and the epoch's sums over all ranks.
common::training::Hooks data_parallel(Group& g, torch::nn::Module& model, bool average = true);

// One epoch over `order`, from step first_step, in the loop with data_parallel's hooks.
EpochReport train_epoch(Group& g, torch::nn::Sequential& model, torch::optim::SGD& optimizer,
                        const common::Dataset& data, const Settings& s, const torch::Tensor& order,
                        int64_t first_step, bool average = true);

// Whether every rank holds exactly these parameters, found through the group (elementwise maximum and
// minimum over the ranks agree), not assumed.
bool parameters_equal_everywhere(Group& g, torch::nn::Module& model);

// Where a run starts: rank 0 reads its newest checkpoint (with --resume, or in a group torchrun restarted
// after a failure, when there is one), and every rank gets rank 0's parameters, momentum buffers, progress
// and generator state. `from`: the file rank 0 resumed from, "" when none.
struct Start {
  Progress progress;
  std::string from;
};
Start resume(Group& g, const Options& options, torch::nn::Module& model, torch::optim::SGD& optimizer);

// Trains from `start` to the end in the loop with data_parallel's hooks. After each epoch: on_epoch with
// its report, its speed and whether every rank holds the same parameters (which must hold, or training
// stops); then rank 0 writes a checkpoint, in lesson 11's format, and no rank runs ahead of it. A failure
// names the rank that was lost, when it can tell.
using OnEpoch = std::function<void(const EpochReport&, double examples_per_second, bool equal)>;
void train(Group& g, torch::nn::Sequential& model, torch::optim::SGD& optimizer, const common::Dataset& data,
           const Options& options, const Start& start, const OnEpoch& on_epoch);

// Rank 0 writes the parameters, in Python's torch.save format; the others hold the same.
void save_from_rank0(const Group& g, const torch::nn::Module& model, const std::filesystem::path& path);

// What rank 0 says about starting the lesson under a cluster's launchers; the others, nothing.
std::vector<std::string> how_to_launch(const Group& g, const Options& options);

}  // namespace distributed
