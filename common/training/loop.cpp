#include "common/training/loop.h"

#include <algorithm>
#include <stdexcept>

#include <fmt/format.h>

namespace common::training {

Epoch begin_epoch(Progress& progress, int64_t epoch, const Settings& settings, bool resumed) {
  at::Generator gen = at::detail::getDefaultCPUGenerator();
  if (resumed) {
    gen.set_state(progress.rng_state);
  } else {
    progress.rng_state = gen.get_state();
  }
  return {torch::randperm(settings.examples, torch::kLong),
          resumed ? progress.step - epoch * settings.steps_per_epoch() : 0};
}

EpochReport run_epoch(torch::nn::Sequential& model, torch::optim::SGD& optimizer, const Dataset& data,
                      const Settings& settings, int64_t epoch, const Epoch& shuffle, Progress& progress,
                      const Hooks& hooks) {
  const int64_t n = data.X.size(0);
  const int64_t steps_per_epoch = settings.steps_per_epoch();
  const int64_t batch_size = settings.batch_size;
  const auto device = model->parameters().at(0).device();
  double loss_sum = 0, correct = 0, examples = 0;
  for (int64_t b = shuffle.first_step; b < steps_per_epoch; ++b) {
    auto idx = shuffle.order.slice(0, b * batch_size, std::min(n, (b + 1) * batch_size));
    if (hooks.take) idx = hooks.take(idx);
    auto xb = data.X.index_select(0, idx).to(device);
    auto yb = data.y.index_select(0, idx).to(device);
    auto logits = model->forward(xb);
    auto loss = torch::nn::functional::cross_entropy(logits, yb);
    optimizer.zero_grad();
    loss.backward();
    if (hooks.after_backward) hooks.after_backward();
    optimizer.step();
    ++progress.step;
    loss_sum += loss.item<double>() * static_cast<double>(idx.size(0));
    correct += static_cast<double>(logits.argmax(1).eq(yb).sum().item<int64_t>());
    examples += static_cast<double>(idx.size(0));
    if (hooks.after_step) {
      Progress now = progress;
      now.epoch = epoch;
      if (b + 1 == steps_per_epoch) {  // the next step opens the next epoch, from the generator as it is now
        now.epoch = epoch + 1;
        now.rng_state = at::detail::getDefaultCPUGenerator().get_state();
      }
      hooks.after_step(now, b + 1, steps_per_epoch);
    }
  }
  if (hooks.sum) {
    const auto sums = hooks.sum(torch::tensor({loss_sum, correct, examples}, torch::kDouble));
    loss_sum = sums[0].item<double>();
    correct = sums[1].item<double>();
    examples = sums[2].item<double>();
  }
  // Sums of whole numbers of examples, exact in a double.
  const double seen = std::max(examples, 1.0);
  return {epoch, loss_sum / seen, correct / seen, static_cast<int64_t>(examples)};
}

void train(torch::nn::Sequential& model, torch::optim::SGD& optimizer, const Dataset& data,
           const Settings& settings, Progress progress, bool resumed, const Hooks& hooks) {
  if (data.X.size(0) != settings.examples)
    throw std::invalid_argument(
        fmt::format("the dataset has {} examples, the settings say {}", data.X.size(0), settings.examples));
  for (int64_t epoch = progress.epoch; epoch < settings.epochs; ++epoch) {
    const auto shuffle = begin_epoch(progress, epoch, settings, resumed);
    resumed = false;
    const auto report = run_epoch(model, optimizer, data, settings, epoch, shuffle, progress, hooks);
    if (hooks.after_epoch) {
      const Progress next{epoch + 1, progress.step, at::detail::getDefaultCPUGenerator().get_state()};
      hooks.after_epoch(report, next);
    }
  }
}

}  // namespace common::training
