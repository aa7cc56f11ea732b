// Lesson 13: the step past one machine. The notes end on GPUs "para lograr resultados con aceleraciones
// espectaculares"; when one device or one machine is not enough, PyTorch trains data-parallel across
// processes. This is that, with LibTorch's own c10d: a TCPStore to meet, ProcessGroupGloo to talk.
//   build/bin/13_distributed --world-size 2     starts 2 ranks on this machine, as torchrun does
//   build/bin/13_distributed --rank 1 --world-size 2 --master-addr HOST --master-port PORT   one rank by hand
#include <torch/torch.h>

#include "common/lesson/lesson.h"
#include "common/lesson/print.h"
#include "common/training/training.h"
#include "lessons/13_distributed/distributed.h"

int main(int argc, char** argv) try {
  // This rank's options; started alone, it starts every rank and ends with their status (options.cpp).
  const distributed::Options options(argc, argv);
  torch::manual_seed(options.seed);
  common::Lesson lesson(options);

  // %% Distribuido: qué es un grupo de procesos (solo C++)
  // Every rank runs this same program. They meet through a key-value store hosted by rank 0, then open
  // connections to one another: the process group, through which collectives (allreduce, broadcast) run.
  const auto& launch = options.launch;
  auto group = distributed::join(launch.rank, launch.world_size, launch.meeting, options.timeout);
  lesson.say("joined a {} group of {} ranks through the store at {}:{}{}", group.pg->getBackendName(),
             group.world_size, launch.meeting.addr, launch.meeting.port,
             launch.by.empty() ? "" : ", started by " + launch.by);

  // %% Distribuido: rango y tamaño del mundo (solo C++)
  lesson.show("rank", group.rank);
  lesson.show("world size", group.world_size);

  // %% Distribuido: allreduce de un tensor pequeño (solo C++)
  // Each rank brings [k + 1, 10 (k + 1)]; after the allreduce every rank holds the sum over all ranks.
  auto mine = torch::tensor({1.0F, 10.0F}) * static_cast<float>(group.rank + 1);
  lesson.say("before the allreduce: {}", common::format_tensor(mine));
  lesson.show("allreduce(SUM) of [k + 1, 10 (k + 1)]", distributed::allreduce(group, mine));

  // %% Distribuido: los parámetros iniciales de rank 0 para todos (solo C++)
  // Each rank initialises its own copy (seeded differently here, to see it); DistributedDataParallel then
  // broadcasts rank 0's, so that every rank starts from the same point. Rank 0's generator goes with them:
  // every rank then draws the same shuffle, the one lesson 11 draws from the same seed.
  torch::manual_seed(static_cast<uint64_t>(options.seed) + static_cast<uint64_t>(group.rank));
  auto model = common::make_mlp();
  auto optimizer = common::make_optimizer(model, options.settings.lr);
  lesson.show("parameters equal on every rank before the broadcast",
              distributed::parameters_equal_everywhere(group, *model));
  distributed::broadcast_parameters(group, *model);
  lesson.show("parameters equal on every rank after it",
              distributed::parameters_equal_everywhere(group, *model));

  // %% Distribuido: entrenar con gradientes promediados (solo C++)
  // Each step: this rank's shard of the global batch, backward, gradients averaged over the ranks, step.
  // Rank 0 writes a checkpoint after every epoch, in lesson 11's format; a resumed run reads it on rank 0
  // and broadcasts what it holds.
  const auto& settings = options.settings;
  const auto data = common::make_dataset(settings.examples, static_cast<uint64_t>(options.seed));
  const auto start = distributed::resume(group, options, *model, optimizer);
  if (!start.from.empty()) lesson.say("resumed from {}", start.from);
  if (start.progress.step > 0)
    lesson.say("resumed from rank 0's checkpoint: epoch {}, step {}", start.progress.epoch + 1,
               start.progress.step);
  std::vector<double> losses;
  double examples_per_second = 0;
  distributed::train(
      group, model, optimizer, data, options, start,
      [&](const distributed::EpochReport& r, double per_second, bool equal) {
        examples_per_second = per_second;
        lesson.say(
            "Epoch [{}/{}], Loss: {:.4f}, Accuracy: {:.3f}, {:.0f} examples/s, parameters equal "
            "on every rank: {}",
            r.epoch + 1, settings.epochs, r.loss, r.accuracy, per_second, equal);
        losses.push_back(r.loss);
      });
  lesson.show("loss per epoch", losses);
  lesson.show("examples per second, last epoch", examples_per_second);

  // %% Distribuido: los parámetros finales (solo C++)
  // Rank 0 writes them, in Python's torch.save format, through the same checked writer as lesson 11.
  distributed::save_from_rank0(group, *model, options.out_dir / "final.params");
  lesson.show("parameters equal on every rank at the end",
              distributed::parameters_equal_everywhere(group, *model));

  // %% Más allá del cuaderno: lanzar en un clúster (solo C++)
  // The same binary under the launchers clusters use. torchrun and Slurm say in the environment which rank
  // this process is (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT; SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID),
  // and it starts no ranks of its own; an option that contradicts them is an error. A group that torchrun
  // restarts after a failure (--max_restarts) resumes from rank 0's newest checkpoint.
  for (const auto& line : distributed::how_to_launch(group, options)) lesson.say("{}", line);

  return lesson.finish();
} catch (...) {
  return common::exit_status();
}
