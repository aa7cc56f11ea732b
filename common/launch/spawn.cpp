#include "common/launch/spawn.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <thread>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "common/lesson/lesson.h"

extern char** environ;  // NOLINT(readability-redundant-declaration): posix_spawn passes it on

namespace common::launch {

namespace {

// Writes text to stderr as it is, ignoring failure (as common::print_error does).
void pass_on(const std::string& text) noexcept {
  for (size_t at = 0; at < text.size();) {
    const ssize_t n = ::write(STDERR_FILENO, text.data() + at, text.size() - at);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    at += static_cast<size_t>(n);
  }
}

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

// Starts rank `rank`, its stderr a pipe read into `stderrs`; on failure kills the ranks already started.
void start_rank(const std::string& self, const std::vector<std::string>& args, int rank,
                std::vector<pid_t>& pids, std::vector<std::unique_ptr<RankErrors>>& stderrs) {
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

}  // namespace

Ended run_ranks(const std::string& self, const std::vector<std::string>& args, int world_size,
                std::chrono::milliseconds grace) {
  std::vector<pid_t> pids;
  std::vector<std::unique_ptr<RankErrors>> stderrs;
  for (int rank = 0; rank < world_size; ++rank) start_rank(self, args, rank, pids, stderrs);
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

int report(const Ended& ended, const std::string& name, int world_size) {
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
    fmt::print("{}: all {} ranks finished\n", name, world_size);
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
    print_error(fmt::format("{}{}{}", fmt::join(killed, "; "), first.empty() ? "" : "; then ", first));
  } else {
    print_error(first.empty() ? fmt::format("{}", fmt::join(stopped, "; ")) : first);
  }
  return kExitBadInput;
}

}  // namespace common::launch
