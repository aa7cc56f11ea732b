// Lesson 10: GPUs, which the notes introduce as "el aprovechamiento de las GPU para lograr resultados
// con aceleraciones espectaculares" ("Modelos Personalizados en PyTorch", introduction).
#include <fmt/ranges.h>
#include <torch/torch.h>

#include "common/compute/parallel.h"
#include "common/lesson/device.h"
#include "common/lesson/lesson.h"
#include "common/lesson/print.h"
#include "lessons/10_gpus/gpus.h"

int main(int argc, char** argv) try {
  const gpus::Options options(argc, argv);
  torch::manual_seed(options.seed);
  common::Lesson lesson(options);

  // %% GPUs: qué dispositivos hay (solo C++)
  const bool has_cuda = torch::cuda::is_available();
  lesson.say("torch::cuda::is_available(): {}, device_count(): {}", has_cuda,
             has_cuda ? torch::cuda::device_count() : 0);
  lesson.say("try_gpu(): {}, try_gpu(10): {} (no such GPU: the CPU)", common::try_gpu().str(),
             common::try_gpu(10).str());
  std::vector<std::string> all;
  for (const auto& d : common::try_all_gpus()) all.push_back(d.str());
  lesson.say("try_all_gpus(): {}", fmt::join(all, ", "));
  if (!has_cuda)
    lesson.say("No GPU was found: the lesson runs its CPU half and says where the GPU half would be.");

  // %% GPUs: tensores en un dispositivo (solo C++)
  auto X = torch::ones({2, 3}, options.device);
  lesson.say("X = ones({{2, 3}}, {}) lives on {}", options.device.str(), X.device().str());
  auto Y = torch::rand({2, 3}, common::try_gpu(1));
  lesson.say("Y = rand({{2, 3}}, try_gpu(1)) lives on {}", Y.device().str());
  // .to() the device a tensor is already on is free: it returns the very same tensor, no copy.
  auto same = X.to(options.device);
  lesson.say("X.to({}) is X itself (no copy): {}", options.device.str(), same.is_same(X));
  auto on_cpu = X.to(torch::kCPU);
  lesson.say("X.to(cpu) is {}", on_cpu.is_same(X) ? "X itself" : "a copy on the CPU");
  if (Y.device() != X.device()) {
    try {
      auto mixed = X + Y;
      lesson.say("X + Y worked?! {}", common::format_tensor(mixed));
    } catch (const c10::Error& e) {
      // LibTorch never moves data behind your back: operands must share a device.
      lesson.say("X + Y across devices fails, as it should:\n  {}", common::one_line_message(e));
    }
    lesson.say("X + Y.to(X.device()) works: {}", common::format_tensor(X + Y.to(X.device())));
  } else {
    lesson.say("X and Y are on the same device here, so X + Y works; with two devices it would fail with");
    lesson.say("  \"Expected all tensors to be on the same device\" until one of them is moved with .to().");
  }

  // %% GPUs: un modelo en el dispositivo (solo C++)
  auto net = torch::nn::Sequential(torch::nn::Linear(3, 1));
  net->to(options.device);
  auto out = net->forward(X);
  lesson.say("net(X) = {} on {}", common::format_tensor(out), out.device().str());
  lesson.say("net[0].weight lives on {}", net->ptr<torch::nn::LinearImpl>(0)->weight.device().str());

  // %% GPUs: la aceleración, medida (solo C++)
  const bool gpu = common::try_gpu().is_cuda();
  lesson.say("{:>6} {:>11} {:>11} {:>11} {:>11} {:>9}", "n", "CPU ms", "CPU GFLOP/s", "GPU ms", "GPU GFLOP/s",
             "speed-up");
  std::vector<double> sides, cpu_gflops, gpu_gflops;
  for (int64_t n = 64; n <= options.max_n; n *= 2) {
    const auto cpu = gpus::time_matmul(torch::kCPU, n);
    sides.push_back(static_cast<double>(n));
    cpu_gflops.push_back(cpu.gflops);
    if (gpu) {
      const auto cuda = gpus::time_matmul(common::try_gpu(), n);
      gpu_gflops.push_back(cuda.gflops);
      lesson.say("{:>6} {:>11.3f} {:>11.1f} {:>11.3f} {:>11.1f} {:>8.1f}x", n, cpu.ms, cpu.gflops, cuda.ms,
                 cuda.gflops, cpu.ms / cuda.ms);
    } else {
      lesson.say("{:>6} {:>11.3f} {:>11.1f} {:>11} {:>11} {:>9}", n, cpu.ms, cpu.gflops, "-", "-", "no GPU");
    }
  }
  // Recorded for the companion page, which draws them as a chart when there are GPU numbers.
  lesson.show("matrix side n", sides);
  lesson.show("CPU GFLOP/s", cpu_gflops);
  if (gpu) lesson.show("GPU GFLOP/s", gpu_gflops);
  const auto transfers = gpus::time_transfers(options.device, 1000);
  lesson.say("reading 1000 numbers from {}: one .item() each {:.3f} ms, one copy {:.3f} ms ({:.0f}x)",
             options.device.str(), transfers.per_item_ms, transfers.one_copy_ms,
             transfers.per_item_ms / transfers.one_copy_ms);

  // %% GPUs: más de una GPU con data_parallel (solo C++)
  const auto gpus_here = common::try_all_gpus();
  if (gpus_here.size() > 1) {
    auto mlp = gpus::make_mlp();
    mlp->to(gpus_here[0]);
    auto input = torch::rand({64, 20}, gpus_here[0]);
    auto single = mlp->forward(input);
    // Splits the batch over the GPUs, runs a replica on each, gathers the pieces on the first.
    auto parallel = common::data_parallel(mlp, input, gpus_here);
    lesson.say("data_parallel over {} GPUs equals one GPU's output (atol 1e-6): {}", gpus_here.size(),
               torch::allclose(parallel, single, 1e-5, 1e-6));
  } else {
    lesson.say("{} here: data_parallel needs two GPUs or more, so this part is skipped.",
               gpu ? "One GPU" : "No GPU");
  }

  return lesson.finish();
} catch (...) {
  return common::exit_status();
}
