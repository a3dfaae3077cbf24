#include "sd_notify_linux.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace flannel {

SysResult sd_notify_send(const std::string& socket_path, const std::string& message) {
  struct sockaddr_un addr;
  memset(&addr, 0, sizeof(addr));
  addr.sun_family = AF_UNIX;
  if (socket_path.size() < 2 || socket_path.size() >= sizeof(addr.sun_path) ||
      (socket_path[0] != '/' && socket_path[0] != '@')) {
    return SysResult::failure(EINVAL, "check NOTIFY_SOCKET");
  }
  memcpy(addr.sun_path, socket_path.data(), socket_path.size());
  if (addr.sun_path[0] == '@') addr.sun_path[0] = '\0';
  // An abstract name is exactly as long as given (no trailing NUL counted).
  const socklen_t len = static_cast<socklen_t>(offsetof(struct sockaddr_un, sun_path) + socket_path.size() +
                                               (socket_path[0] == '@' ? 0 : 1));
  const int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return SysResult::failure(errno, "socket");
  const ssize_t n = sendto(fd, message.data(), message.size(), MSG_NOSIGNAL,
                           reinterpret_cast<struct sockaddr*>(&addr), len);
  const int err = errno;
  close(fd);
  if (n < 0) return SysResult::failure(err, "sendto");
  return SysResult::success();
}

}  // namespace flannel
