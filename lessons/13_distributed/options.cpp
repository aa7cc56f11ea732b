// Lesson 13's options, and who this process is: one rank of a group, or the launcher that starts them all.
#include <cstdio>
#include <cstdlib>
#include <stdexcept>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "common/training/options.h"
#include "lessons/13_distributed/distributed.h"
#include "lessons/13_distributed/launcher.h"

namespace distributed {

namespace {

// The options that must hold before any rank starts: one clear error instead of ranks failing one by one.
void check_settings(const Settings& s, int world_size, int rank, int master_port,
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
  // Every step takes a whole global batch, split evenly: a short last batch would leave a rank with less.
  if (s.examples % s.batch_size != 0) {
    const int64_t batches =
        std::max(s.examples / s.batch_size,
                 (common::checkpoint::kExamplesRange.min + s.batch_size - 1) / s.batch_size);
    throw std::invalid_argument(
        fmt::format("--examples {} is not a whole number of batches of {}; pass --examples {}", s.examples,
                    s.batch_size, batches * s.batch_size));
  }
}

}  // namespace

Options::Options(int argc, char** argv)
    : common::Options("13_distributed", "Data-parallel training across processes with c10d and Gloo") {
  settings.batch_size = 64;  // the global batch, split over the ranks
  common::launch::LaunchOptions given;
  auto& flags = given.values;
  double timeout_s = 20;
  auto& cli = this->cli();
  const auto* world_size_option =
      cli.add_option("--world-size", flags.world_size, "number of ranks (processes)")
          ->capture_default_str()
          ->check(CLI::Range(1, kMaxWorldSize));
  const auto* rank_option =
      cli.add_option("--rank", flags.rank,
                     "run one rank of a group started by hand (default: start them all here)")
          ->check(CLI::Range(0, kMaxWorldSize - 1));
  const auto* addr_option =
      cli.add_option("--master-addr", flags.meeting.addr, "where rank 0 listens (torchrun's MASTER_ADDR)")
          ->capture_default_str();
  const auto* port_option =
      cli.add_option("--master-port", flags.meeting.port,
                     "its port (MASTER_PORT; default: a free one, when all ranks start here)")
          ->check(CLI::Range(1, 65535));
  common::training::add_options(cli, settings, "global batch, split evenly over the ranks");
  cli.add_option("--timeout", timeout_s, "seconds a rank waits for the others before it gives up")
      ->capture_default_str()
      ->check(common::finite_range(1.0, 3600.0));
  cli.add_flag("--resume", resume, "continue from rank 0's newest checkpoint in --out-dir");
  parse(argc, argv);
  settings.seed = seed;
  given.rank_given = rank_option->count() > 0;
  given.world_size_given = world_size_option->count() > 0;
  given.addr_given = addr_option->count() > 0;
  given.port_given = port_option->count() > 0;
  arguments.assign(argv + 1, argv + argc);
  // Started by torchrun or Slurm, the environment says who this rank is; alone, the options do.
  launch = common::launch::resolve_launch(given);
  check_settings(settings, launch.world_size, launch.rank, launch.meeting.port, *this);
  timeout = std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
  if (launch.rank < 0) std::exit(start_all_ranks(*this));

  line_prefix = fmt::format("[rank {}] ", launch.rank);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // whole lines, so that the ranks' lines do not mix
  if (launch.rank > 0) out_dir /= fmt::format("rank-{}", launch.rank);  // rank 0 writes the lesson's files
}

}  // namespace distributed
