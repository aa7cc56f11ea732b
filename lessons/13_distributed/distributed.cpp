#include "lessons/13_distributed/distributed.h"

#include <algorithm>

#include "common/files/files.h"
#include "common/lesson/print.h"
#include "common/training/folder.h"
#include "common/weights/state_dict.h"

namespace distributed {

namespace {

// Rank 0's momentum buffers, progress and generator state, copied to every rank: with
// broadcast_parameters, the whole state a resumed run needs, read from rank 0's checkpoint by rank 0 alone.
void broadcast_progress(Group& g, torch::nn::Module& model, torch::optim::SGD& optimizer,
                        Progress& progress) {
  const auto params = model.parameters();
  std::vector<torch::Tensor> buffers;
  for (const auto& p : params) {
    auto b = g.rank == 0 ? common::sgd_momentum_buffer(optimizer, p) : torch::Tensor();
    buffers.push_back(b.defined() ? b.detach().clone() : torch::zeros_like(p).detach());
  }
  const auto state_bytes = at::detail::getDefaultCPUGenerator().get_state().numel();
  auto rng = g.rank == 0 ? progress.rng_state.to(torch::kLong) : torch::zeros({state_bytes}, torch::kLong);
  // One broadcast per dtype: a collective's tensors all have one.
  std::vector<torch::Tensor> floats{flat(buffers)};
  std::vector<torch::Tensor> integers{torch::cat({torch::tensor({progress.epoch, progress.step}), rng})};
  c10d::BroadcastOptions options;
  options.rootRank = 0;
  g.pg->broadcast(floats, options)->wait();
  g.pg->broadcast(integers, options)->wait();
  unflatten_into(floats[0], buffers);
  for (size_t i = 0; i < params.size(); ++i)
    common::set_sgd_momentum_buffer(optimizer, params[i], buffers[i]);
  progress.epoch = integers[0][0].item<int64_t>();
  progress.step = integers[0][1].item<int64_t>();
  progress.rng_state = integers[0].slice(0, 2).to(torch::kUInt8);
}

// Every rank learns whether all are; what one rank sees, all see.
bool all_agree(Group& g, bool mine) {
  auto flag = torch::tensor({mine ? int64_t{0} : int64_t{1}});
  return allreduce(g, flag).item<int64_t>() == 0;
}

}  // namespace

bool parameters_equal_everywhere(Group& g, torch::nn::Module& model) {
  const auto mine = flat(model.parameters()).detach();
  const auto high = allreduce(g, mine.clone(), c10d::ReduceOp::MAX);
  const auto low = allreduce(g, mine.clone(), c10d::ReduceOp::MIN);
  return torch::equal(high, low);
}

Start resume(Group& g, const Options& options, torch::nn::Module& model, torch::optim::SGD& optimizer) {
  const auto checkpoint_dir = options.out_dir / "checkpoints";
  Start start;
  start.progress.rng_state = at::detail::getDefaultCPUGenerator().get_state();
  // A group that torchrun restarted after a failure resumes from rank 0's newest checkpoint, if any.
  const bool restarted = options.launch.meeting.attempt > 0;
  if (g.rank == 0 && (options.resume || (restarted && !common::checkpoint::list(checkpoint_dir).empty()))) {
    const auto resumed =
        common::checkpoint::resume(checkpoint_dir, model, optimizer, options.settings, common::print_warning);
    start.progress = resumed.loaded.progress;
    start.from = resumed.path.filename().string();
  }
  broadcast_parameters(g, model);
  broadcast_progress(g, model, optimizer, start.progress);
  at::Generator generator = at::detail::getDefaultCPUGenerator();
  generator.set_state(start.progress.rng_state);
  return start;
}

void train(Group& g, torch::nn::Sequential& model, torch::optim::SGD& optimizer, const common::Dataset& data,
           const Options& options, const Start& start, const OnEpoch& on_epoch) {
  const auto checkpoint_dir = options.out_dir / "checkpoints";
  auto hooks = data_parallel(g, *model);
  auto started = std::chrono::steady_clock::now();
  hooks.after_epoch = [&](const EpochReport& report, const Progress& next) {
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    const bool equal = parameters_equal_everywhere(g, *model);
    on_epoch(report, static_cast<double>(report.examples) / std::max(seconds, 1e-9), equal);
    if (!equal)
      throw std::runtime_error(
          fmt::format("rank {}: the ranks' parameters differ after epoch {}", g.rank, report.epoch + 1));
    if (g.rank == 0) {
      common::ensure_writable_dir(checkpoint_dir);
      common::checkpoint::save(checkpoint_dir / common::checkpoint::file_name(next.step), *model, optimizer,
                               next, options.settings);
    }
    // No rank runs ahead of the checkpoint it may resume from.
    all_agree(g, true);
    started = std::chrono::steady_clock::now();
  };
  // A run that has taken steps came from a checkpoint: its epoch's shuffle is drawn again, the steps done
  // skipped.
  const bool resumed = start.progress.step > 0;
  try {
    common::training::train(model, optimizer, data, options.settings, start.progress, resumed, hooks);
  } catch (const std::exception& e) {
    throw std::runtime_error(common::launch::explain_failure(g.rank, g.where, e));
  }
}

void save_from_rank0(const Group& g, const torch::nn::Module& model, const std::filesystem::path& path) {
  if (g.rank == 0) common::save_state_dict(model, path);
}

std::vector<std::string> how_to_launch(const Group& g, const Options& options) {
  if (g.rank != 0) return {};
  return {fmt::format("this run was started by {}",
                      options.launch.by.empty() ? "its own launcher (--world-size)" : options.launch.by),
          "alone:    build/bin/13_distributed --world-size 2",
          "torchrun: torchrun --nproc_per_node 2 --max_restarts 3 --no_python build/bin/13_distributed",
          "Slurm:    srun --ntasks 2 env MASTER_PORT=29500 build/bin/13_distributed"};
}

}  // namespace distributed
