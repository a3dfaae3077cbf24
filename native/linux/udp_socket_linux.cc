#include "udp_socket_linux.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/filter.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

namespace flannel {

namespace {

bool set_buffer(int fd, int force_opt, int plain_opt, int bytes) {
  if (bytes <= 0) return true;
  if (setsockopt(fd, SOL_SOCKET, force_opt, &bytes, sizeof(bytes)) == 0) return true;
  return setsockopt(fd, SOL_SOCKET, plain_opt, &bytes, sizeof(bytes)) == 0;
}

SysResult open_one(const UdpSocketOptions& options, bool reuse_port, int* fd_out) {
  const int fd = socket(options.ipv6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
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
  const int one = 1;
  if (reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) {
    return fail("setsockopt SO_REUSEPORT");
  }
  if (options.ipv6) {
    // IPv6 only: the IPv4 underlay has sockets of its own.
    if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0) return fail("setsockopt IPV6_V6ONLY");
    struct sockaddr_in6 addr6;
    memset(&addr6, 0, sizeof(addr6));
    addr6.sin6_family = AF_INET6;
    addr6.sin6_port = htons(options.port);
    store_ipv6(addr6.sin6_addr.s6_addr, options.bind_addr6);
    if (bind(fd, reinterpret_cast<struct sockaddr*>(&addr6), sizeof(addr6)) < 0) return fail("bind");
  } else {
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_port = htons(options.port);
    addr.sin_addr.s_addr = htonl(options.bind_addr);
    if (bind(fd, reinterpret_cast<struct sockaddr*>(&addr), sizeof(addr)) < 0) return fail("bind");
  }
  *fd_out = fd;
  return SysResult::success();
}

}  // namespace

SysResult open_udp_sockets(const UdpSocketOptions& options, std::vector<int>* fds_out) {
  if (options.count < 1) return SysResult::failure(EINVAL, "check UDP socket count");
  std::vector<int> fds;
  int fd = -1;
  if (options.count == 1) {
    const SysResult r = open_one(options, false, &fd);
    if (!r.ok()) return r;
    fds_out->assign(1, fd);
    return SysResult::success();
  }
  // Exclusive probe: fails with EADDRINUSE when anyone holds the port.
  SysResult r = open_one(options, false, &fd);
  if (!r.ok()) return r;
  close(fd);
  for (int i = 0; i < options.count; ++i) {
    r = open_one(options, true, &fd);
    if (!r.ok()) {
      for (int open_fd : fds) close(open_fd);
      return r;
    }
    fds.push_back(fd);
  }
  *fds_out = std::move(fds);
  return SysResult::success();
}

SysResult open_source_port_sockets(const UdpSocketOptions& options, int count, std::vector<int>* fds_out,
                                   std::vector<uint16_t>* busy_ports) {
  // A classic BPF socket filter of one instruction, "return 0": every
  // datagram is cut to nothing and discarded before it is queued.
  static struct sock_filter kDropAll[] = {BPF_STMT(BPF_RET | BPF_K, 0)};
  static const struct sock_fprog kDropAllProgram = {1, kDropAll};
  std::vector<int> fds;
  auto fail = [&fds](const SysResult& r) {
    for (int open_fd : fds) close(open_fd);
    return r;
  };
  for (int i = 1; i <= count; ++i) {
    if (options.port + i > 65535) return fail(SysResult::failure(EINVAL, "check source port range"));
    UdpSocketOptions one = options;
    one.port = static_cast<uint16_t>(options.port + i);
    one.receive_buffer_bytes = 0;  // nothing is read from these ports
    int fd = -1;
    const SysResult r = open_one(one, false, &fd);
    if (!r.ok() && r.err == EADDRINUSE && std::string(r.op) == "bind") {
      busy_ports->push_back(one.port);
      continue;
    }
    if (!r.ok()) return fail(r);
    fds.push_back(fd);
    if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &kDropAllProgram, sizeof(kDropAllProgram)) < 0) {
      return fail(SysResult::failure(errno, "setsockopt SO_ATTACH_FILTER"));
    }
  }
  *fds_out = std::move(fds);
  return SysResult::success();
}

uint64_t socket_drops(int fd) {
  uint32_t info[SK_MEMINFO_VARS] = {};
  socklen_t len = sizeof(info);
  if (getsockopt(fd, SOL_SOCKET, SO_MEMINFO, info, &len) < 0 || len < (SK_MEMINFO_DROPS + 1) * sizeof(uint32_t)) {
    return 0;
  }
  return info[SK_MEMINFO_DROPS];
}

int probe_udp_gso(int fd) {
  const int zero = 0;
  return setsockopt(fd, SOL_UDP, UDP_SEGMENT, &zero, sizeof(zero)) < 0 ? errno : 0;
}

int enable_udp_gro(int fd) {
  const int one = 1;
  return setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof(one)) < 0 ? errno : 0;
}

}  // namespace flannel
