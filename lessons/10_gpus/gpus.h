#pragma once
// GPUs: devices, tensors and models on them, and what the speed-up really is, measured honestly.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <vector>

#include <torch/torch.h>
#include <CLI/CLI.hpp>

#include "common/lesson/options.h"

namespace gpus {

// The lesson's options: the common ones and the size of the speed table.
struct Options : common::Options {
  Options(int argc, char** argv)
      : common::Options("10_gpus", "GPUs: devices, data and models on them, and the speed-up measured") {
    cli()
        .add_option("--max-n", max_n, "largest matrix side in the speed table")
        ->check(CLI::Range(64, 16384));
    parse(argc, argv);
  }
  int64_t max_n = 512;
};

// Waits for the device's queued work: CUDA kernels run asynchronously, so a clock read without this
// measures how fast work was queued, not how fast it ran.
inline void synchronize(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.index());
}

// Median wall time of fn in milliseconds, over `reps` timed runs after `warmup` untimed ones (the first
// runs pay for allocation, kernel loading and caches), synchronizing the device around each.
inline double median_ms(const torch::Device& device, const std::function<void()>& fn, int reps = 5,
                        int warmup = 2) {
  for (int i = 0; i < warmup; ++i) fn();
  synchronize(device);
  std::vector<double> times;
  for (int i = 0; i < reps; ++i) {
    const auto start = std::chrono::steady_clock::now();
    fn();
    synchronize(device);
    times.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  std::nth_element(times.begin(), times.begin() + reps / 2, times.end());
  return times[reps / 2];
}

struct MatmulTiming {
  int64_t n = 0;
  double ms = 0;
  double gflops = 0;
};

// An n x n by n x n float32 product on the device: 2 n^3 floating-point operations.
inline MatmulTiming time_matmul(const torch::Device& device, int64_t n, int reps = 5) {
  auto a = torch::rand({n, n}, device);
  auto b = torch::rand({n, n}, device);
  auto c = torch::empty({n, n}, device);
  const double ms = median_ms(
      device, [&] { torch::mm_out(c, a, b); }, reps);
  return {n, ms, 2.0 * static_cast<double>(n * n * n) / (ms * 1e6)};
}

// Reading `count` elements one .item() at a time (each a device-to-host copy and, on a GPU, a
// synchronisation) against copying them to the CPU once.
struct TransferTiming {
  double per_item_ms = 0;
  double one_copy_ms = 0;
};

inline TransferTiming time_transfers(const torch::Device& device, int64_t count) {
  auto x = torch::rand({count}, device);
  TransferTiming t;
  t.per_item_ms = median_ms(device, [&] {
    double sum = 0;
    for (int64_t i = 0; i < count; ++i) sum += x[i].item<double>();
    (void)sum;
  });
  t.one_copy_ms = median_ms(device, [&] {
    auto cpu = x.to(torch::kCPU);
    (void)cpu.sum().item<double>();
  });
  return t;
}

// The notes' MLP, Linear(20, 256), ReLU, Linear(256, 10), as a Sequential (data_parallel replicates it).
inline torch::nn::Sequential make_mlp() {
  torch::nn::Linear hidden(20, 256);
  torch::nn::Linear out(256, 10);
  return torch::nn::Sequential(hidden, torch::nn::ReLU(), out);
}

}  // namespace gpus
