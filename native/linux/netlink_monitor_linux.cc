#include "netlink_monitor_linux.h"

#include <errno.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

namespace flannel {

void parse_rtnetlink_notifications(const uint8_t* buf, size_t len, std::vector<NetlinkNotification>* out) {
  size_t off = 0;
  while (off + sizeof(struct nlmsghdr) <= len) {
    struct nlmsghdr h;
    memcpy(&h, buf + off, sizeof(h));
    if (h.nlmsg_len < sizeof(struct nlmsghdr) || h.nlmsg_len > len - off) return;
    const uint8_t* body = buf + off + NLMSG_HDRLEN;
    const size_t body_len = h.nlmsg_len - NLMSG_HDRLEN;
    NetlinkNotification n{0, false, -1};
    bool known = true;
    switch (h.nlmsg_type) {
      case RTM_NEWLINK:
      case RTM_DELLINK:
        n.kind = kNotifyLink;
        n.deleted = h.nlmsg_type == RTM_DELLINK;
        if (body_len >= sizeof(struct ifinfomsg)) memcpy(&n.ifindex, body + offsetof(struct ifinfomsg, ifi_index), 4);
        break;
      case RTM_NEWADDR:
      case RTM_DELADDR:
        n.kind = kNotifyAddress;
        n.deleted = h.nlmsg_type == RTM_DELADDR;
        if (body_len >= sizeof(struct ifaddrmsg)) {
          uint32_t idx;
          memcpy(&idx, body + offsetof(struct ifaddrmsg, ifa_index), 4);
          n.ifindex = static_cast<int32_t>(idx);
        }
        break;
      case RTM_NEWROUTE:
      case RTM_DELROUTE:
        n.kind = kNotifyRoute;
        n.deleted = h.nlmsg_type == RTM_DELROUTE;
        break;
      case RTM_NEWNEIGH:
      case RTM_DELNEIGH:
        n.kind = kNotifyNeighbor;
        n.deleted = h.nlmsg_type == RTM_DELNEIGH;
        if (body_len >= sizeof(struct ndmsg)) memcpy(&n.ifindex, body + offsetof(struct ndmsg, ndm_ifindex), 4);
        break;
      default:
        known = false;
    }
    if (known) out->push_back(n);
    off += NLMSG_ALIGN(h.nlmsg_len);
  }
}

SysResult open_rtnetlink_monitor(int recv_buffer, int* fd_out) {
  const int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) return SysResult::failure(errno, "socket(AF_NETLINK)");
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &recv_buffer, sizeof(recv_buffer)) != 0 &&
      setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &recv_buffer, sizeof(recv_buffer)) != 0) {
    const int err = errno;
    close(fd);
    return SysResult::failure(err, "setsockopt(SO_RCVBUF)");
  }
  struct sockaddr_nl addr;
  memset(&addr, 0, sizeof(addr));
  addr.nl_family = AF_NETLINK;
  addr.nl_groups = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR | RTMGRP_IPV4_ROUTE | RTMGRP_NEIGH;
  if (bind(fd, reinterpret_cast<struct sockaddr*>(&addr), sizeof(addr)) != 0) {
    const int err = errno;
    close(fd);
    return SysResult::failure(err, "bind(AF_NETLINK)");
  }
  *fd_out = fd;
  return SysResult::success();
}

int drain_rtnetlink_monitor(int fd, std::vector<NetlinkNotification>* out, uint32_t* overflows) {
  // Big enough for any notification datagram (the kernel sends at most a page-sized skb per message burst).
  static thread_local uint8_t buf[64 * 1024];
  for (;;) {
    const ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (n > 0) {
      parse_rtnetlink_notifications(buf, static_cast<size_t>(n), out);
      continue;
    }
    if (n == 0) return 0;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
    if (errno == ENOBUFS) {
      // The socket error is cleared by this report; later datagrams are still queued.
      ++*overflows;
      continue;
    }
    return errno;
  }
}

}  // namespace flannel
