// Per-call cost of the lessons' models, the floor any LibTorch code pays for the same MLP, how cost grows
// with the batch, and state-dict save/load against raw file I/O. Single-threaded, like the Python side
// (scripts/bench/bench_python.py); scripts/bench-vs-python runs both and prints one table.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>

#include <torch/serialize.h>
#include <torch/torch.h>

#include "common/files/files.h"
#include "common/safetensors/safetensors.h"
#include "common/weights/state_dict.h"
#include "lessons/01_blocks/blocks.h"
#include "lessons/02_my_sequential/my_sequential.h"
#include "lessons/03_fixed_hidden_mlp/fixed_hidden_mlp.h"
#include "lessons/05_my_linear/my_linear.h"
#include "lessons/09_file_io/file_io.h"
#ifdef MP_EXPORT_DIR
#include "lessons/14_export/export.h"
#include "lessons/14_export/packages.h"
#endif

namespace {

// Floating-point operations of one call of the MLP 20 -> hidden -> 10 on a batch.
double mlp_flops(int64_t batch, int64_t hidden_units) {
  const auto b = static_cast<double>(batch);
  const auto h = static_cast<double>(hidden_units);
  return 2.0 * b * (20.0 * h + h * 10.0);
}

// Reports the rate of `flops` per iteration as the row's GFLOP/s.
void count_flops(benchmark::State& state, double flops) {
  state.counters["GFLOP/s"] =
      benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}

// Runs fn(X) per iteration; range(0) == 1 under c10::InferenceMode, else in grad mode (the default).
template <typename Fn>
void run_model(benchmark::State& state, torch::Tensor X, Fn&& fn) {
  const bool inference = state.range(0) == 1;
  state.SetLabel(inference ? "inference" : "grad");
  std::optional<c10::InferenceMode> guard;
  if (inference) {
    guard.emplace();
    X = X.clone();  // an inference tensor, as the inputs of inference-mode code are
  }
  for (auto _ : state) benchmark::DoNotOptimize(fn(X));
}

void BM_SequentialMLP(benchmark::State& state) {
  auto net = blocks::make_sequential_mlp();
  run_model(state, torch::rand({2, 20}), [&](const torch::Tensor& X) { return net->forward(X); });
}

void BM_CustomMLP(benchmark::State& state) {
  blocks::MLP net;
  run_model(state, torch::rand({2, 20}), [&](const torch::Tensor& X) { return net(X); });
}

void BM_MySequential(benchmark::State& state) {
  auto net = my_sequential::make_mlp();
  run_model(state, torch::rand({2, 20}), [&](const torch::Tensor& X) { return net(X); });
}

void BM_MyLinearNet(benchmark::State& state) {
  auto net = my_linear::make_net();
  run_model(state, torch::rand({2, 64}), [&](const torch::Tensor& X) { return net->forward(X); });
}

// Lesson 03's model and input drawn from seed 0, as bench_python.py draws them, so that both sides halve
// the same number of times (the "halvings" counter).
fixed_hidden_mlp::FixedHiddenMLP seeded_fixed_hidden_mlp() {
  torch::manual_seed(0);
  return {};
}
struct SeededFixedHiddenMLP {
  fixed_hidden_mlp::FixedHiddenMLP net = seeded_fixed_hidden_mlp();  // members are built in this order
  torch::Tensor X = torch::rand({2, 20});
};

// How many times the notes' loop halves: the least k with |X|.sum() / 2^k <= 1, on one read of the sum.
int halvings_for(float abs_sum) {
  int k = 0;
  for (; abs_sum > 1; ++k) abs_sum /= 2;
  return k;
}

torch::Tensor hidden_part(fixed_hidden_mlp::FixedHiddenMLPImpl& net, torch::Tensor X) {
  X = net.linear(X);
  X = torch::relu(torch::mm(X, net.rand_weight) + 1);
  return net.linear(X);
}

// The lesson's forward: the notebook's while loop, one read of the sum per test.
void BM_FixedHiddenMLP(benchmark::State& state) {
  SeededFixedHiddenMLP m;
  {
    torch::NoGradGuard no_grad;
    state.counters["halvings"] = halvings_for(hidden_part(*m.net, m.X).abs().sum().item<float>());
  }
  run_model(state, m.X, [&](const torch::Tensor& X) { return m.net(X); });
}

// The computed-scale form lesson 03's README names: one read of the sum, outside autograd, and one
// multiplication by 2^-k. The same bits as the loop, because halving is exact in floating point.
void BM_FixedHiddenMLPScaled(benchmark::State& state) {
  SeededFixedHiddenMLP m;
  run_model(state, m.X, [&](const torch::Tensor& input) {
    auto X = hidden_part(*m.net, input);
    int k = 0;
    {
      torch::NoGradGuard no_grad;
      k = halvings_for(X.abs().sum().item<float>());
    }
    if (k > 0) X = X * std::ldexp(1.0, -k);
    return X.sum();
  });
}

// Lesson 03's floor: the computed-scale form as ATen calls into preallocated outputs, the weight
// transposed once; only the two scalars (the sum read back, the result) are allocated.
void BM_FixedHiddenFloor(benchmark::State& state) {
  c10::InferenceMode guard;
  SeededFixedHiddenMLP m;
  const auto X = m.X.clone();
  const auto Wt = m.net->linear->weight.t().contiguous();
  const auto b = m.net->linear->bias.clone();
  const auto R = m.net->rand_weight.clone();
  auto H1 = torch::empty({2, 20});
  auto H2 = torch::empty({2, 20});
  auto H3 = torch::empty({2, 20});
  auto A = torch::empty({2, 20});
  for (auto _ : state) {
    at::addmm_out(H1, b, X, Wt);
    at::mm_out(H2, H1, R).add_(1).relu_();
    at::addmm_out(H3, b, H2, Wt);
    const int k = halvings_for(at::abs_out(A, H3).sum().item<float>());
    if (k > 0) H3.mul_(std::ldexp(1.0, -k));
    benchmark::DoNotOptimize(H3.sum());
  }
}

// The floor: the same MLP as direct ATen calls into preallocated outputs, no modules, no allocation.
void BM_Floor(benchmark::State& state) {
  c10::InferenceMode guard;
  const int64_t batch = state.range(0);
  const int64_t hidden_units = state.range(1);
  auto X = torch::rand({batch, 20});
  auto W1 = torch::rand({hidden_units, 20}).t().contiguous();
  auto b1 = torch::rand({hidden_units});
  auto W2 = torch::rand({10, hidden_units}).t().contiguous();
  auto b2 = torch::rand({10});
  auto H = torch::empty({batch, hidden_units});
  auto Y = torch::empty({batch, 10});
  for (auto _ : state) {
    at::addmm_out(H, b1, X, W1);
    H.relu_();
    at::addmm_out(Y, b2, H, W2);
    benchmark::DoNotOptimize(Y.data_ptr());
  }
  count_flops(state, mlp_flops(batch, hidden_units));
}

// The floor of the same operations as the notes' MLP makes: the weights as nn::Linear keeps them, [out, in],
// multiplied through their transposed view, and an out-of-place ReLU, into preallocated outputs. What the
// MLP costs above it is allocation and LibTorch's per-call work; what BM_Floor costs below it is the
// arithmetic done another way (weights copied transposed, ReLU in place), which the model would have to
// change to get.
void BM_FloorSameOps(benchmark::State& state) {
  c10::InferenceMode guard;
  const int64_t batch = state.range(0);
  const int64_t hidden_units = state.range(1);
  auto X = torch::rand({batch, 20});
  auto W1 = torch::rand({hidden_units, 20});
  auto b1 = torch::rand({hidden_units});
  auto W2 = torch::rand({10, hidden_units});
  auto b2 = torch::rand({10});
  auto H = torch::empty({batch, hidden_units});
  auto R = torch::empty({batch, hidden_units});
  auto Y = torch::empty({batch, 10});
  for (auto _ : state) {
    at::addmm_out(H, b1, X, W1.t());
    at::clamp_min_out(R, H, 0);
    at::addmm_out(Y, b2, R, W2.t());
    benchmark::DoNotOptimize(Y.data_ptr());
  }
}

// The notes' MLP (nn::Sequential) under inference mode, by batch size and hidden width.
void BM_MLPBatch(benchmark::State& state) {
  c10::InferenceMode guard;
  const int64_t batch = state.range(0);
  const int64_t hidden_units = state.range(1);
  torch::nn::Linear hidden(20, hidden_units);
  torch::nn::Linear out(hidden_units, 10);
  torch::nn::Sequential net(hidden, torch::nn::ReLU(), out);
  auto X = torch::rand({batch, 20});
  for (auto _ : state) benchmark::DoNotOptimize(net->forward(X));
  count_flops(state, mlp_flops(batch, hidden_units));
}

// The same three modules called one after the other, without nn::Sequential: what remains of the small
// batches' cost above the floor, less Sequential's type-erased forwarding through AnyModule.
void BM_MLPChained(benchmark::State& state) {
  c10::InferenceMode guard;
  const int64_t batch = state.range(0);
  const int64_t hidden_units = state.range(1);
  torch::nn::Linear hidden(20, hidden_units);
  torch::nn::ReLU relu;
  torch::nn::Linear out(hidden_units, 10);
  auto X = torch::rand({batch, 20});
  for (auto _ : state) benchmark::DoNotOptimize(out->forward(relu->forward(hidden->forward(X))));
}

// Lesson 09's MLP (the C++ frontend class that lesson 14 compares the package with), inference mode.
void BM_FileIoMLP(benchmark::State& state) {
  c10::InferenceMode guard;
  file_io::MLP net;
  auto X = torch::rand({state.range(0), 20});
  for (auto _ : state) benchmark::DoNotOptimize(net(X));
}

#ifdef MP_EXPORT_DIR
// The same MLP as lesson 14's AOTInductor package, run through AOTIModelPackageLoader.
void BM_ExportPackage(benchmark::State& state) {
  export_lesson::Package package(std::filesystem::path(MP_EXPORT_DIR) / "mlp.pt2", MP_MLP_PACKAGE_SHA1);
  const std::vector<torch::Tensor> inputs{torch::rand({state.range(0), 20})};
  for (auto _ : state) benchmark::DoNotOptimize(package.run(inputs));
}
BENCHMARK(BM_ExportPackage)->Arg(2)->Arg(256);
#endif

// What this machine's BLAS reaches on one large single-precision product.
void BM_MatmulThroughput(benchmark::State& state) {
  c10::InferenceMode guard;
  const int64_t n = state.range(0);
  auto a = torch::rand({n, n});
  auto b = torch::rand({n, n});
  auto c = torch::empty({n, n});
  for (auto _ : state) at::mm_out(c, a, b);
  count_flops(state, 2.0 * std::pow(static_cast<double>(n), 3));
}

// About 100 million float32 parameters in 10 tensors.
struct BigModel : torch::nn::Module {
  BigModel() {
    for (int i = 0; i < 10; ++i) register_parameter("w" + std::to_string(i), torch::rand({1000, 10000}));
  }
};

std::filesystem::path bench_dir() {
  auto dir = std::filesystem::temp_directory_path() / ("mp-bench-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  return dir;
}

using PathStep = std::function<void(const std::filesystem::path&)>;

// Times `io` on the file `name` in a folder of its own, after `prepare` when there is one, counting the
// module's 400 MB per iteration; the folder goes afterwards.
void time_file_io(benchmark::State& state, const char* name, const PathStep& prepare, const PathStep& io) {
  const auto path = bench_dir() / name;
  if (prepare) prepare(path);
  for (auto _ : state) io(path);
  state.SetBytesProcessed(state.iterations() * 400'000'000LL);
  std::filesystem::remove_all(path.parent_path());
}

void save_safetensors(const BigModel& model, const std::filesystem::path& path) {
  common::safetensors::save_file(common::state_dict(model), path);
}

void BM_SaveStateDict(benchmark::State& state) {
  BigModel model;
  time_file_io(state, "big.params", nullptr, [&](const auto& path) { common::save_state_dict(model, path); });
}

void BM_LoadStateDict(benchmark::State& state) {
  BigModel model;
  time_file_io(
      state, "big.params", [&](const auto& path) { common::save_state_dict(model, path); },
      [&](const auto& path) { common::load_state_dict(model, path); });
}

// The same module in safetensors, written as Python's save_file writes it and read back into the module.
void BM_SaveSafetensors(benchmark::State& state) {
  BigModel model;
  time_file_io(state, "big.safetensors", nullptr, [&](const auto& path) { save_safetensors(model, path); });
}

void BM_LoadSafetensors(benchmark::State& state) {
  BigModel model;
  time_file_io(
      state, "big.safetensors", [&](const auto& path) { save_safetensors(model, path); },
      [&](const auto& path) { common::load_state_dict(model, path); });
}

// LibTorch's own torch::load of the same tensors in its own format: no strictness, no CRC, and it runs
// TorchScript from the file.
void BM_TorchLoad(benchmark::State& state) {
  auto model = std::make_shared<BigModel>();
  time_file_io(
      state, "big.params", [&](const auto& path) { torch::save(model, path.string()); },
      [&](const auto& path) { torch::load(model, path.string()); });
}

// The same bytes written (and synced, as save_state_dict does) and read back with plain file I/O.
void BM_RawWrite(benchmark::State& state) {
  BigModel model;
  const auto path = bench_dir() / "raw.bin";
  for (auto _ : state) {
    std::ofstream out(path, std::ios::binary);
    for (const auto& p : model.parameters()) {
      out.write(static_cast<const char*>(p.data_ptr()), static_cast<std::streamsize>(p.nbytes()));
    }
    out.close();
    const int fd = ::open(path.c_str(), O_RDONLY);
    ::fsync(fd);
    ::close(fd);
  }
  state.SetBytesProcessed(state.iterations() * 400'000'000LL);
  std::filesystem::remove_all(path.parent_path());
}

void BM_RawRead(benchmark::State& state) {
  BigModel model;
  const auto path = bench_dir() / "raw.bin";
  {
    std::ofstream out(path, std::ios::binary);
    for (const auto& p : model.parameters())
      out.write(static_cast<const char*>(p.data_ptr()), static_cast<std::streamsize>(p.nbytes()));
  }
  for (auto _ : state) {
    std::ifstream in(path, std::ios::binary);
    for (const auto& p : model.parameters())
      in.read(static_cast<char*>(p.data_ptr()), static_cast<std::streamsize>(p.nbytes()));
  }
  state.SetBytesProcessed(state.iterations() * 400'000'000LL);
  std::filesystem::remove_all(path.parent_path());
}

}  // namespace

BENCHMARK(BM_SequentialMLP)->Arg(0)->Arg(1);
BENCHMARK(BM_CustomMLP)->Arg(0)->Arg(1);
BENCHMARK(BM_MySequential)->Arg(0)->Arg(1);
BENCHMARK(BM_MyLinearNet)->Arg(0)->Arg(1);
BENCHMARK(BM_FixedHiddenMLP)->Arg(0)->Arg(1);
BENCHMARK(BM_FixedHiddenMLPScaled)->Arg(0)->Arg(1);
BENCHMARK(BM_FixedHiddenFloor);
BENCHMARK(BM_Floor)->ArgsProduct({{2}, {256}});
BENCHMARK(BM_Floor)->ArgsProduct({{1, 8, 64, 512, 4096}, {256, 4096}})->Name("BM_FloorBatch");
BENCHMARK(BM_FloorSameOps)->ArgsProduct({{1, 8, 64, 512, 4096}, {256, 4096}});
BENCHMARK(BM_FileIoMLP)->Arg(2)->Arg(256);
BENCHMARK(BM_Floor)->ArgsProduct({{256}, {256}})->Name("BM_FloorExport");
BENCHMARK(BM_MLPBatch)->ArgsProduct({{1, 8, 64, 512, 4096}, {256, 4096}});
BENCHMARK(BM_MLPChained)->ArgsProduct({{1, 8}, {256}});
BENCHMARK(BM_MatmulThroughput)->Arg(1024)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_SaveStateDict)->Unit(benchmark::kMillisecond)->Iterations(2);
BENCHMARK(BM_LoadStateDict)->Unit(benchmark::kMillisecond)->Iterations(2);
BENCHMARK(BM_TorchLoad)->Unit(benchmark::kMillisecond)->Iterations(2);
BENCHMARK(BM_SaveSafetensors)->Unit(benchmark::kMillisecond)->Iterations(2);
BENCHMARK(BM_LoadSafetensors)->Unit(benchmark::kMillisecond)->Iterations(2);
BENCHMARK(BM_RawWrite)->Unit(benchmark::kMillisecond)->Iterations(2);
BENCHMARK(BM_RawRead)->Unit(benchmark::kMillisecond)->Iterations(2);

int main(int argc, char** argv) {
  // One thread, as in the Python side: per-call overhead, not parallel speed-up, is what is compared.
  at::set_num_threads(1);
  torch::manual_seed(0);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
