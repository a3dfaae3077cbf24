// rtnetlink notifications (link, IPv4 address, IPv4 route, neighbour
// changes) for the reconcilers, read by our own code: netlink@0.3.0 aborts
// the process when its socket reports an error such as ENOBUFS (its poll
// callback builds an error from a NULL syscall name), and ENOBUFS is exactly
// the case that must trigger a full reconcile.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <vector>

#include "sys_result.h"

namespace flannel {

// One notification, reduced to what a reconciler needs.
struct NetlinkNotification {
  uint8_t kind;     // kNotifyLink, kNotifyAddress, kNotifyRoute, kNotifyNeighbor
  bool deleted;     // RTM_DEL*
  int32_t ifindex;  // from ifinfomsg / ifaddrmsg / ndmsg; -1 for routes
};

enum : uint8_t { kNotifyLink = 0, kNotifyAddress = 1, kNotifyRoute = 2, kNotifyNeighbor = 3 };

// Parses one datagram of netlink messages (linux/netlink.h framing).
// Messages of other types and malformed tails are skipped. Pure.
void parse_rtnetlink_notifications(const uint8_t* buf, size_t len, std::vector<NetlinkNotification>* out);

// Opens a non-blocking NETLINK_ROUTE socket subscribed to the link, IPv4
// address, IPv4 route and neighbour groups, with `recv_buffer` bytes of
// receive buffer (SO_RCVBUFFORCE when allowed, else SO_RCVBUF). Returns the
// fd in `*fd`.
SysResult open_rtnetlink_monitor(int recv_buffer, int* fd);

// Reads every datagram queued on `fd` into `out`; counts ENOBUFS (the
// kernel dropped notifications) in `*overflows`. Returns 0, or the errno of
// another receive failure.
int drain_rtnetlink_monitor(int fd, std::vector<NetlinkNotification>* out, uint32_t* overflows);

}  // namespace flannel
