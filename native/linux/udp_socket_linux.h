// The udp backend's UDP socket (Linux).
#pragma once

#include <cstdint>

#include "sys_result.h"

namespace flannel {

struct UdpSocketOptions {
  uint32_t bind_addr = 0;  // host order: the selected interface's address (compat §5.1 step 5)
  uint16_t port = 0;       // the backend's Port (default 8285)
  int receive_buffer_bytes = 0;  // SO_RCVBUF(FORCE); 0 keeps the kernel default
  int send_buffer_bytes = 0;     // SO_SNDBUF(FORCE); 0 keeps the kernel default
};

// Creates a non-blocking, close-on-exec AF_INET datagram socket bound to
// bind_addr:port. Buffer sizes are set with the *FORCE variants (which ignore
// net.core.{r,w}mem_max and need CAP_NET_ADMIN) and fall back to the plain
// options when those are refused.
//
// Failing operations: "socket", "bind" (EADDRINUSE: the port is taken;
// EADDRNOTAVAIL: the address is not on this host), "setsockopt SO_RCVBUF",
// "setsockopt SO_SNDBUF".
SysResult open_udp_socket(const UdpSocketOptions& options, int* fd_out);

}  // namespace flannel
