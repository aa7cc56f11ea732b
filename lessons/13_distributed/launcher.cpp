#include "lessons/13_distributed/launcher.h"

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "common/files/files.h"
#include "common/launch/spawn.h"
#include "common/training/folder.h"

namespace distributed {

namespace fs = std::filesystem;

namespace {

// Removes the output folder on the way out unless the run went well, when this run made it: a failed run
// leaves no new folder.
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
};

}  // namespace

int start_all_ranks(const Options& options) {
  int port = options.launch.meeting.port;
  if (port == 0) {
    port = common::launch::free_port();
  } else if (common::launch::port_in_use(static_cast<uint16_t>(port))) {
    throw std::runtime_error(fmt::format(
        "port {} on 127.0.0.1 is in use; pass another --master-port, or none to take a free one", port));
  }
  // The output folder is checked here, once, before any rank starts; a failed run leaves no new folder.
  std::error_code ec;
  const bool out_dir_is_new = !fs::exists(fs::symlink_status(options.out_dir, ec));
  common::ensure_writable_dir(options.out_dir);
  RemoveIfFailed cleanup{options.out_dir, out_dir_is_new};
  if (options.resume) common::checkpoint::require_some(options.out_dir / "checkpoints");
  // The ranks parse the very command line this process did; all they add is who they are, and the port
  // this process chose when none was given.
  auto args = options.arguments;
  if (options.launch.meeting.port == 0) args.insert(args.end(), {"--master-port", std::to_string(port)});
  const int world_size = options.launch.world_size;
  fmt::print("{}: starting {} ranks, meeting at {}:{}\n", options.name, world_size,
             options.launch.meeting.addr, port);
  std::fflush(stdout);
  // After a rank fails the others have their own timeout, plus a margin, to stop before they are killed.
  const auto ended = common::launch::run_ranks(fs::read_symlink("/proc/self/exe").string(), args, world_size,
                                               options.timeout + std::chrono::seconds(5));
  const int status = common::launch::report(ended, options.name, world_size);
  cleanup.remove = out_dir_is_new && status != 0;
  return status;
}

}  // namespace distributed
