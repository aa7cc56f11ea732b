#pragma once
// Starting ranks on this machine, as torchrun does: copies of this program, each told its rank, waited for,
// and, when one fails, reported as one line naming the cause.
#include <chrono>
#include <string>
#include <vector>

namespace common::launch {

struct RankExit {
  int rank = 0;
  int exit_code = -1;  // -1: ended by a signal
  int signal = 0;
};

// How the ranks ended, and the "error: " lines they wrote, in the order they came.
struct Ended {
  std::vector<RankExit> exits;
  std::vector<std::string> errors;
};

// Starts `world_size` copies of the program `self` with `--rank k` added to args, waits for them all, and
// once one fails gives the others `grace` to stop on their own before killing them. Their warnings are
// passed on as they come; LibTorch's own log is held back and passed on only when every rank finished.
Ended run_ranks(const std::string& self, const std::vector<std::string>& args, int world_size,
                std::chrono::milliseconds grace);

// Reports how the ranks ended: "NAME: all N ranks finished" and 0, or one "error: ..." line naming the
// cause and kExitBadInput.
int report(const Ended& ended, const std::string& name, int world_size);

}  // namespace common::launch
