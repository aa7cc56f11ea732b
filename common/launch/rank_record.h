#pragma once
// One rank's record, "host pid address": each rank publishes its own when it joins, and keeps everyone's,
// so that a survivor can name the rank it lost, on its own host by its process and on another by the
// address whose connection closed. Written and read here alone.
#include <chrono>
#include <exception>
#include <string>
#include <vector>

namespace common::launch {

// This process's record, for the address its group listens on.
std::string rank_record(const std::string& address);

struct Lost {
  int rank = 0;
  std::string how;
};

// The ranks that rank `rank` has lost, from everyone's records. On its own host, those whose process is
// gone, waiting up to `patience` for them to disappear (a peer's socket closes as it dies, just before its
// process is gone). On another host, those whose address the failed collective's error names: Gloo reports
// the peer whose connection closed.
std::vector<Lost> lost_ranks(int rank, const std::vector<std::string>& records, const std::string& error,
                             std::chrono::milliseconds patience);

// What a rank says when a collective fails: which rank it lost, when it can tell.
std::string explain_failure(int rank, const std::vector<std::string>& records, const std::exception& e);

}  // namespace common::launch
