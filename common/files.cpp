#include "common/files.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <random>
#include <stdexcept>

#include <fmt/format.h>

namespace common {
namespace fs = std::filesystem;
namespace {

void sync_path(const fs::path& path, bool directory) {
  const int fd = ::open(path.c_str(), directory ? O_RDONLY | O_DIRECTORY : O_RDONLY);
  if (fd < 0)
    throw std::runtime_error(
        fmt::format("cannot open {} to sync it: {}", path.string(), std::strerror(errno)));
  const int rc = ::fsync(fd);
  const int saved = errno;
  ::close(fd);
  if (rc != 0)
    throw std::runtime_error(fmt::format("cannot sync {}: {}", path.string(), std::strerror(saved)));
}

fs::path temporary_beside(const fs::path& path) {
  std::random_device rd;
  return path.parent_path() / fmt::format(".{}.tmp-{:08x}", path.filename().string(), rd());
}

}  // namespace

void atomic_write(const fs::path& path, const std::function<void(const fs::path& tmp)>& write_to) {
  const fs::path target = path.has_parent_path() ? path : fs::path(".") / path;
  const fs::path tmp = temporary_beside(target);
  try {
    write_to(tmp);
    if (!fs::exists(tmp)) throw std::runtime_error(fmt::format("nothing was written for {}", path.string()));
    sync_path(tmp, false);
    fs::rename(tmp, target);
  } catch (...) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    throw;
  }
  sync_path(target.parent_path(), true);
}

void write_file_atomically(const fs::path& path, std::string_view bytes) {
  atomic_write(path, [&](const fs::path& tmp) {
    std::ofstream out(tmp, std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.close();
    if (!out) throw std::runtime_error(fmt::format("cannot write {}", path.string()));
  });
}

MappedFile::MappedFile(const fs::path& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec))
    throw std::runtime_error(fmt::format("{} is a folder, not a file", path.string()));
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    throw std::runtime_error(fmt::format("cannot open {}: {}", path.string(), std::strerror(errno)));
  const auto fail = [&] {
    const int error = errno;
    ::close(fd);
    throw std::runtime_error(fmt::format("cannot read {}: {}", path.string(), std::strerror(error)));
  };
  struct stat info {};
  if (::fstat(fd, &info) != 0) fail();
  size_ = static_cast<size_t>(info.st_size);
  if (size_ > 0) {
    // MAP_POPULATE maps every page now, so reading the bytes later takes no page faults.
    void* mapped = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
    if (mapped == MAP_FAILED) fail();
    data_ = static_cast<const char*>(mapped);
  }
  ::close(fd);
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) ::munmap(const_cast<char*>(data_), size_);
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
