#pragma once
// The launcher: starts the ranks on this machine, as torchrun does, waits for them, and reports how they
// ended. None of it is training, nor c10d: the parts are common's (common/launch/).
#include "common/launch/ports.h"
#include "lessons/13_distributed/distributed.h"

namespace distributed {

using common::launch::free_port;

// Starts every rank here with the command line this process was given, plus --rank k and the port they
// meet at, waits for them, and reports. Returns main's status: 0 when every rank finished, kExitBadInput
// otherwise, after one "error: ..." line naming the ranks that failed and how.
int start_all_ranks(const Options& options);

}  // namespace distributed
