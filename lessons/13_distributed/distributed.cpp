#include "lessons/13_distributed/distributed.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <stdexcept>

#include <fmt/format.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "common/compat.h"
#include "common/files/files.h"
#include "common/launch/rank_record.h"
#include "common/lesson/print.h"
#include "common/training/folder.h"
#include "common/weights/state_dict.h"

namespace distributed {

std::string local_address_towards(const std::string& addr, int port) {
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

Group join(int rank, int world_size, const Meeting& at, std::chrono::milliseconds timeout) {
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

torch::Tensor flat(const std::vector<torch::Tensor>& tensors) {
  std::vector<torch::Tensor> pieces;
  pieces.reserve(tensors.size());
  for (const auto& t : tensors) pieces.push_back(t.reshape(-1));
  return torch::cat(pieces);
}

void unflatten_into(const torch::Tensor& flat_values, const std::vector<torch::Tensor>& tensors) {
  torch::NoGradGuard no_grad;
  int64_t at = 0;
  for (const auto& t : tensors) {
    t.copy_(flat_values.slice(0, at, at + t.numel()).view_as(t));
    at += t.numel();
  }
}

torch::Tensor allreduce(Group& g, torch::Tensor t, c10d::ReduceOp op) {
  std::vector<torch::Tensor> tensors{std::move(t)};
  c10d::AllreduceOptions options;
  options.reduceOp = op;
  g.pg->allreduce(tensors, options)->wait();
  return tensors[0];
}

void broadcast_parameters(Group& g, torch::nn::Module& model) {
  const auto params = model.parameters();
  std::vector<torch::Tensor> tensors{flat(params)};
  c10d::BroadcastOptions options;
  options.rootRank = 0;
  g.pg->broadcast(tensors, options)->wait();
  unflatten_into(tensors[0], params);
}

void average_gradients(Group& g, torch::nn::Module& model) {
  std::vector<torch::Tensor> grads;
  for (const auto& p : model.parameters()) grads.push_back(p.grad());
  auto summed = allreduce(g, flat(grads));
  unflatten_into(summed / g.world_size, grads);
}

torch::Tensor shard(const torch::Tensor& batch_indices, int rank, int world_size) {
  const int64_t per_rank = batch_indices.size(0) / world_size;
  return batch_indices.slice(0, rank * per_rank, (rank + 1) * per_rank);
}

common::training::Hooks data_parallel(Group& g, torch::nn::Module& model, bool average) {
  common::training::Hooks hooks;
  hooks.take = [&g](const torch::Tensor& batch) { return shard(batch, g.rank, g.world_size); };
  if (average) hooks.after_backward = [&g, &model] { average_gradients(g, model); };
  hooks.sum = [&g](torch::Tensor sums) { return allreduce(g, std::move(sums)); };
  return hooks;
}

EpochReport train_epoch(Group& g, torch::nn::Sequential& model, torch::optim::SGD& optimizer,
                        const common::Dataset& data, const Settings& s, const torch::Tensor& order,
                        int64_t first_step, bool average) {
  Progress progress;
  return common::training::run_epoch(model, optimizer, data, s, 0, {order, first_step}, progress,
                                     data_parallel(g, *model, average));
}

namespace {

// Rank 0's momentum buffers, progress and generator state, copied to every rank: with
// broadcast_parameters, the whole state a resumed run needs, read from rank 0's checkpoint by rank 0 alone.
void broadcast_progress(Group& g, torch::nn::Module& model, torch::optim::SGD& optimizer,
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

// Every rank learns whether all are; what one rank sees, all see.
bool all_agree(Group& g, bool mine) {
  auto flag = torch::tensor({mine ? int64_t{0} : int64_t{1}});
  return allreduce(g, flag).item<int64_t>() == 0;
}

}  // namespace

bool parameters_equal_everywhere(Group& g, torch::nn::Module& model) {
  const auto mine = flat(model.parameters()).detach();
  const auto high = allreduce(g, mine.clone(), c10d::ReduceOp::MAX);
  const auto low = allreduce(g, mine.clone(), c10d::ReduceOp::MIN);
  return torch::equal(high, low);
}

Start resume(Group& g, const Options& options, torch::nn::Module& model, torch::optim::SGD& optimizer) {
  const auto checkpoint_dir = options.out_dir / "checkpoints";
  Start start;
  start.progress.rng_state = at::detail::getDefaultCPUGenerator().get_state();
  // A group that torchrun restarted after a failure resumes from rank 0's newest checkpoint, if any.
  const bool restarted = options.launch.meeting.attempt > 0;
  if (g.rank == 0 && (options.resume || (restarted && !common::checkpoint::list(checkpoint_dir).empty()))) {
    const auto resumed =
        common::checkpoint::resume(checkpoint_dir, model, optimizer, options.settings, common::print_warning);
    start.progress = resumed.loaded.progress;
    start.from = resumed.path.filename().string();
  }
  broadcast_parameters(g, model);
  broadcast_progress(g, model, optimizer, start.progress);
  at::Generator generator = at::detail::getDefaultCPUGenerator();
  generator.set_state(start.progress.rng_state);
  return start;
}

void train(Group& g, torch::nn::Sequential& model, torch::optim::SGD& optimizer, const common::Dataset& data,
           const Options& options, const Start& start, const OnEpoch& on_epoch) {
  const auto checkpoint_dir = options.out_dir / "checkpoints";
  auto hooks = data_parallel(g, *model);
  auto started = std::chrono::steady_clock::now();
  hooks.after_epoch = [&](const EpochReport& report, const Progress& next) {
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    const bool equal = parameters_equal_everywhere(g, *model);
    on_epoch(report, static_cast<double>(report.examples) / std::max(seconds, 1e-9), equal);
    if (!equal)
      throw std::runtime_error(
          fmt::format("rank {}: the ranks' parameters differ after epoch {}", g.rank, report.epoch + 1));
    if (g.rank == 0) {
      common::ensure_writable_dir(checkpoint_dir);
      common::checkpoint::save(checkpoint_dir / common::checkpoint::file_name(next.step), *model, optimizer,
                               next, options.settings);
    }
    // No rank runs ahead of the checkpoint it may resume from.
    all_agree(g, true);
    started = std::chrono::steady_clock::now();
  };
  // A run that has taken steps came from a checkpoint: its epoch's shuffle is drawn again, the steps done
  // skipped.
  const bool resumed = start.progress.step > 0;
  try {
    common::training::train(model, optimizer, data, options.settings, start.progress, resumed, hooks);
  } catch (const std::exception& e) {
    throw std::runtime_error(common::launch::explain_failure(g.rank, g.where, e));
  }
}

void save_from_rank0(const Group& g, const torch::nn::Module& model, const std::filesystem::path& path) {
  if (g.rank == 0) common::save_state_dict(model, path);
}

std::vector<std::string> how_to_launch(const Group& g, const Options& options) {
  if (g.rank != 0) return {};
  return {fmt::format("this run was started by {}",
                      options.launch.by.empty() ? "its own launcher (--world-size)" : options.launch.by),
          "alone:    build/bin/13_distributed --world-size 2",
          "torchrun: torchrun --nproc_per_node 2 --max_restarts 3 --no_python build/bin/13_distributed",
          "Slurm:    srun --ntasks 2 env MASTER_PORT=29500 build/bin/13_distributed"};
}

}  // namespace distributed
