#pragma once
// The settings that shape a training run of lessons 11 and 13, and the range of each. A checkpoint records
// them (checkpoint.h); the lessons take them as options (options.h).
#include <cstdint>

namespace common::checkpoint {

// Resuming under other settings would continue a different run (another batch size replays other batches:
// the loss goes to NaN), so it is refused.
struct Settings {
  // Epochs the run was asked for: a checkpoint past them lies. Not compared on resume: more epochs
  // continue a run.
  int64_t epochs = 3;
  int64_t batch_size = 32;
  int64_t examples = 2048;
  int64_t seed = 0;
  double lr = 0.05;

  int64_t steps_per_epoch() const { return (examples + batch_size - 1) / batch_size; }
};

// The range of each setting, for the options and for what a checkpoint records alike: a checkpoint is
// input from elsewhere, and a value no option accepts (a batch of 2^63 - 1, a NaN learning rate) is not
// a run to continue. Within them, steps_per_epoch and every product of steps and epochs fit in 2^63.
template <typename T>
struct Range {
  T min, max;
};
inline constexpr Range<int64_t> kEpochsRange{1, 100000};
inline constexpr Range<int64_t> kBatchSizeRange{1, 1000000};
inline constexpr Range<int64_t> kExamplesRange{10, 100000000};
inline constexpr Range<double> kLrRange{1e-6, 10.0};
// What --seed accepts (common/lesson/options.cpp).
inline constexpr Range<int64_t> kSeedRange{0, INT64_MAX};

}  // namespace common::checkpoint
