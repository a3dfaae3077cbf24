// The udp backend's UDP sockets (Linux).
#pragma once

#include <cstdint>
#include <vector>

#include "../core/ipv6.h"
#include "sys_result.h"

namespace flannel {

struct UdpSocketOptions {
  uint32_t bind_addr = 0;  // host order: the selected interface's address (docs/compatibility.md §5.1 step 5)
  // The IPv6 underlay: AF_INET6 sockets (IPV6_V6ONLY) bound to bind_addr6 instead.
  bool ipv6 = false;
  Ipv6Addr bind_addr6{};
  uint16_t port = 0;       // the backend's Port (default 8285)
  int receive_buffer_bytes = 0;  // SO_RCVBUF(FORCE); 0 keeps the kernel default
  int send_buffer_bytes = 0;     // SO_SNDBUF(FORCE); 0 keeps the kernel default
  // Sockets to open, one per worker. More than one binds them all with
  // SO_REUSEPORT: the kernel then spreads received datagrams by a hash of the
  // outer addresses and ports, so everything from one peer lands on one
  // socket (never reordered) and different peers spread over the workers.
  // Every datagram still leaves from bind_addr:port (docs/compatibility.md §5.3).
  int count = 1;
};

// Creates non-blocking, close-on-exec AF_INET datagram sockets bound to
// bind_addr:port. Buffer sizes are set with the *FORCE variants (which ignore
// net.core.{r,w}mem_max and need CAP_NET_ADMIN) and fall back to the plain
// options when those are refused.
//
// With count > 1 the port is first bound once without SO_REUSEPORT and
// released: a port held by anyone else (an upstream flanneld, a second
// flannel-ts) then fails with EADDRINUSE as with a single socket, instead of
// silently sharing the traffic.
//
// Failing operations: "socket", "bind" (EADDRINUSE: the port is taken;
// EADDRNOTAVAIL: the address is not on this host), "setsockopt SO_RCVBUF",
// "setsockopt SO_SNDBUF", "setsockopt SO_REUSEPORT". On failure nothing stays
// open.
SysResult open_udp_sockets(const UdpSocketOptions& options, std::vector<int>* fds_out);

// The sending sockets of the per-flow source ports: up to `count` sockets
// bound to bind_addr:port+1 .. port+count (no SO_REUSEPORT: each port is
// ours alone), with options' send buffer. The forwarding threads send each
// datagram from the one its inner flow hashes to (core/flow_hash.h); peers
// still receive on `port`. A port of the range that another socket holds
// (EADDRINUSE) is skipped: fewer ports, never a failed start; its number
// goes to `busy_ports`. Nothing is ever read from these sockets, so each
// gets a socket filter that discards every datagram before it is queued
// (the discards show in the socket's drop count, socket_drops). Failing
// operations as open_udp_sockets, and "setsockopt SO_ATTACH_FILTER". On
// failure nothing stays open.
SysResult open_source_port_sockets(const UdpSocketOptions& options, int count, std::vector<int>* fds_out,
                                   std::vector<uint16_t>* busy_ports);

// The datagrams the kernel dropped for `fd` (SO_MEMINFO, SK_MEMINFO_DROPS:
// Linux 4.0), socket filter discards included; 0 when it cannot tell.
uint64_t socket_drops(int fd);

// UDP_SEGMENT (Linux 4.18) is usable on `fd`: probed by setting the socket
// option to 0 (no segmentation); sends then pass the size per call in a
// cmsg. Returns the errno (0: usable).
int probe_udp_gso(int fd);

// Turns on UDP_GRO (Linux 5.0): the kernel may hand one read holding several
// datagrams of one flow, all gso_size long but the last, with the size in a
// SOL_UDP/UDP_GRO cmsg. Returns the errno (0: on).
int enable_udp_gro(int fd);

}  // namespace flannel
