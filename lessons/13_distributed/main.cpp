// Lesson 13: the step past one machine. The notes end on GPUs "para lograr resultados con aceleraciones
// espectaculares"; when one device or one machine is not enough, PyTorch trains data-parallel across
// processes. This is that, with LibTorch's own c10d: a TCPStore to meet, ProcessGroupGloo to talk.
//   build/bin/13_distributed --world-size 2     starts 2 ranks on this machine, as torchrun does
//   build/bin/13_distributed --rank 1 --world-size 2 --master-addr HOST --master-port PORT   one rank by hand
#include <chrono>
#include <cstdio>

#include <torch/torch.h>
#include <CLI/CLI.hpp>

#include "common/lesson/lesson.h"
#include "common/lesson/print.h"
#include "common/training/training.h"
#include "common/weights/state_dict.h"
#include "lessons/13_distributed/distributed.h"
#include "lessons/13_distributed/launcher.h"

int main(int argc, char** argv) try {
  common::Options options("13_distributed", "Data-parallel training across processes with c10d and Gloo");
  distributed::Settings settings;
  settings.batch_size = 64;  // the global batch, split over the ranks
  distributed::LaunchOptions launch_options;
  auto& flags = launch_options.values;
  double timeout_s = 20;
  bool resume = false;
  auto& cli = options.cli();
  const auto* world_size_option =
      cli.add_option("--world-size", flags.world_size, "number of ranks (processes)")
          ->capture_default_str()
          ->check(CLI::Range(1, distributed::kMaxWorldSize));
  const auto* rank_option =
      cli.add_option("--rank", flags.rank,
                     "run one rank of a group started by hand (default: start them all here)")
          ->check(CLI::Range(0, distributed::kMaxWorldSize - 1));
  const auto* addr_option =
      cli.add_option("--master-addr", flags.meeting.addr, "where rank 0 listens (torchrun's MASTER_ADDR)")
          ->capture_default_str();
  const auto* port_option =
      cli.add_option("--master-port", flags.meeting.port,
                     "its port (MASTER_PORT; default: a free one, when all ranks start here)")
          ->check(CLI::Range(1, 65535));
  common::checkpoint::add_options(cli, settings, "global batch, split evenly over the ranks");
  cli.add_option("--timeout", timeout_s, "seconds a rank waits for the others before it gives up")
      ->capture_default_str()
      ->check(common::finite_range(1.0, 3600.0));
  cli.add_flag("--resume", resume, "continue from rank 0's newest checkpoint in --out-dir");
  options.parse(argc, argv);
  settings.seed = options.seed;
  launch_options.rank_given = rank_option->count() > 0;
  launch_options.world_size_given = world_size_option->count() > 0;
  launch_options.addr_given = addr_option->count() > 0;
  launch_options.port_given = port_option->count() > 0;
  // Started by torchrun or Slurm, the environment says who this rank is; alone, the options do.
  const auto launch = distributed::resolve_launch(launch_options);
  const int rank = launch.rank;
  const int world_size = launch.world_size;
  distributed::check_settings(settings, world_size, rank, launch.meeting.port, options);
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
  if (rank < 0)
    return distributed::start_all_ranks(options, settings, world_size, launch.meeting.addr,
                                        launch.meeting.port, timeout, resume);

  options.line_prefix = fmt::format("[rank {}] ", rank);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // whole lines, so that the ranks' lines do not mix
  if (rank > 0) options.out_dir /= fmt::format("rank-{}", rank);  // rank 0 writes the lesson's files
  common::Lesson lesson(options);

  // %% Distribuido: qué es un grupo de procesos (solo C++)
  // Every rank runs this same program. They meet through a key-value store hosted by rank 0, then open
  // connections to one another: the process group, through which collectives (allreduce, broadcast) run.
  auto group = distributed::join(rank, world_size, launch.meeting, timeout);
  lesson.say("joined a {} group of {} ranks through the store at {}:{}{}", group.pg->getBackendName(),
             world_size, launch.meeting.addr, launch.meeting.port,
             launch.by.empty() ? "" : ", started by " + launch.by);

  // %% Distribuido: rango y tamaño del mundo (solo C++)
  lesson.show("rank", group.rank);
  lesson.show("world size", group.world_size);

  // %% Distribuido: allreduce de un tensor pequeño (solo C++)
  // Each rank brings [k + 1, 10 (k + 1)]; after the allreduce every rank holds the sum over all ranks.
  auto mine = torch::tensor({1.0F, 10.0F}) * static_cast<float>(rank + 1);
  lesson.say("before the allreduce: {}", common::format_tensor(mine));
  lesson.show("allreduce(SUM) of [k + 1, 10 (k + 1)]", distributed::allreduce(group, mine));

  // %% Distribuido: los parámetros iniciales de rank 0 para todos (solo C++)
  // Each rank initialises its own copy (seeded differently here, to see it); DistributedDataParallel then
  // broadcasts rank 0's, so that every rank starts from the same point. Rank 0's generator goes with them:
  // every rank then draws the same shuffle, the one lesson 11 draws from the same seed.
  torch::manual_seed(static_cast<uint64_t>(options.seed) + static_cast<uint64_t>(rank));
  auto model = common::make_mlp();
  auto optimizer = common::make_optimizer(model, settings.lr);
  lesson.show("parameters equal on every rank before the broadcast",
              distributed::parameters_equal_everywhere(group, *model));
  distributed::broadcast_parameters(group, *model);
  lesson.show("parameters equal on every rank after it",
              distributed::parameters_equal_everywhere(group, *model));

  // %% Distribuido: entrenar con gradientes promediados (solo C++)
  // Each step: this rank's shard of the global batch, backward, gradients averaged over the ranks, step.
  // Rank 0 writes a checkpoint after every epoch, in lesson 11's format; a resumed run reads it on rank 0
  // and broadcasts what it holds.
  const auto data = common::make_dataset(settings.examples, static_cast<uint64_t>(options.seed));
  const auto checkpoint_dir = options.out_dir / "checkpoints";
  distributed::Progress progress;
  progress.rng_state = at::detail::getDefaultCPUGenerator().get_state();
  // A group that torchrun restarted after a failure resumes from rank 0's newest checkpoint, if any.
  const bool restarted = launch.meeting.attempt > 0;
  if (rank == 0 && (resume || (restarted && !common::checkpoint::list(checkpoint_dir).empty()))) {
    const auto resumed =
        common::checkpoint::resume(checkpoint_dir, *model, optimizer, settings, common::print_warning);
    progress = resumed.loaded.progress;
    lesson.say("resumed from {}", resumed.path.filename().string());
  }
  distributed::broadcast_parameters(group, *model);
  distributed::broadcast_progress(group, *model, optimizer, progress);
  at::Generator generator = at::detail::getDefaultCPUGenerator();
  generator.set_state(progress.rng_state);
  // A run that has taken steps came from a checkpoint: its epoch's shuffle is drawn again, the steps done
  // skipped.
  bool resumed_epoch = progress.step > 0;
  if (resumed_epoch)
    lesson.say("resumed from rank 0's checkpoint: epoch {}, step {}", progress.epoch + 1, progress.step);
  std::vector<double> losses;
  double examples_per_second = 0;
  try {
    for (int64_t epoch = progress.epoch; epoch < settings.epochs; ++epoch) {
      const auto started = std::chrono::steady_clock::now();
      const auto [order, first] = common::checkpoint::begin_epoch(progress, epoch, settings, resumed_epoch);
      resumed_epoch = false;
      const auto result = distributed::train_epoch(group, model, optimizer, data, settings, order, first);
      progress.step += settings.steps_per_epoch() - first;
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
      examples_per_second = static_cast<double>(result.examples) / std::max(seconds, 1e-9);
      const bool equal = distributed::parameters_equal_everywhere(group, *model);
      lesson.say(
          "Epoch [{}/{}], Loss: {:.4f}, Accuracy: {:.3f}, {:.0f} examples/s, parameters equal on every rank: "
          "{}",
          epoch + 1, settings.epochs, result.loss, result.accuracy, examples_per_second, equal);
      if (!equal)
        throw std::runtime_error(
            fmt::format("rank {}: the ranks' parameters differ after epoch {}", rank, epoch + 1));
      losses.push_back(result.loss);
      if (rank == 0) {
        common::ensure_writable_dir(checkpoint_dir);
        const distributed::Progress next{epoch + 1, progress.step, generator.get_state()};
        common::checkpoint::save(checkpoint_dir / common::checkpoint::file_name(progress.step), *model,
                                 optimizer, next, settings);
      }
      // No rank runs ahead of the checkpoint it may resume from.
      distributed::all_agree(group, true);
    }
  } catch (const std::exception& e) {
    throw std::runtime_error(distributed::explain_failure(group, e));
  }
  lesson.show("loss per epoch", losses);
  lesson.show("examples per second, last epoch", examples_per_second);

  // %% Distribuido: los parámetros finales (solo C++)
  // Rank 0 writes them, in Python's torch.save format, through the same checked writer as lesson 11.
  if (rank == 0) common::save_state_dict(*model, options.out_dir / "final.params");
  lesson.show("parameters equal on every rank at the end",
              distributed::parameters_equal_everywhere(group, *model));

  // %% Más allá del cuaderno: lanzar en un clúster (solo C++)
  // The same binary under the launchers clusters use. torchrun and Slurm say in the environment which rank
  // this process is (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT; SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID),
  // and it starts no ranks of its own; an option that contradicts them is an error. A group that torchrun
  // restarts after a failure (--max_restarts) resumes from rank 0's newest checkpoint.
  if (rank == 0) {
    lesson.say("this run was started by {}",
               launch.by.empty() ? "its own launcher (--world-size)" : launch.by);
    lesson.say("alone:    build/bin/13_distributed --world-size 2");
    lesson.say("torchrun: torchrun --nproc_per_node 2 --max_restarts 3 --no_python build/bin/13_distributed");
    lesson.say("Slurm:    srun --ntasks 2 env MASTER_PORT=29500 build/bin/13_distributed");
  }

  return lesson.finish();
} catch (...) {
  return common::exit_status();
}
