#pragma once
// The launcher: starts the ranks on this machine, as torchrun does, waits for them, and names a rank that
// is gone. None of it is training; the lesson's training is distributed.h.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "common/files/files.h"
#include "common/lesson/lesson.h"
#include "common/lesson/print.h"
#include "common/training/checkpoint.h"
#include "lessons/13_distributed/distributed.h"

extern char** environ;  // NOLINT(readability-redundant-declaration): posix_spawn passes it on

namespace distributed {

namespace fs = std::filesystem;

// One rank's record in the store: "host pid address".
struct Where {
  std::string host, pid, address;
};
inline Where parse_where(const std::string& record) {
  Where w;
  std::istringstream(record) >> w.host >> w.pid >> w.address;
  return w;
}

// Whether a process of this host is gone (or a zombie not yet reaped).
inline bool process_gone(const std::string& pid) {
  std::error_code ec;
  if (!fs::exists("/proc/" + pid, ec)) return true;
  std::ifstream stat("/proc/" + pid + "/stat");
  std::string line;
  std::getline(stat, line);
  const auto close_paren = line.rfind(')');
  return close_paren != std::string::npos && line.size() > close_paren + 2 && line[close_paren + 2] == 'Z';
}

struct Lost {
  int rank = 0;
  std::string how;
};

// The ranks this one has lost. On its own host, those whose process is gone, waiting up to `patience` for
// them to disappear (a peer's socket closes as it dies, just before its process is gone). On another host,
// those whose address the failed collective's error names: Gloo reports the peer whose connection closed.
inline std::vector<Lost> lost_ranks(const Group& g, const std::string& error,
                                    std::chrono::milliseconds patience) {
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  const auto deadline = std::chrono::steady_clock::now() + patience;
  std::vector<Lost> lost;
  while (true) {
    lost.clear();
    for (int r = 0; r < static_cast<int>(g.where.size()); ++r) {
      const auto w = parse_where(g.where[static_cast<size_t>(r)]);
      if (r == g.rank || w.pid.empty()) continue;
      if (w.host == host) {
        if (process_gone(w.pid)) lost.push_back({r, "its process is gone"});
      } else if (!w.address.empty() && error.find("[" + w.address + "]") != std::string::npos) {
        lost.push_back({r, fmt::format("its connection from {} on {} closed", w.address, w.host)});
      }
    }
    if (!lost.empty() || std::chrono::steady_clock::now() > deadline) return lost;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

// What a rank says when a collective fails: which rank it lost, when it can tell.
inline std::string explain_failure(const Group& g, const std::exception& e) {
  const auto message = common::one_line_message(e);
  const auto lost = lost_ranks(g, e.what(), std::chrono::seconds(2));
  if (lost.empty()) return fmt::format("rank {}: {}", g.rank, message);
  std::vector<std::string> named;
  named.reserve(lost.size());
  for (const auto& l : lost) named.push_back(fmt::format("rank {} ({})", l.rank, l.how));
  return fmt::format("rank {}: lost {}, stopping: {}", g.rank, fmt::join(named, ", "), message);
}

// Who this process is in the group: from the options, or from the launcher that started it. torchrun sets
// RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT, LOCAL_RANK and TORCHELASTIC_*; Slurm sets SLURM_PROCID,
// SLURM_NTASKS and SLURM_LOCALID, and its job's first host is the master unless MASTER_ADDR says another.
struct Launch {
  int rank = -1;  // -1: this process is the launcher and starts every rank here
  int world_size = 2;
  int local_rank = 0;
  Meeting meeting;
  std::string by;  // "torchrun", "Slurm", or "" when the options say it all
};

// The options, and which of them the command line gave.
struct LaunchOptions {
  Launch values;
  bool rank_given = false, world_size_given = false, addr_given = false, port_given = false;
};

inline std::optional<std::string> environment(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr) return std::nullopt;
  return std::string(value);
}

inline int environment_int(const char* name, const std::string& text, int min, int max) {
  int value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || value < min || value > max)
    throw std::invalid_argument(fmt::format("{}={} in the environment is not a whole number from {} to {}",
                                            name, common::printable(text), min, max));
  return value;
}

// The first host of a Slurm node list: "node[07-09,12],login1" gives "node07".
inline std::string first_slurm_host(const std::string& nodes) {
  const auto bracket = nodes.find('[');
  const auto comma = nodes.find(',');
  if (bracket == std::string::npos || (comma != std::string::npos && comma < bracket))
    return nodes.substr(0, comma);
  const auto first = nodes.substr(bracket + 1, nodes.find_first_of("-,]", bracket + 1) - bracket - 1);
  return nodes.substr(0, bracket) + first;
}

// Whether text can be a host name or an IP address (letters, digits, '.', '-', '_', and for IPv6 ':', '%'
// and brackets), checked before c10d is given it: c10d writes an address it cannot resolve into its own
// log lines, control bytes and all.
inline bool host_like(const std::string& text) {
  return !text.empty() && text.size() <= 253 && std::all_of(text.begin(), text.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || std::strchr(".-_:%[]", c) != nullptr;
  });
}

// The launch the environment describes, overridden by the options; an option that contradicts the
// environment is an error naming both, since one of the two is a mistake.
inline Launch resolve_launch(const LaunchOptions& options) {
  Launch launch = options.values;
  const auto rank = environment("RANK");
  const auto world = environment("WORLD_SIZE");
  const auto slurm_rank = environment("SLURM_PROCID");
  const auto slurm_tasks = environment("SLURM_NTASKS");
  std::optional<int> env_rank, env_world;
  std::optional<std::string> env_addr = environment("MASTER_ADDR");
  std::optional<int> env_port;
  if (rank && world) {
    launch.by = "torchrun";
    env_rank = environment_int("RANK", *rank, 0, kMaxWorldSize - 1);
    env_world = environment_int("WORLD_SIZE", *world, 1, kMaxWorldSize);
    if (const auto local = environment("LOCAL_RANK"))
      launch.local_rank = environment_int("LOCAL_RANK", *local, 0, kMaxWorldSize - 1);
    launch.meeting.agent_store =
        environment("TORCHELASTIC_USE_AGENT_STORE") == std::optional<std::string>("True");
    if (const auto restarts = environment("TORCHELASTIC_RESTART_COUNT"))
      launch.meeting.attempt = environment_int("TORCHELASTIC_RESTART_COUNT", *restarts, 0, 1000000);
  } else if (slurm_rank && slurm_tasks) {
    launch.by = "Slurm";
    env_rank = environment_int("SLURM_PROCID", *slurm_rank, 0, kMaxWorldSize - 1);
    env_world = environment_int("SLURM_NTASKS", *slurm_tasks, 1, kMaxWorldSize);
    if (const auto local = environment("SLURM_LOCALID"))
      launch.local_rank = environment_int("SLURM_LOCALID", *local, 0, kMaxWorldSize - 1);
    if (!env_addr) {
      const auto nodes = environment("SLURM_JOB_NODELIST") ? environment("SLURM_JOB_NODELIST")
                                                           : environment("SLURM_NODELIST");
      if (nodes) env_addr = first_slurm_host(*nodes);
    }
    if (!environment("MASTER_PORT")) env_port = 29500;  // torchrun's default port
  } else {
    if (!host_like(launch.meeting.addr))
      throw std::invalid_argument(fmt::format("--master-addr {} is not a host name or an IP address",
                                              common::printable(launch.meeting.addr, 60)));
    return launch;
  }
  if (env_addr && !host_like(*env_addr))
    throw std::invalid_argument(
        fmt::format("MASTER_ADDR={} in the environment is not a host name or an IP address",
                    common::printable(*env_addr, 60)));
  if (const auto port = environment("MASTER_PORT"))
    env_port = environment_int("MASTER_PORT", *port, 1, 65535);
  const auto take = [&](const char* option, bool given, auto& value, const auto& from_env,
                        const char* variable) {
    if (!from_env) return;
    if (given && value != *from_env)
      throw std::invalid_argument(fmt::format("{} {} and {}={} from {} disagree; pass one or the other",
                                              option, value, variable, *from_env, launch.by));
    value = *from_env;
  };
  const char* rank_variable = launch.by == "Slurm" ? "SLURM_PROCID" : "RANK";
  const char* world_variable = launch.by == "Slurm" ? "SLURM_NTASKS" : "WORLD_SIZE";
  take("--rank", options.rank_given, launch.rank, env_rank, rank_variable);
  take("--world-size", options.world_size_given, launch.world_size, env_world, world_variable);
  take("--master-addr", options.addr_given, launch.meeting.addr, env_addr, "MASTER_ADDR");
  take("--master-port", options.port_given, launch.meeting.port, env_port, "MASTER_PORT");
  if (!host_like(launch.meeting.addr))
    throw std::invalid_argument(fmt::format("--master-addr {} is not a host name or an IP address",
                                            common::printable(launch.meeting.addr, 60)));
  if (launch.meeting.port == 0)
    throw std::invalid_argument(
        fmt::format("started by {} without MASTER_PORT: pass --master-port", launch.by));
  return launch;
}

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

// Writes text to stderr as it is, ignoring failure (as common::print_error does).
inline void pass_on(const std::string& text) noexcept {
  for (size_t at = 0; at < text.size();) {
    const ssize_t n = ::write(STDERR_FILENO, text.data() + at, text.size() - at);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    at += static_cast<size_t>(n);
  }
}

// How the ranks ended, and the "error: " lines they wrote, in the order they came.
struct Ended {
  std::vector<RankExit> exits;
  std::vector<std::string> errors;
};

// A rank's stderr, read as it comes: its warnings are passed on at once, its error lines kept for the one
// line the launcher prints, and anything else (LibTorch's own log) held back until the run has ended well,
// so that a refusal is one line.
class RankErrors {
 public:
  explicit RankErrors(int fd) : fd_(fd) {}
  // Reads what is there without waiting; at end, until the rank's end of the pipe is closed.
  void read(std::vector<std::string>& errors, bool until_closed) {
    char buffer[4096];
    while (fd_ >= 0) {
      const ssize_t n = ::read(fd_, buffer, sizeof buffer);
      if (n > 0) {
        pending_.append(buffer, static_cast<size_t>(n));
        for (size_t end = pending_.find('\n'); end != std::string::npos; end = pending_.find('\n')) {
          take(pending_.substr(0, end + 1), errors);
          pending_.erase(0, end + 1);
        }
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN && !until_closed) return;
      if (n < 0 && errno == EAGAIN) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        continue;
      }
      if (!pending_.empty()) take(pending_ + "\n", errors);
      pending_.clear();
      ::close(fd_);
      fd_ = -1;
    }
  }
  const std::string& held() const { return held_; }
  ~RankErrors() {
    if (fd_ >= 0) ::close(fd_);
  }
  RankErrors(const RankErrors&) = delete;
  RankErrors& operator=(const RankErrors&) = delete;

 private:
  void take(const std::string& line, std::vector<std::string>& errors) {
    if (line.rfind("error: ", 0) == 0) {
      errors.push_back(line.substr(0, line.size() - 1));
    } else if (line.rfind("warning: ", 0) == 0) {
      pass_on(line);
    } else {
      held_ += line;
    }
  }
  int fd_;
  std::string pending_, held_;
};

// Starts `world_size` copies of this program with `--rank k` added to args, waits for them all, and once one
// fails gives the others `grace` to stop on their own before killing them. Returns how each ended.
inline Ended launch(const std::string& self, std::vector<std::string> args, int world_size,
                    std::chrono::milliseconds grace) {
  std::vector<pid_t> pids;
  std::vector<std::unique_ptr<RankErrors>> stderrs;
  for (int rank = 0; rank < world_size; ++rank) {
    std::vector<std::string> argv{self};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.insert(argv.end(), {"--rank", std::to_string(rank)});
    std::vector<char*> cargv;
    cargv.reserve(argv.size() + 1);
    for (auto& a : argv) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) {
      for (const pid_t started : pids) ::kill(started, SIGKILL);
      throw std::runtime_error(fmt::format("cannot start rank {}: {}", rank, std::strerror(errno)));
    }
    ::fcntl(fds[0], F_SETFL, O_NONBLOCK);
    stderrs.push_back(std::make_unique<RankErrors>(fds[0]));
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDERR_FILENO);
    pid_t pid = 0;
    const int rc = posix_spawn(&pid, self.c_str(), &actions, nullptr, cargv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(fds[1]);
    if (rc != 0) {
      for (const pid_t started : pids) ::kill(started, SIGKILL);
      throw std::runtime_error(fmt::format("cannot start rank {}: {}", rank, std::strerror(rc)));
    }
    pids.push_back(pid);
  }
  Ended ended;
  auto& exits = ended.exits;
  exits.resize(pids.size());
  std::vector<bool> done(pids.size(), false);
  size_t remaining = pids.size();
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
  while (remaining > 0) {
    bool progressed = false;
    for (auto& errors : stderrs) errors->read(ended.errors, false);
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
      // What the rank wrote before it ended comes before what the others write after.
      stderrs[i]->read(ended.errors, true);
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
  const bool all_well =
      std::all_of(exits.begin(), exits.end(), [](const RankExit& e) { return e.exit_code == 0; });
  for (const auto& errors : stderrs)
    if (all_well) pass_on(errors->held());
  return ended;
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
  if (resume && common::checkpoint::list(options.out_dir / "checkpoints").empty())
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
  const auto ended = launch(fs::read_symlink("/proc/self/exe").string(), args, world_size,
                            timeout + std::chrono::seconds(5));
  // One line, the cause: a rank killed from outside, else the first rank's own error (the others' errors
  // follow from it: they lost that rank), else how the ranks ended.
  std::vector<std::string> killed, stopped;
  for (const auto& e : ended.exits) {
    if (e.signal != 0)
      killed.push_back(
          fmt::format("rank {} was killed by signal {} ({})", e.rank, e.signal, strsignal(e.signal)));
    else if (e.exit_code != 0)
      stopped.push_back(fmt::format("rank {} stopped with status {}", e.rank, e.exit_code));
  }
  if (killed.empty() && stopped.empty()) {
    cleanup.remove = false;
    fmt::print("13_distributed: all {} ranks finished\n", world_size);
    return 0;
  }
  // A rank that refuses closes its connections as it ends, before its error line is out; the others then
  // fail on those connections (Gloo's "Connection reset by peer", or "lost rank k" once they have looked),
  // and may say so first. Their lines follow from the cause: the first line that is not one of them is it.
  const auto follows = [](const std::string& line) {
    return line.find(": lost rank ") != std::string::npos || line.find("gloo") != std::string::npos ||
           line.find("Connection reset by peer") != std::string::npos ||
           line.find("Connection closed by peer") != std::string::npos;
  };
  auto cause =
      std::find_if(ended.errors.begin(), ended.errors.end(), [&](const auto& e) { return !follows(e); });
  if (cause == ended.errors.end()) cause = ended.errors.begin();
  const std::string first = cause == ended.errors.end() ? "" : cause->substr(7);
  if (!killed.empty()) {
    common::print_error(
        fmt::format("{}{}{}", fmt::join(killed, "; "), first.empty() ? "" : "; then ", first));
  } else {
    common::print_error(first.empty() ? fmt::format("{}", fmt::join(stopped, "; ")) : first);
  }
  return common::kExitBadInput;
}

}  // namespace distributed
