#pragma once
// Data-parallel training across processes with LibTorch's own c10d: ranks meet through a TCPStore, one
// ProcessGroupGloo holds them all, each rank trains on its shard of every batch, and the gradients are
// averaged with an allreduce before every step, which is what Python's DistributedDataParallel does.
// Starting the ranks, and naming one that is gone, is the launcher's (launcher.h).
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <torch/torch.h>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "common/checkpoint.h"
#include "common/compat.h"
#include "common/lesson.h"
#include "common/training.h"

namespace distributed {

inline constexpr int kMaxWorldSize = 8;

// What every rank must agree on, and what a checkpoint records: lesson 11's settings, the same file.
// batch_size is the global batch: each rank takes batch_size / world_size of it.
using common::checkpoint::Progress;
using common::checkpoint::Settings;

// A rank's view of the group: who it is, how many there are, and the process group itself.
struct Group {
  int rank = 0;
  int world_size = 1;
  std::vector<std::string> where;  // each rank's "host pid", to name a rank that is gone
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg;
};

// Meets the other ranks at addr:port and builds the process group. Rank 0 hosts the store. Everything
// listens on loopback when addr is 127.0.0.1; another address is how ranks on other machines meet.
inline Group join(int rank, int world_size, const std::string& addr, uint16_t port,
                  std::chrono::milliseconds timeout) {
  c10d::TCPStoreOptions store_options;
  store_options.port = port;
  store_options.isServer = rank == 0;
  store_options.numWorkers = world_size;
  store_options.waitWorkers = true;
  store_options.timeout = timeout;
  common::use_classic_tcp_store(store_options, 0);
  Group g;
  g.rank = rank;
  g.world_size = world_size;
  try {
    g.store = c10::make_intrusive<c10d::TCPStore>(addr, store_options);
  } catch (const std::exception& e) {
    throw std::runtime_error(
        fmt::format("rank {}: cannot {} the store at {}:{} ({}); is the port free, and rank 0 running?", rank,
                    rank == 0 ? "open" : "reach", addr, port, common::one_line_message(e)));
  }
  auto options = c10d::ProcessGroupGloo::Options::create(timeout);
  const bool loopback = addr == "127.0.0.1" || addr == "localhost";
  options->devices.push_back(loopback ? c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1")
                                      : c10d::ProcessGroupGloo::createDefaultDevice());
  g.pg = c10::make_intrusive<c10d::ProcessGroupGloo>(g.store, rank, world_size, options);
  // Each rank says where it runs, so that a survivor can name the rank it lost.
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  const std::string mine = fmt::format("{} {}", host, ::getpid());
  g.store->set(fmt::format("where/{}", rank), std::vector<uint8_t>(mine.begin(), mine.end()));
  for (int r = 0; r < world_size; ++r) {
    const auto bytes = g.store->get(fmt::format("where/{}", r));
    g.where.emplace_back(bytes.begin(), bytes.end());
  }
  return g;
}

// One tensor holding every parameter (or gradient) end to end: one collective instead of one per tensor,
// as DistributedDataParallel's buckets do.
inline torch::Tensor flat(const std::vector<torch::Tensor>& tensors) {
  std::vector<torch::Tensor> pieces;
  pieces.reserve(tensors.size());
  for (const auto& t : tensors) pieces.push_back(t.reshape(-1));
  return torch::cat(pieces);
}

inline void unflatten_into(const torch::Tensor& flat_values, const std::vector<torch::Tensor>& tensors) {
  torch::NoGradGuard no_grad;
  int64_t at = 0;
  for (const auto& t : tensors) {
    t.copy_(flat_values.slice(0, at, at + t.numel()).view_as(t));
    at += t.numel();
  }
}

inline torch::Tensor allreduce(Group& g, torch::Tensor t, c10d::ReduceOp op = c10d::ReduceOp::SUM) {
  std::vector<torch::Tensor> tensors{std::move(t)};
  c10d::AllreduceOptions options;
  options.reduceOp = op;
  g.pg->allreduce(tensors, options)->wait();
  return tensors[0];
}

// Rank 0's parameters, copied to every rank.
inline void broadcast_parameters(Group& g, torch::nn::Module& model) {
  const auto params = model.parameters();
  std::vector<torch::Tensor> tensors{flat(params)};
  c10d::BroadcastOptions options;
  options.rootRank = 0;
  g.pg->broadcast(tensors, options)->wait();
  unflatten_into(tensors[0], params);
}

// Rank 0's momentum buffers, progress and generator state, copied to every rank: with
// broadcast_parameters, the whole state a resumed run needs, read from rank 0's checkpoint by rank 0 alone.
inline void broadcast_progress(Group& g, torch::nn::Module& model, torch::optim::SGD& optimizer,
                               Progress& progress) {
  const auto params = model.parameters();
  std::vector<torch::Tensor> buffers;
  for (const auto& p : params) {
    auto b = g.rank == 0 ? common::sgd_momentum_buffer(optimizer, p) : torch::Tensor();
    buffers.push_back(b.defined() ? b.detach().clone() : torch::zeros_like(p).detach());
  }
  const auto state_bytes = at::detail::getDefaultCPUGenerator().get_state().numel();
  auto rng = g.rank == 0 ? progress.rng_state.to(torch::kLong) : torch::zeros({state_bytes}, torch::kLong);
  // One broadcast per dtype: a collective's tensors all have one.
  std::vector<torch::Tensor> floats{flat(buffers)};
  std::vector<torch::Tensor> integers{torch::cat({torch::tensor({progress.epoch, progress.step}), rng})};
  c10d::BroadcastOptions options;
  options.rootRank = 0;
  g.pg->broadcast(floats, options)->wait();
  g.pg->broadcast(integers, options)->wait();
  unflatten_into(floats[0], buffers);
  for (size_t i = 0; i < params.size(); ++i)
    common::set_sgd_momentum_buffer(optimizer, params[i], buffers[i]);
  progress.epoch = integers[0][0].item<int64_t>();
  progress.step = integers[0][1].item<int64_t>();
  progress.rng_state = integers[0].slice(0, 2).to(torch::kUInt8);
}

// Every rank's gradients summed, then divided by the number of ranks: each rank then holds the gradient of
// the whole batch's mean loss, as one process would compute it.
inline void average_gradients(Group& g, torch::nn::Module& model) {
  std::vector<torch::Tensor> grads;
  for (const auto& p : model.parameters()) grads.push_back(p.grad());
  auto summed = allreduce(g, flat(grads));
  unflatten_into(summed / g.world_size, grads);
}

// Whether every rank holds exactly these parameters, found through the group (elementwise maximum and
// minimum over the ranks agree), not assumed.
inline bool parameters_equal_everywhere(Group& g, torch::nn::Module& model) {
  const auto mine = flat(model.parameters()).detach();
  const auto high = allreduce(g, mine.clone(), c10d::ReduceOp::MAX);
  const auto low = allreduce(g, mine.clone(), c10d::ReduceOp::MIN);
  return torch::equal(high, low);
}

// Every rank learns whether all are; what one rank sees, all see.
inline bool all_agree(Group& g, bool mine) {
  auto flag = torch::tensor({mine ? int64_t{0} : int64_t{1}});
  return allreduce(g, flag).item<int64_t>() == 0;
}

// Rank `rank`'s part of a batch: contiguous, equal shards.
inline torch::Tensor shard(const torch::Tensor& batch_indices, int rank, int world_size) {
  const int64_t per_rank = batch_indices.size(0) / world_size;
  return batch_indices.slice(0, rank * per_rank, (rank + 1) * per_rank);
}

struct EpochResult {
  double loss = 0;      // mean over the steps run, all ranks
  double accuracy = 0;  // over the steps run, all ranks
  int64_t examples = 0;
};

// One epoch over `order`, from step first_step: each step takes the global batch's shard of this rank,
// backward, gradients averaged over the ranks (unless `average` is false, which only the tests do, to show
// the ranks then drift apart), step.
inline EpochResult train_epoch(Group& g, torch::nn::Sequential& model, torch::optim::SGD& optimizer,
                               const common::Dataset& data, const Settings& s, const torch::Tensor& order,
                               int64_t first_step, bool average = true) {
  auto totals = torch::zeros({3}, torch::kDouble);  // loss sum, correct, examples
  for (int64_t b = first_step; b < s.steps_per_epoch(); ++b) {
    auto idx = shard(order.slice(0, b * s.batch_size, (b + 1) * s.batch_size), g.rank, g.world_size);
    auto xb = data.X.index_select(0, idx);
    auto yb = data.y.index_select(0, idx);
    auto logits = model->forward(xb);
    auto loss = torch::nn::functional::cross_entropy(logits, yb);
    optimizer.zero_grad();
    loss.backward();
    if (average) average_gradients(g, *model);
    optimizer.step();
    totals[0] += loss.item<double>() * static_cast<double>(idx.size(0));
    totals[1] += logits.argmax(1).eq(yb).sum().item<double>();
    totals[2] += static_cast<double>(idx.size(0));
  }
  totals = allreduce(g, totals);
  const double examples = std::max(totals[2].item<double>(), 1.0);
  return {totals[0].item<double>() / examples, totals[1].item<double>() / examples,
          static_cast<int64_t>(totals[2].item<double>())};
}

// The options that must hold before any rank starts: one clear error instead of ranks failing one by one.
inline void check_settings(const Settings& s, int world_size, int rank, int master_port,
                           const common::Options& options) {
  if (!options.device.is_cpu())
    throw std::invalid_argument(
        fmt::format("--device {}: the ranks train on the CPU over Gloo; a GPU group needs NCCL "
                    "(ProcessGroupNCCL), which this "
                    "lesson does not build; run with --device cpu",
                    options.device.str()));
  if (rank >= world_size)
    throw std::invalid_argument(fmt::format("--rank {} is not below --world-size {}", rank, world_size));
  if (rank >= 0 && master_port == 0)
    throw std::invalid_argument(
        "--rank starts one rank by hand: pass the --master-port that rank 0 listens on");
  if (s.batch_size % world_size != 0)
    throw std::invalid_argument(
        fmt::format("--batch-size {} does not split evenly over {} ranks; pass a multiple of {}",
                    s.batch_size, world_size, world_size));
  // Every step takes a whole global batch, split evenly: a short last batch would leave a rank with less.
  if (s.examples % s.batch_size != 0) {
    const int64_t batches =
        std::max(s.examples / s.batch_size,
                 (common::checkpoint::kExamplesRange.min + s.batch_size - 1) / s.batch_size);
    throw std::invalid_argument(
        fmt::format("--examples {} is not a whole number of batches of {}; pass --examples {}", s.examples,
                    s.batch_size, batches * s.batch_size));
  }
}

}  // namespace distributed
