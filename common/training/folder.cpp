#include "common/training/folder.h"

#include <sys/stat.h>

#include <algorithm>
#include <regex>

#include <fmt/format.h>

#include "common/files/files.h"
#include "common/lesson/lesson.h"

namespace common::checkpoint {

bool is_file_name(const std::string& name) {
  static const std::regex name_re{R"(checkpoint-[0-9]{8}\.pt)"};
  return std::regex_match(name, name_re);
}

std::vector<fs::path> list(const fs::path& dir, const Warn& warn) {
  std::vector<fs::path> found;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (!is_file_name(it->path().filename().string())) continue;
    std::error_code type_error;
    const bool regular = it->is_regular_file(type_error);
    if (type_error || !regular) {
      if (warn) {
        warn(fmt::format("skipping {}: {}", it->path().filename().string(),
                         type_error ? type_error.message() : "not a regular file"));
      }
      continue;
    }
    found.push_back(it->path());
  }
  std::sort(found.begin(), found.end(), std::greater<>());
  return found;
}

namespace {
[[noreturn]] void throw_none_in(const fs::path& dir) {
  throw std::runtime_error(
      fmt::format("--resume: no checkpoint in {}; run without --resume to start training", dir.string()));
}
}  // namespace

void require_some(const fs::path& dir) {
  if (list(dir).empty()) throw_none_in(dir);
}

int open_folder(const fs::path& dir, bool resume) {
  if (resume) require_some(dir);
  ensure_writable_dir(dir);
  // A run killed while writing a checkpoint leaves its temporary file; this run clears them.
  return remove_stale_temporaries(dir, is_file_name);
}

Resumed resume(const fs::path& dir, torch::nn::Module& model, torch::optim::SGD& optimizer,
               const Settings& expected, const Warn& warn) {
  const auto found = list(dir, warn);
  if (found.empty()) throw_none_in(dir);
  std::vector<fs::path> skipped;
  for (const auto& path : found) {
    try {
      return {path, load(path, model, optimizer, &expected), skipped};
    } catch (const SettingsMismatch&) {
      throw;
    } catch (const std::exception& e) {
      warn(fmt::format("skipping {}: {}", path.filename().string(), one_line_message(e)));
      skipped.push_back(path);
    }
  }
  throw std::runtime_error(
      fmt::format("--resume: none of the {} checkpoints in {} loads", found.size(), dir.string()));
}

namespace {
// Size and modification time: a file replaced or changed since it was examined is examined again.
std::string stamp(const fs::path& path) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) return "";
  return fmt::format("{} {}.{}", info.st_size, info.st_mtim.tv_sec, info.st_mtim.tv_nsec);
}
}  // namespace

Pruner::Pruner(fs::path dir, int64_t keep, std::function<std::string(const fs::path&)> why_not, Warn warn)
    : dir_(std::move(dir)), keep_(keep), why_not_(std::move(why_not)), warn_(std::move(warn)) {}

void Pruner::written(const fs::path& path) { seen_[path] = {stamp(path), true}; }

void Pruner::skipped(const std::vector<fs::path>& paths) {
  for (const auto& path : paths) seen_[path] = {stamp(path), false};
}

bool Pruner::loads(const fs::path& path) {
  const auto now = stamp(path);
  const auto found = seen_.find(path);
  if (found != seen_.end() && found->second.stamp == now) return found->second.loads;
  const auto why = why_not_(path);
  if (!why.empty() && warn_)
    warn_(fmt::format("keeping {}, which does not load, out of the --keep count: {}",
                      path.filename().string(), why));
  seen_[path] = {now, why.empty()};
  return why.empty();
}

void Pruner::prune() {
  int64_t kept = 0;
  for (const auto& path : list(dir_)) {
    if (!loads(path)) continue;
    if (++kept <= keep_) continue;
    std::error_code ignored;  // a file another process removed first is already pruned
    fs::remove(path, ignored);
    seen_.erase(path);
  }
}

}  // namespace common::checkpoint
