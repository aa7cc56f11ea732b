// Where a file's bytes come from: the file, read with pread (never mapped, so a file truncated by another
// program is an error, not SIGBUS), or bytes in memory. The weights and safetensors readers both read
// through it.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include <fmt/format.h>

#include "common/weights/internal.h"

namespace common::weights {
namespace {

class FdSource final : public Source {
 public:
  FdSource(int fd, uint64_t size, std::string name) : fd_(fd), size_(size), name_(std::move(name)) {}
  ~FdSource() override { ::close(fd_); }
  FdSource(const FdSource&) = delete;
  FdSource& operator=(const FdSource&) = delete;
  uint64_t size() const override { return size_; }
  void read(uint64_t offset, void* dst, size_t n) const override {
    auto* out = static_cast<char*>(dst);
    while (n > 0) {
      const ssize_t got = ::pread(fd_, out, n, static_cast<off_t>(offset));
      if (got < 0) {
        if (errno == EINTR) continue;
        throw FileError(fmt::format("{}: cannot read it: {}", name_, std::strerror(errno)));
      }
      if (got == 0) {
        throw FileError(
            fmt::format("{}: the file ended early: it was truncated or replaced while it was read", name_));
      }
      out += got;
      offset += static_cast<uint64_t>(got);
      n -= static_cast<size_t>(got);
    }
  }

 private:
  int fd_;
  uint64_t size_;
  std::string name_;
};

class BytesSource final : public Source {
 public:
  explicit BytesSource(std::string bytes) : bytes_(std::move(bytes)) {}
  uint64_t size() const override { return bytes_.size(); }
  void read(uint64_t offset, void* dst, size_t n) const override {
    if (offset > bytes_.size() || n > bytes_.size() - offset) throw std::runtime_error("read past the end");
    std::memcpy(dst, bytes_.data() + offset, n);
  }

 private:
  std::string bytes_;
};

}  // namespace

std::shared_ptr<Source> open_source(const std::filesystem::path& path) {
  const std::string name = path.string();
  // O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused just below.
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) throw FileError(fmt::format("cannot open {}: {}", name, std::strerror(errno)));
  struct stat info {};
  if (::fstat(fd, &info) != 0) {
    const int error = errno;
    ::close(fd);
    throw FileError(fmt::format("cannot read {}: {}", name, std::strerror(error)));
  }
  if (!S_ISREG(info.st_mode)) {
    ::close(fd);
    const char* what = S_ISDIR(info.st_mode)                            ? "a folder"
                       : S_ISFIFO(info.st_mode)                         ? "a FIFO (named pipe)"
                       : S_ISCHR(info.st_mode) || S_ISBLK(info.st_mode) ? "a device"
                       : S_ISSOCK(info.st_mode)                         ? "a socket"
                                                                        : "not a regular file";
    throw FileError(fmt::format("{} is {}, not a file; give the path of a saved model file", name, what));
  }
  return std::make_shared<FdSource>(fd, static_cast<uint64_t>(info.st_size), name);
}

std::shared_ptr<Source> bytes_source(std::string bytes) {
  return std::make_shared<BytesSource>(std::move(bytes));
}

}  // namespace common::weights
