// Outcomes of the GPU lesson: device fallbacks, copies, device mismatches and honest timing.
#include <thread>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "common/compute/parallel.h"
#include "common/lesson/device.h"
#include "lessons/10_gpus/gpus.h"
#include "tests/testing.h"

MP_TEST_ON_DEVICES(Gpus);

TEST(Gpus, TryGpuTenFallsBackToTheCpu) {
  if (torch::cuda::is_available() && torch::cuda::device_count() > 10)
    GTEST_SKIP() << "this machine has cuda:10";
  EXPECT_EQ(common::try_gpu(10), torch::Device(torch::kCPU));
}

TEST_P(Gpus, ToTheSameDeviceReturnsTheSameTensor) {
  auto X = torch::ones({2, 3}, device());
  EXPECT_TRUE(X.to(device()).is_same(X));
  // The opposite case: a real conversion makes a new tensor.
  EXPECT_FALSE(X.to(torch::kDouble).is_same(X));
}

TEST_P(Gpus, CopyToAnotherDeviceIsANewTensorWithTheSameValues) {
  if (device().is_cpu()) GTEST_SKIP() << "needs a second device (a GPU) to copy to";
  auto X = torch::rand({2, 3}, device());
  auto back = X.to(torch::kCPU);
  EXPECT_FALSE(back.is_same(X));
  EXPECT_TRUE(testing_mp::tensors_equal(back, X.cpu()));
}

TEST_P(Gpus, MixingDevicesFailsWithAnError) {
  if (device().is_cpu()) GTEST_SKIP() << "needs a GPU to mix with the CPU";
  auto X = torch::ones({2, 3}, device());
  auto Y = torch::ones({2, 3});
  EXPECT_THROW((void)(X.matmul(Y.t())), c10::Error);
  EXPECT_NO_THROW((void)(X + Y.to(device())));
}

TEST_P(Gpus, ModelOnTheDeviceComputesThere) {
  auto net = torch::nn::Sequential(torch::nn::Linear(3, 1));
  net->to(device());
  auto out = net->forward(torch::ones({2, 3}, device()));
  EXPECT_EQ(out.device(), device());
  EXPECT_EQ(net->ptr<torch::nn::LinearImpl>(0)->weight.device(), device());
}

TEST_P(Gpus, MatmulTimingIsPositiveAndItsFlopsFollowFromIt) {
  const auto t = gpus::time_matmul(device(), 64, 3);
  EXPECT_GT(t.ms, 0.0);
  EXPECT_NEAR(t.gflops, 2.0 * 64 * 64 * 64 / (t.ms * 1e6), 1e-9 * t.gflops);
}

TEST(Gpus, MedianIgnoresOneSlowRun) {
  int call = 0;
  // Warm-up calls are 0 and 1; of the five timed ones only the first sleeps.
  const double ms = gpus::median_ms(torch::kCPU, [&] {
    if (call++ == 2) std::this_thread::sleep_for(std::chrono::milliseconds(200));
  });
  EXPECT_EQ(call, 7);
  EXPECT_LT(ms, 100.0);
}

TEST(Gpus, DataParallelEqualsOneDevice) {
  const auto devices = common::try_all_gpus();
  if (devices.size() < 2)
    GTEST_SKIP() << "data_parallel needs at least two GPUs; this machine has "
                 << (devices[0].is_cuda() ? 1 : 0);
  auto mlp = gpus::make_mlp();
  mlp->to(devices[0]);
  auto input = torch::rand({64, 20}, devices[0]);
  auto parallel = common::data_parallel(mlp, input, devices);
  // Each GPU computes its slice of the batch with the same weights; float32 on different cards: 1e-6.
  EXPECT_TRUE(testing_mp::tensors_close(parallel, mlp->forward(input), 1e-5, 1e-6));
}
