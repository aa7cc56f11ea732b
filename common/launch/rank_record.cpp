#include "common/launch/rank_record.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "common/lesson/lesson.h"

namespace common::launch {

namespace {

struct Where {
  std::string host, pid, address;
};

Where parse(const std::string& record) {
  Where w;
  std::istringstream(record) >> w.host >> w.pid >> w.address;
  return w;
}

std::string this_host() {
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  return host;
}

// Whether a process of this host is gone (or a zombie not yet reaped).
bool process_gone(const std::string& pid) {
  std::error_code ec;
  if (!std::filesystem::exists("/proc/" + pid, ec)) return true;
  std::ifstream stat("/proc/" + pid + "/stat");
  std::string line;
  std::getline(stat, line);
  const auto close_paren = line.rfind(')');
  return close_paren != std::string::npos && line.size() > close_paren + 2 && line[close_paren + 2] == 'Z';
}

}  // namespace

std::string rank_record(const std::string& address) {
  return fmt::format("{} {} {}", this_host(), ::getpid(), address);
}

std::vector<Lost> lost_ranks(int rank, const std::vector<std::string>& records, const std::string& error,
                             std::chrono::milliseconds patience) {
  const auto host = this_host();
  const auto deadline = std::chrono::steady_clock::now() + patience;
  std::vector<Lost> lost;
  while (true) {
    lost.clear();
    for (int r = 0; r < static_cast<int>(records.size()); ++r) {
      const auto w = parse(records[static_cast<size_t>(r)]);
      if (r == rank || w.pid.empty()) continue;
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

std::string explain_failure(int rank, const std::vector<std::string>& records, const std::exception& e) {
  const auto message = one_line_message(e);
  const auto lost = lost_ranks(rank, records, e.what(), std::chrono::seconds(2));
  if (lost.empty()) return fmt::format("rank {}: {}", rank, message);
  std::vector<std::string> named;
  named.reserve(lost.size());
  for (const auto& l : lost) named.push_back(fmt::format("rank {} ({})", l.rank, l.how));
  return fmt::format("rank {}: lost {}, stopping: {}", rank, fmt::join(named, ", "), message);
}

}  // namespace common::launch
