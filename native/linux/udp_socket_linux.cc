#include "udp_socket_linux.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

namespace flannel {

namespace {

bool set_buffer(int fd, int force_opt, int plain_opt, int bytes) {
  if (bytes <= 0) return true;
  if (setsockopt(fd, SOL_SOCKET, force_opt, &bytes, sizeof(bytes)) == 0) return true;
  return setsockopt(fd, SOL_SOCKET, plain_opt, &bytes, sizeof(bytes)) == 0;
}

}  // namespace

SysResult open_udp_socket(const UdpSocketOptions& options, int* fd_out) {
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return SysResult::failure(errno, "socket");
  auto fail = [fd](const char* op) {
    const int err = errno;
    close(fd);
    return SysResult::failure(err, op);
  };
  if (!set_buffer(fd, SO_RCVBUFFORCE, SO_RCVBUF, options.receive_buffer_bytes)) {
    return fail("setsockopt SO_RCVBUF");
  }
  if (!set_buffer(fd, SO_SNDBUFFORCE, SO_SNDBUF, options.send_buffer_bytes)) {
    return fail("setsockopt SO_SNDBUF");
  }
  struct sockaddr_in addr;
  memset(&addr, 0, sizeof(addr));
  addr.sin_family = AF_INET;
  addr.sin_port = htons(options.port);
  addr.sin_addr.s_addr = htonl(options.bind_addr);
  if (bind(fd, reinterpret_cast<struct sockaddr*>(&addr), sizeof(addr)) < 0) return fail("bind");
  *fd_out = fd;
  return SysResult::success();
}

}  // namespace flannel
