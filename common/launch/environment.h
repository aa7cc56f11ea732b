#pragma once
// Who this process is in a group of ranks: from its options, or from the launcher that started it. torchrun
// sets RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT, LOCAL_RANK and TORCHELASTIC_*; Slurm sets SLURM_PROCID,
// SLURM_NTASKS and SLURM_LOCALID, and its job's first host is the master unless MASTER_ADDR says another.
#include <string>

namespace common::launch {

inline constexpr int kMaxWorldSize = 8;

// Where the ranks meet: rank 0's address and port. Under torchrun the launcher's agent already hosts the
// store there: every rank is its client, under a prefix of its own for each restart, as Python's
// init_process_group does when torchrun sets TORCHELASTIC_USE_AGENT_STORE.
struct Meeting {
  std::string addr = "127.0.0.1";
  int port = 0;
  bool agent_store = false;
  int attempt = 0;  // torchrun's TORCHELASTIC_RESTART_COUNT
};

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

// The first host of a Slurm node list: "node[07-09,12],login1" gives "node07".
std::string first_slurm_host(const std::string& nodes);

// The launch the environment describes, overridden by the options; an option that contradicts the
// environment is an error naming both, since one of the two is a mistake.
Launch resolve_launch(const LaunchOptions& options);

}  // namespace common::launch
