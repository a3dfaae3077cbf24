// One read from the TUN, taken apart (pure): the virtio header the TUN puts
// before the packet when it has IFF_VNET_HDR, the packet, and what the
// forwarding decision (forwarding.h) says about it. This is the glue between
// the read() in native/linux/egress_linux.cc and split_tun_packet (gso.h),
// kept here so the fuzzers and the rootless tests run it.
#pragma once

#include <cstddef>
#include <cstdint>

#include "forwarding.h"
#include "virtio_net.h"

namespace flannel {

struct TunRead {
  VirtioNetHdr vh;      // all zero without a virtio header
  uint8_t* pkt = nullptr;
  size_t len = 0;       // bytes after the virtio header
  bool gso = false;     // a TSO/USO super-packet
  Decision decision;    // !decision.forward: decision.drop says why
  size_t segments = 0;  // when forwarded: an upper bound of the wire packets it becomes
  // When forwarded and both ends take partial checksums (this node's
  // IngressPolicy::partial_checksums and the route's kPeerPartialChecksums):
  // its TCP/UDP checksum is left for the receiver (split_tun_packet's
  // leave_partial).
  bool leave_partial = false;
};

// `buf` holds `n` bytes as read; `vnet_hdr` says whether they start with a
// virtio header. The packet is modified in place (TTL) when forwarded. A
// packet that would need more than `max_segments` wire packets is dropped
// (kEgressDropBadOffload). Checksums:
//  - unless both ends take partial checksums, a pending (NEEDS_CSUM)
//    checksum is completed: the wire carries complete packets, as upstream
//    peers need;
//  - when both do, a pending checksum at the spot the receiver
//    will mark (partial_checksum.h) stays pending; a packet whose checksum
//    the kernel did not vouch for (neither NEEDS_CSUM nor DATA_VALID) is
//    verified first, since the receiver will not verify it
//    (kEgressDropBadChecksum);
//  - a pending checksum is completed before an ICMP error quotes the
//    packet, so the quote shows what the wire would have carried
//    (docs/compatibility.md §5.6).
TunRead classify_tun_read(uint8_t* buf, size_t n, bool vnet_hdr, const ForwardingState& state,
                          size_t max_segments);

}  // namespace flannel
