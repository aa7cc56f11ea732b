#include "common/training/options.h"

#include <CLI/CLI.hpp>

#include "common/lesson/options.h"

namespace common::training {

void add_options(CLI::App& cli, checkpoint::Settings& settings, const std::string& batch_help) {
  cli.add_option("--epochs", settings.epochs, "epochs to train")
      ->capture_default_str()
      ->check(CLI::Range(checkpoint::kEpochsRange.min, checkpoint::kEpochsRange.max));
  cli.add_option("--batch-size", settings.batch_size, batch_help)
      ->capture_default_str()
      ->check(CLI::Range(checkpoint::kBatchSizeRange.min, checkpoint::kBatchSizeRange.max));
  cli.add_option("--examples", settings.examples, "size of the synthetic dataset")
      ->capture_default_str()
      ->check(CLI::Range(checkpoint::kExamplesRange.min, checkpoint::kExamplesRange.max));
  cli.add_option("--lr", settings.lr, "learning rate of SGD")
      ->capture_default_str()
      ->check(finite_range(checkpoint::kLrRange.min, checkpoint::kLrRange.max));
}

}  // namespace common::training
