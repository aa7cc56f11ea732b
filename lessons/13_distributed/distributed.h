#pragma once
// Data-parallel training across processes with LibTorch's own c10d: ranks meet through a TCPStore, one
// ProcessGroupGloo holds them all, each rank trains on its shard of every batch, and the gradients are
// averaged with an allreduce before every step, which is what Python's DistributedDataParallel does.
// Starting the ranks, and naming one that is gone, is the launcher's (launcher.h).
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <torch/torch.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "common/compat.h"
#include "common/lesson/lesson.h"
#include "common/training/checkpoint.h"
#include "common/training/training.h"

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
  std::vector<std::string> where;  // each rank's "host pid address", to name a rank that is gone
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg;
};

// Where the ranks meet: rank 0's address and port. Under torchrun the launcher's agent already hosts the
// store there: every rank is its client, under a prefix of its own for each restart, as Python's
// init_process_group does when torchrun sets TORCHELASTIC_USE_AGENT_STORE.
struct Meeting {
  std::string addr = "127.0.0.1";
  int port = 0;
  bool agent_store = false;
  int attempt = 0;  // torchrun's TORCHELASTIC_RESTART_COUNT
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
  // Each rank says where it runs (host, process, address), so that a survivor can name the rank it lost,
  // on its own host by its process and on another by the address whose connection closed.
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  const std::string mine = fmt::format("{} {} {}", host, ::getpid(), address);
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
