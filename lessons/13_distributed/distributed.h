#pragma once
// Data-parallel training across processes with LibTorch's own c10d: ranks meet through a TCPStore, one
// ProcessGroupGloo holds them all, each rank trains on its shard of every batch, and the gradients are
// averaged with an allreduce before every step, which is what Python's DistributedDataParallel does.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/torch.h>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "common/compat.h"
#include "common/files.h"
#include "common/lesson.h"
#include "common/serialize.h"
#include "common/training.h"

extern char** environ;  // NOLINT(readability-redundant-declaration): posix_spawn passes it on

namespace distributed {

namespace fs = std::filesystem;

inline constexpr int kMaxWorldSize = 8;

// What every rank must agree on; a checkpoint records it.
struct Settings {
  int64_t epochs = 3;
  int64_t batch_size = 64;  // the global batch: each rank takes batch_size / world_size of it
  int64_t examples = 2048;
  int64_t seed = 0;
  double lr = 0.05;
};

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

// The ranks on this machine whose process is gone (or a zombie not yet reaped), waiting up to `patience`
// for them to disappear: a peer's socket closes as it dies, just before its process is gone.
inline std::vector<int> lost_ranks(const Group& g, std::chrono::milliseconds patience) {
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  const auto deadline = std::chrono::steady_clock::now() + patience;
  std::vector<int> lost;
  while (true) {
    lost.clear();
    for (int r = 0; r < static_cast<int>(g.where.size()); ++r) {
      const auto space = g.where[r].rfind(' ');
      if (r == g.rank || space == std::string::npos || g.where[r].substr(0, space) != host) continue;
      const std::string pid = g.where[r].substr(space + 1);
      std::error_code ec;
      const bool running = fs::exists("/proc/" + pid, ec);
      std::string stat;
      if (running) {
        std::FILE* f = std::fopen(("/proc/" + pid + "/stat").c_str(), "r");
        if (f != nullptr) {
          char buffer[512] = {};
          stat.assign(buffer, std::fread(buffer, 1, sizeof buffer - 1, f));
          std::fclose(f);
        }
      }
      const auto close_paren = stat.rfind(')');
      const bool zombie =
          close_paren != std::string::npos && stat.size() > close_paren + 2 && stat[close_paren + 2] == 'Z';
      if (!running || zombie) lost.push_back(r);
    }
    if (!lost.empty() || std::chrono::steady_clock::now() > deadline) return lost;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
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

// Rank 0's momentum buffers and epoch count, copied to every rank: with broadcast_parameters, the whole
// state a resumed run needs, read from rank 0's checkpoint by rank 0 alone.
inline int64_t broadcast_optimizer_state(Group& g, torch::nn::Module& model, torch::optim::SGD& optimizer,
                                         int64_t epochs_done) {
  const auto params = model.parameters();
  std::vector<torch::Tensor> buffers;
  for (const auto& p : params) {
    auto b = g.rank == 0 ? common::sgd_momentum_buffer(optimizer, p) : torch::Tensor();
    buffers.push_back(b.defined() ? b.detach().clone() : torch::zeros_like(p).detach());
  }
  auto packed = torch::cat({flat(buffers), torch::tensor({static_cast<float>(epochs_done)})});
  std::vector<torch::Tensor> tensors{packed};
  c10d::BroadcastOptions options;
  options.rootRank = 0;
  g.pg->broadcast(tensors, options)->wait();
  unflatten_into(tensors[0].slice(0, 0, tensors[0].numel() - 1), buffers);
  for (size_t i = 0; i < params.size(); ++i)
    common::set_sgd_momentum_buffer(optimizer, params[i], buffers[i]);
  return static_cast<int64_t>(tensors[0][-1].item<float>());
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

// The shuffle of an epoch, from the seed and the epoch alone: every rank draws the same order, and a
// resumed run draws it again without any generator state in the checkpoint.
inline torch::Tensor epoch_order(int64_t examples, int64_t seed, int64_t epoch) {
  auto gen =
      at::detail::createCPUGenerator(static_cast<uint64_t>(seed) * 1000003ULL + static_cast<uint64_t>(epoch));
  return torch::randperm(examples, gen, torch::kLong);
}

struct EpochResult {
  double loss = 0;      // mean over the whole epoch, all ranks
  double accuracy = 0;  // over the whole epoch, all ranks
  int64_t examples = 0;
};

// One epoch: each step takes the global batch's shard of this rank, backward, gradients averaged over the
// ranks (unless `average` is false, which only the tests do, to show the ranks then drift apart), step.
inline EpochResult train_epoch(Group& g, torch::nn::Sequential& model, torch::optim::SGD& optimizer,
                               const common::Dataset& data, const Settings& s, int64_t epoch,
                               bool average = true) {
  const auto order = epoch_order(s.examples, s.seed, epoch);
  const int64_t steps = s.examples / s.batch_size;
  auto totals = torch::zeros({3}, torch::kDouble);  // loss sum, correct, examples
  for (int64_t b = 0; b < steps; ++b) {
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
  return {totals[0].item<double>() / totals[2].item<double>(),
          totals[1].item<double>() / totals[2].item<double>(),
          static_cast<int64_t>(totals[2].item<double>())};
}

// ---- Checkpoints: written by rank 0 at the end of an epoch, read by every rank on --resume.

inline std::string checkpoint_name(int64_t epoch) { return fmt::format("epoch-{:04d}.pt", epoch); }

inline c10::Dict<std::string, int64_t> settings_record(const Settings& s) {
  c10::Dict<std::string, int64_t> d;
  d.insert("epochs", s.epochs);
  d.insert("batch_size", s.batch_size);
  d.insert("examples", s.examples);
  d.insert("seed", s.seed);
  return d;
}

// Model parameters, momentum buffers and the number of epochs done, in Python's torch.save format
// (torch.load(path, weights_only=True) opens it), through the suite's checked atomic writer.
inline void save_checkpoint(const fs::path& dir, torch::nn::Module& model, torch::optim::SGD& optimizer,
                            int64_t epochs_done, const Settings& s) {
  common::ensure_writable_dir(dir);
  const auto path = dir / checkpoint_name(epochs_done);
  c10::impl::GenericDict checkpoint(c10::StringType::get(), c10::AnyType::get());
  c10::Dict<std::string, torch::Tensor> params;
  for (const auto& p : model.named_parameters()) params.insert(p.key(), p.value().detach());
  c10::List<torch::Tensor> momentum;
  for (const auto& p : model.parameters()) {
    auto buffer = common::sgd_momentum_buffer(optimizer, p);
    momentum.push_back(buffer.defined() ? buffer : torch::zeros_like(p));
  }
  checkpoint.insert("model", params);
  checkpoint.insert("momentum_buffer", momentum);
  checkpoint.insert("epochs_done", epochs_done);
  checkpoint.insert("settings", settings_record(s));
  checkpoint.insert("lr", s.lr);
  common::save_for_python(checkpoint, path);
}

// Reads a checkpoint as data, checks it against the model and the run's settings, and only then loads it.
// Returns the number of epochs done.
inline int64_t load_checkpoint(const fs::path& path, torch::nn::Module& model, torch::optim::SGD& optimizer,
                               const Settings& s) {
  const auto value = common::read_value(path);
  if (!value.isGenericDict()) throw std::runtime_error(fmt::format("{}: not a checkpoint", path.string()));
  const auto dict = value.toGenericDict();
  const auto field = [&](const char* key) {
    if (!dict.contains(key))
      throw std::runtime_error(fmt::format("{}: no '{}' in the checkpoint", path.string(), key));
    return dict.at(key);
  };
  const int64_t epochs_done = field("epochs_done").toInt();
  if (epochs_done < 1 || epochs_done > s.epochs)
    throw std::runtime_error(
        fmt::format("{}: {} epochs done does not fit a run of {}", path.string(), epochs_done, s.epochs));
  const auto recorded = field("settings").toGenericDict();
  for (const auto& entry : settings_record(s)) {
    const auto& key = entry.key();
    const int64_t mine = entry.value();
    if (key == "epochs") continue;  // a longer run may continue a shorter one
    if (!recorded.contains(key) || recorded.at(key).toInt() != mine)
      throw std::runtime_error(fmt::format("{}: made with --{} {}, this run has {}", path.string(), key,
                                           recorded.contains(key) ? recorded.at(key).toInt() : -1, mine));
  }
  common::StateDict params;
  for (const auto& entry : field("model").toGenericDict()) {
    params.emplace_back(entry.key().toStringRef(), entry.value().toTensor());
  }
  const auto momentum = field("momentum_buffer").toList();
  const auto model_params = model.parameters();
  if (momentum.size() != model_params.size())
    throw std::runtime_error(fmt::format("{}: {} momentum buffers for {} parameters", path.string(),
                                         momentum.size(), model_params.size()));
  for (size_t i = 0; i < momentum.size(); ++i) {
    const auto buffer = momentum.get(i).toTensor();
    if (buffer.sizes() != model_params[i].sizes())
      throw std::runtime_error(fmt::format("{}: momentum buffer {} has the wrong shape", path.string(), i));
  }
  common::load_state_dict(model, params, path.string());
  for (size_t i = 0; i < momentum.size(); ++i) {
    common::set_sgd_momentum_buffer(optimizer, model_params[i],
                                    momentum.get(i).toTensor().clone(at::MemoryFormat::Contiguous));
  }
  return epochs_done;
}

// The newest checkpoint in dir, or an empty path.
inline fs::path newest_checkpoint(const fs::path& dir) {
  fs::path newest;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const auto name = it->path().filename().string();
    if (name.rfind("epoch-", 0) == 0 && name.size() == 13 && name.substr(10) == ".pt" &&
        (newest.empty() || name > newest.filename().string()))
      newest = it->path();
  }
  return newest;
}

// Rank 0's side of --resume: the newest checkpoint, checked and loaded. Returns the epochs it had done.
inline int64_t load_newest(const fs::path& dir, torch::nn::Module& model, torch::optim::SGD& optimizer,
                           const Settings& s) {
  const auto path = newest_checkpoint(dir);
  if (path.empty())
    throw std::runtime_error(
        fmt::format("--resume: no checkpoint in {}; run without --resume to start training", dir.string()));
  return load_checkpoint(path, model, optimizer, s);
}

// What a rank says when a collective fails: which rank it lost, when it can tell.
inline std::string explain_failure(const Group& g, const std::exception& e) {
  const auto lost = lost_ranks(g, std::chrono::seconds(2));
  if (lost.empty()) return fmt::format("rank {}: {}", g.rank, common::one_line_message(e));
  return fmt::format("rank {}: lost rank {} (its process is gone), stopping: {}", g.rank,
                     fmt::join(lost, ", "), common::one_line_message(e));
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
  if (s.examples < s.batch_size)
    throw std::invalid_argument(
        fmt::format("--examples {} is fewer than one batch of {}", s.examples, s.batch_size));
}

// ---- The launcher: starts the ranks on this machine, as torchrun does.

// A TCP socket bound to 127.0.0.1:port (0: a port the kernel picks), or -1 with errno set.
inline int bind_loopback(uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    const int error = errno;
    ::close(fd);
    errno = error;
    return -1;
  }
  return fd;
}

// A port nobody listens on right now, on 127.0.0.1 (the kernel picks it).
inline uint16_t free_port() {
  const int fd = bind_loopback(0);
  sockaddr_in addr{};
  socklen_t len = sizeof addr;
  const bool ok = fd >= 0 && ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0;
  const int error = errno;
  if (fd >= 0) ::close(fd);
  if (!ok) throw std::runtime_error(fmt::format("cannot find a free port: {}", std::strerror(error)));
  return ntohs(addr.sin_port);
}

// Whether something already holds 127.0.0.1:port.
inline bool port_in_use(uint16_t port) {
  const int fd = bind_loopback(port);
  if (fd >= 0) {
    ::close(fd);
    return false;
  }
  return errno == EADDRINUSE;
}

struct RankExit {
  int rank = 0;
  int exit_code = -1;  // -1: ended by a signal
  int signal = 0;
};

// Starts `world_size` copies of this program with `--rank k` added to args, waits for them all, and once one
// fails gives the others `grace` to stop on their own before killing them. Returns how each ended.
inline std::vector<RankExit> launch(const std::string& self, std::vector<std::string> args, int world_size,
                                    std::chrono::milliseconds grace) {
  std::vector<pid_t> pids;
  for (int rank = 0; rank < world_size; ++rank) {
    std::vector<std::string> argv{self};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.insert(argv.end(), {"--rank", std::to_string(rank)});
    std::vector<char*> cargv;
    cargv.reserve(argv.size() + 1);
    for (auto& a : argv) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    pid_t pid = 0;
    const int rc = posix_spawn(&pid, self.c_str(), nullptr, nullptr, cargv.data(), environ);
    if (rc != 0) {
      for (const pid_t started : pids) ::kill(started, SIGKILL);
      throw std::runtime_error(fmt::format("cannot start rank {}: {}", rank, std::strerror(rc)));
    }
    pids.push_back(pid);
  }
  std::vector<RankExit> exits(pids.size());
  std::vector<bool> done(pids.size(), false);
  size_t remaining = pids.size();
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
  while (remaining > 0) {
    bool progressed = false;
    for (size_t i = 0; i < pids.size(); ++i) {
      if (done[i]) continue;
      int status = 0;
      const pid_t r = ::waitpid(pids[i], &status, WNOHANG);
      if (r != pids[i]) continue;
      done[i] = true;
      --remaining;
      progressed = true;
      exits[i].rank = static_cast<int>(i);
      if (WIFEXITED(status)) exits[i].exit_code = WEXITSTATUS(status);
      if (WIFSIGNALED(status)) exits[i].signal = WTERMSIG(status);
      if (exits[i].exit_code != 0 && deadline == std::chrono::steady_clock::time_point::max())
        deadline = std::chrono::steady_clock::now() + grace;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      for (size_t i = 0; i < pids.size(); ++i) {
        if (!done[i]) ::kill(pids[i], SIGKILL);
      }
    }
    if (!progressed) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return exits;
}

// Starts every rank here, waits for them, and reports. Returns main's status: 0 when every rank finished,
// kExitBadInput otherwise, after one "error: ..." line naming the ranks that failed and how.
inline int start_all_ranks(const common::Options& options, const Settings& s, int world_size,
                           const std::string& master_addr, int master_port, std::chrono::milliseconds timeout,
                           bool resume) {
  if (master_port == 0) {
    master_port = free_port();
  } else if (port_in_use(static_cast<uint16_t>(master_port))) {
    throw std::runtime_error(
        fmt::format("port {} on 127.0.0.1 is in use; pass another --master-port, or none to take a free one",
                    master_port));
  }
  // The output folder is checked here, once, before any rank starts; a failed run leaves no new folder.
  std::error_code ec;
  const bool out_dir_is_new = !fs::exists(fs::symlink_status(options.out_dir, ec));
  common::ensure_writable_dir(options.out_dir);
  struct RemoveIfFailed {
    const fs::path& dir;
    bool remove;
    ~RemoveIfFailed() {
      if (remove) {
        try {
          common::remove_empty_folders(dir);
        } catch (...) {  // NOLINT(bugprone-empty-catch): nothing more to report on the way out
        }
      }
    }
  } cleanup{options.out_dir, out_dir_is_new};
  if (resume && newest_checkpoint(options.out_dir / "checkpoints").empty())
    throw std::runtime_error(
        fmt::format("--resume: no checkpoint in {}; run without --resume to start training",
                    (options.out_dir / "checkpoints").string()));
  std::vector<std::string> args{
      "--world-size",  std::to_string(world_size),
      "--master-addr", master_addr,
      "--master-port", std::to_string(master_port),
      "--out-dir",     options.out_dir.string(),
      "--seed",        std::to_string(s.seed),
      "--epochs",      std::to_string(s.epochs),
      "--batch-size",  std::to_string(s.batch_size),
      "--examples",    std::to_string(s.examples),
      "--lr",          fmt::format("{}", s.lr),
      "--timeout",     fmt::format("{}", std::chrono::duration<double>(timeout).count()),
      "--device",      "cpu"};
  if (resume) args.emplace_back("--resume");
  fmt::print("13_distributed: starting {} ranks, meeting at {}:{}\n", world_size, master_addr, master_port);
  std::fflush(stdout);
  // After a rank fails the others have their own timeout, plus a margin, to stop before they are killed.
  const auto exits = launch(fs::read_symlink("/proc/self/exe").string(), args, world_size,
                            timeout + std::chrono::seconds(5));
  // The ranks that were killed first: the others stopped because of them.
  std::vector<std::string> failed;
  for (const auto& e : exits) {
    if (e.signal != 0)
      failed.push_back(
          fmt::format("rank {} was killed by signal {} ({})", e.rank, e.signal, strsignal(e.signal)));
  }
  for (const auto& e : exits) {
    if (e.signal == 0 && e.exit_code != 0)
      failed.push_back(fmt::format("rank {} stopped with status {}", e.rank, e.exit_code));
  }
  if (failed.empty()) {
    cleanup.remove = false;
    fmt::print("13_distributed: all {} ranks finished\n", world_size);
    return 0;
  }
  common::print_error(fmt::format("{}", fmt::join(failed, "; ")));
  return common::kExitBadInput;
}

}  // namespace distributed
