#include "common/files/files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>
#include <regex>
#include <stdexcept>
#include <system_error>

#include <fmt/format.h>

namespace common {
namespace fs = std::filesystem;
namespace {

std::string temporary_name(const fs::path& path) {
  std::random_device rd;
  return fmt::format(".{}.tmp-{:08x}", path.filename().string(), rd());
}

// The reason a call failed, from errno, for the error line.
std::runtime_error failure(const std::string& what, int error) {
  return std::runtime_error(fmt::format("{}: {}", what, std::strerror(error)));
}

}  // namespace

void write_all(int fd, const void* data, size_t size) {
  const auto* p = static_cast<const char*>(data);
  while (size > 0) {
    // Linux writes at most about 2 GiB per call.
    const ssize_t n = ::write(fd, p, std::min<size_t>(size, size_t{1} << 30));
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error(std::strerror(errno));
    }
    if (n == 0) throw std::runtime_error("the write made no progress");
    p += n;
    size -= static_cast<size_t>(n);
  }
}

void write_atomically(const fs::path& path, const std::function<void(int fd)>& write_to) {
  const fs::path target = path.has_parent_path() ? path : fs::path(".") / path;
  const fs::path dir = target.parent_path();
  const fs::path tmp = dir / temporary_name(target);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) throw failure(fmt::format("cannot write {}", path.string()), errno);
  bool open = true;
  try {
    try {
      write_to(fd);
    } catch (const std::exception& e) {
      throw std::runtime_error(fmt::format("cannot write {}: {}", path.string(), e.what()));
    }
    // A write that the disk refuses may only show at fsync or close (NFS, a full thin volume).
    if (::fsync(fd) != 0) throw failure(fmt::format("cannot write {} (fsync)", path.string()), errno);
    open = false;
    if (::close(fd) != 0) throw failure(fmt::format("cannot write {} (close)", path.string()), errno);
    if (::rename(tmp.c_str(), target.c_str()) != 0)
      throw failure(fmt::format("cannot replace {}", path.string()), errno);
  } catch (...) {
    if (open) ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  // The rename is durable only once the folder is synced.
  const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) throw failure(fmt::format("cannot sync the folder of {}", path.string()), errno);
  const int rc = ::fsync(dir_fd);
  const int error = errno;
  ::close(dir_fd);
  if (rc != 0) throw failure(fmt::format("cannot sync the folder of {}", path.string()), error);
}

void write_file_atomically(const fs::path& path, std::string_view bytes) {
  write_atomically(path, [&](int fd) { write_all(fd, bytes.data(), bytes.size()); });
}

int remove_stale_temporaries(const fs::path& dir, const std::function<bool(const std::string& name)>& ours) {
  static const std::regex kTemporary{R"(\.(.+)\.tmp-[0-9a-f]{8})"};
  int removed = 0;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const auto name = it->path().filename().string();
    std::smatch match;
    if (!std::regex_match(name, match, kTemporary) || !ours(match[1].str())) continue;
    // symlink_status: a link named like a temporary is not one write_atomically made.
    std::error_code type_error;
    if (fs::is_regular_file(fs::symlink_status(it->path(), type_error)) && fs::remove(it->path(), type_error))
      ++removed;
  }
  return removed;
}

void remove_empty_folders(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(fs::symlink_status(dir, ec))) return;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->is_directory(ec) && !it->is_symlink(ec)) remove_empty_folders(it->path());
  }
  if (fs::is_empty(dir, ec) && !ec) fs::remove(dir, ec);
}

void ensure_writable_dir(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec)
    throw std::runtime_error(fmt::format("cannot create output folder {}: {}", dir.string(), ec.message()));
  if (!fs::is_directory(dir))
    throw std::runtime_error(fmt::format("output folder {} is not a folder", dir.string()));
  if (::access(dir.c_str(), W_OK) != 0) {
    throw std::runtime_error(
        fmt::format("output folder {} is not writable: {}", dir.string(), std::strerror(errno)));
  }
}

}  // namespace common
