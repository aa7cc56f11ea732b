#include "common/launch/ports.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include <fmt/format.h>

namespace common::launch {

namespace {

// A TCP socket bound to 127.0.0.1:port (0: a port the kernel picks), or -1 with errno set.
int bind_loopback(uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    const int error = errno;
    ::close(fd);
    errno = error;
    return -1;
  }
  return fd;
}

}  // namespace

uint16_t free_port() {
  const int fd = bind_loopback(0);
  sockaddr_in addr{};
  socklen_t len = sizeof addr;
  const bool ok = fd >= 0 && ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0;
  const int error = errno;
  if (fd >= 0) ::close(fd);
  if (!ok) throw std::runtime_error(fmt::format("cannot find a free port: {}", std::strerror(error)));
  return ntohs(addr.sin_port);
}

bool port_in_use(uint16_t port) {
  const int fd = bind_loopback(port);
  if (fd >= 0) {
    ::close(fd);
    return false;
  }
  return errno == EADDRINUSE;
}

}  // namespace common::launch
