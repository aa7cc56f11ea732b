#pragma once
// The folder of checkpoints: which files are checkpoints, the newest one that loads, what pruning keeps,
// and the temporaries a killed run leaves. The file format itself is checkpoint.h's.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "common/training/checkpoint.h"

namespace common::checkpoint {

// Whether a name is one file_name gives: only such files are listed, pruned, or have their temporaries swept.
bool is_file_name(const std::string& name);

using Warn = std::function<void(const std::string&)>;

// Checkpoint files in dir, newest (highest step) first. An entry that cannot be examined (a symlink loop,
// no permission) is reported through `warn` and skipped.
std::vector<fs::path> list(const fs::path& dir, const Warn& warn = {});

// Throws "--resume: no checkpoint in dir" when dir holds none: a resumed run refuses before it writes.
void require_some(const fs::path& dir);

// Readies dir for a run: with `resume`, it must hold a checkpoint (require_some); it is made if need be and
// must be writable; the temporary files a run killed while writing a checkpoint left are removed. Returns
// how many were.
int open_folder(const fs::path& dir, bool resume);

struct Resumed {
  fs::path path;
  Loaded loaded;
  std::vector<fs::path> skipped;  // newer checkpoints that did not load, each already warned about
};

// Loads the newest checkpoint in dir that loads. Each one that does not (cut short by the very crash we
// resume from, or lying) is reported through `warn`, naming it, and the one before it is tried. Throws
// when there is none, or none loads; a SettingsMismatch is thrown as it is.
Resumed resume(const fs::path& dir, torch::nn::Module& model, torch::optim::SGD& optimizer,
               const Settings& expected, const Warn& warn);

// Keeps the newest `keep` checkpoints that load and removes older ones that load. A file that does not load
// is neither counted nor removed: a damaged file must never push out a good one, and it may be evidence of
// what went wrong. Each is named in one warning. What a file was found to be is remembered for as long as
// its size and time are unchanged, so each file is read at most once.
class Pruner {
 public:
  // `why_not`: "" for a checkpoint that loads, else why not (why_not_loadable, for the run's model).
  Pruner(fs::path dir, int64_t keep, std::function<std::string(const fs::path&)> why_not, Warn warn);
  // A checkpoint this run has just written: it loads, and need not be read.
  void written(const fs::path& path);
  // Ones resume skipped: damaged, and already warned about.
  void skipped(const std::vector<fs::path>& paths);
  void prune();

 private:
  struct Seen {
    std::string stamp;  // size and modification time when it was examined
    bool loads = false;
  };
  bool loads(const fs::path& path);

  fs::path dir_;
  int64_t keep_;
  std::function<std::string(const fs::path&)> why_not_;
  Warn warn_;
  std::map<fs::path, Seen> seen_;
};

}  // namespace common::checkpoint
