#pragma once
// The training lessons' options for their settings (settings.h): the command line's side, kept out of the
// checkpoint format, which knows nothing of flags.
#include <string>

#include "common/training/settings.h"

namespace CLI {
class App;
}  // namespace CLI

namespace common::training {

// --epochs, --batch-size, --examples and --lr, each checked against its range. `batch_help` says what a
// batch is in the lesson.
void add_options(CLI::App& cli, checkpoint::Settings& settings, const std::string& batch_help);

}  // namespace common::training
