#pragma once
// Data-parallel training across processes with LibTorch's own c10d: ranks meet through a TCPStore, one
// ProcessGroupGloo holds them all, each rank trains on its shard of every batch, and the gradients are
// averaged with an allreduce before every step, which is what Python's DistributedDataParallel does. The
// loop is lesson 11's (common/training/loop.h); the collectives come in through its hooks. Who this process
// is comes from options.cpp; starting the ranks is launcher.h's. What the tests call is defined here, the
// rest in distributed.cpp.
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <torch/torch.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "common/compat.h"
#include "common/launch/environment.h"
#include "common/launch/rank_record.h"
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
inline std::string local_address_towards(const std::string& addr, int port) {
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* found = nullptr;
  if (::getaddrinfo(addr.c_str(), std::to_string(port).c_str(), &hints, &found) != 0 || found == nullptr)
    throw std::runtime_error(fmt::format("cannot resolve the master address {}", addr));
  const int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in local{};
  socklen_t length = sizeof local;
  const bool ok = fd >= 0 && ::connect(fd, found->ai_addr, found->ai_addrlen) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &length) == 0;
  ::freeaddrinfo(found);
  if (fd >= 0) ::close(fd);
  char text[INET_ADDRSTRLEN] = {};
  if (!ok || ::inet_ntop(AF_INET, &local.sin_addr, text, sizeof text) == nullptr)
    throw std::runtime_error(fmt::format("no route from this host to the master address {}", addr));
  return text;
}

// Meets the other ranks and builds the process group. Rank 0 hosts the store unless torchrun's agent does.
// Everything listens on loopback when the address is 127.0.0.1; another address is how ranks on other
// machines meet.
inline Group join(int rank, int world_size, const Meeting& at, std::chrono::milliseconds timeout) {
  // A rank that dies closes its sockets, and Gloo and the store write to them without MSG_NOSIGNAL: the
  // survivor's next write would raise SIGPIPE and end it before it can name the rank it lost. Python
  // ignores SIGPIPE from its start, so Python ranks never meet this; a C++ rank must say so itself, and
  // torchrun starts its workers with the default disposition.
  struct sigaction ignore = {};
  ignore.sa_handler = SIG_IGN;
  ::sigaction(SIGPIPE, &ignore, nullptr);
  c10d::TCPStoreOptions store_options;
  store_options.port = static_cast<uint16_t>(at.port);
  store_options.isServer = rank == 0 && !at.agent_store;
  store_options.numWorkers = world_size;
  store_options.waitWorkers = !at.agent_store;
  store_options.timeout = timeout;
  common::use_classic_tcp_store(store_options, 0);
  Group g;
  g.rank = rank;
  g.world_size = world_size;
  try {
    auto store = c10::make_intrusive<c10d::TCPStore>(at.addr, store_options);
    g.store = at.agent_store
                  ? c10::static_intrusive_pointer_cast<c10d::Store>(c10::make_intrusive<c10d::PrefixStore>(
                        fmt::format("/worker/attempt_{}", at.attempt), store))
                  : c10::static_intrusive_pointer_cast<c10d::Store>(store);
  } catch (const std::exception& e) {
    throw std::runtime_error(
        fmt::format("rank {}: cannot {} the store at {}:{} ({}); is the port free, and {} running?", rank,
                    store_options.isServer ? "open" : "reach", at.addr, at.port, common::one_line_message(e),
                    at.agent_store ? "torchrun" : "rank 0"));
  }
  auto options = c10d::ProcessGroupGloo::Options::create(timeout);
  const auto address =
      is_loopback(at.addr) ? std::string("127.0.0.1") : local_address_towards(at.addr, at.port);
  options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(address));
  g.pg = c10::make_intrusive<c10d::ProcessGroupGloo>(g.store, rank, world_size, options);
  // Each rank says where it runs, so that a survivor can name the rank it lost.
  const std::string mine = common::launch::rank_record(address);
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

// Every rank's gradients summed, then divided by the number of ranks: each rank then holds the gradient of
// the whole batch's mean loss, as one process would compute it.
inline void average_gradients(Group& g, torch::nn::Module& model) {
  std::vector<torch::Tensor> grads;
  for (const auto& p : model.parameters()) grads.push_back(p.grad());
  auto summed = allreduce(g, flat(grads));
  unflatten_into(summed / g.world_size, grads);
}

// Rank `rank`'s part of a batch: contiguous, equal shards.
inline torch::Tensor shard(const torch::Tensor& batch_indices, int rank, int world_size) {
  const int64_t per_rank = batch_indices.size(0) / world_size;
  return batch_indices.slice(0, rank * per_rank, (rank + 1) * per_rank);
}

// The loop's hooks for data parallelism: this rank's shard of every batch, the gradients averaged over the
// ranks after backward (unless `average` is false, which only the tests do, to show the ranks then drift
// apart), and the epoch's sums over all ranks.
inline common::training::Hooks data_parallel(Group& g, torch::nn::Module& model, bool average = true) {
  common::training::Hooks hooks;
  hooks.take = [&g](const torch::Tensor& batch) { return shard(batch, g.rank, g.world_size); };
  if (average) hooks.after_backward = [&g, &model] { average_gradients(g, model); };
  hooks.sum = [&g](torch::Tensor sums) { return allreduce(g, std::move(sums)); };
  return hooks;
}

// One epoch over `order`, from step first_step, in the loop with data_parallel's hooks.
inline EpochReport train_epoch(Group& g, torch::nn::Sequential& model, torch::optim::SGD& optimizer,
                               const common::Dataset& data, const Settings& s, const torch::Tensor& order,
                               int64_t first_step, bool average = true) {
  Progress progress;
  return common::training::run_epoch(model, optimizer, data, s, 0, {order, first_step}, progress,
                                     data_parallel(g, *model, average));
}

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
