// Peers a forwarding thread stops using an offload for, until a deadline
// (pure, fixed size, no allocation). Peers are keyed by their underlay
// address (an IPv4 address as ::ffff:a.b.c.d), never by an index into a
// published table: a later publication may reorder the table, and the
// backoff must stay with the peer it was meant for.
//
// A UDP GSO send can fail for one peer while it works for the others: a
// path MTU below the segment size (a smaller-MTU route, or an ICMP
// "fragmentation needed", genuine or spoofed) makes the kernel refuse it
// (udp_send_skb: EINVAL; EMSGSIZE with IP_PMTUDISC_DO), and a device without
// checksum offload gives EIO on kernels before 6.x. The egress thread then
// sends that peer's packets unsegmented and tries GSO again after a while.
#pragma once

#include <cstddef>
#include <cstdint>

#include "ipv6.h"

namespace flannel {

class PeerBackoff {
 public:
  static constexpr size_t kSlots = 64;

  // The key of an IPv4 peer.
  static Ipv6Addr v4_key(uint32_t addr) { return Ipv6Addr{0, 0xffff00000000ull | addr}; }

  // `addr` is suppressed until `until_ns`. With every slot taken by a live
  // entry, the one that expires first is replaced.
  void suppress(const Ipv6Addr& addr, uint64_t until_ns, uint64_t now_ns) {
    size_t pick = kSlots;
    for (size_t i = 0; i < count_; ++i) {
      if (entries_[i].addr == addr) {
        entries_[i].until_ns = until_ns;
        return;
      }
    }
    // Drop expired entries first.
    size_t kept = 0;
    for (size_t i = 0; i < count_; ++i) {
      if (entries_[i].until_ns > now_ns) entries_[kept++] = entries_[i];
    }
    count_ = kept;
    if (count_ < kSlots) {
      pick = count_++;
    } else {
      pick = 0;
      for (size_t i = 1; i < count_; ++i) {
        if (entries_[i].until_ns < entries_[pick].until_ns) pick = i;
      }
    }
    entries_[pick] = Entry{addr, until_ns};
  }

  bool suppressed(const Ipv6Addr& addr, uint64_t now_ns) const {
    for (size_t i = 0; i < count_; ++i) {
      if (entries_[i].addr == addr) return entries_[i].until_ns > now_ns;
    }
    return false;
  }

  // Live or expired entries not yet dropped.
  size_t size() const { return count_; }

 private:
  struct Entry {
    Ipv6Addr addr;
    uint64_t until_ns;
  };
  Entry entries_[kSlots] = {};
  size_t count_ = 0;
};

}  // namespace flannel
