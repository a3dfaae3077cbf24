#include "tun_read.h"

#include "gso.h"
#include "partial_checksum.h"

namespace flannel {

namespace {

TunRead& dropped(TunRead& r, Counter reason) {
  r.decision.forward = false;
  r.decision.drop = reason;
  r.decision.icmp = IcmpAction::kNone;
  r.leave_partial = false;
  return r;
}

}  // namespace

TunRead classify_tun_read(uint8_t* buf, size_t n, bool vnet_hdr, const ForwardingState& state,
                          size_t max_segments) {
  TunRead r;
  r.pkt = buf;
  r.len = n;
  if (vnet_hdr) {
    if (n < kVirtioNetHdrLen) {
      r.len = 0;
      r.decision.drop = kEgressDropBadOffload;
      return r;
    }
    r.vh = decode_virtio_hdr(buf);
    r.pkt = buf + kVirtioNetHdrLen;
    r.len = n - kVirtioNetHdrLen;
  }
  r.gso = (r.vh.gso_type & ~kVirtioGsoEcn) != kVirtioGsoNone;
  const bool pending = !r.gso && (r.vh.flags & kVirtioFlagNeedsCsum) != 0;
  r.decision = decide_egress(r.pkt, r.len, state);
  Decision& d = r.decision;
  if (!d.forward) {
    if (pending && d.icmp == IcmpAction::kSend &&
        !complete_partial_checksum(r.pkt, r.len, r.vh.csum_start, r.vh.csum_offset)) {
      d.drop = kEgressDropBadOffload;
      d.icmp = IcmpAction::kNone;
    }
    return r;
  }
  // Both ends must take partial checksums: this node (its policy, what its
  // lease advertises) and the route's lease. A node that does not advertise
  // them must not send them either: its peers would not complete them.
  const bool partial_peer = state.policy.partial_checksums && (d.next_hop.flags & kPeerPartialChecksums) != 0;
  const bool v6 = d.version == 6;
  ChecksumSpot spot;
  const bool has_spot = partial_peer && !r.gso &&
                        (v6 ? l4_checksum_spot(r.pkt, d.header6, &spot) : l4_checksum_spot(r.pkt, d.header, &spot));
  if (pending) {
    if (has_spot && r.vh.csum_start == spot.start && r.vh.csum_offset == spot.offset) {
      r.leave_partial = true;
    } else if (complete_partial_checksum(r.pkt, d.length, r.vh.csum_start, r.vh.csum_offset)) {
      r.vh.flags = static_cast<uint8_t>(r.vh.flags & ~kVirtioFlagNeedsCsum);
    } else {
      return dropped(r, kEgressDropBadOffload);
    }
  } else if (has_spot && (r.vh.flags & kVirtioFlagDataValid) == 0 &&
             !(v6 ? l4_checksum_valid(r.pkt, d.header6, spot) : l4_checksum_valid(r.pkt, d.header, spot))) {
    return dropped(r, kEgressDropBadChecksum);
  }
  if (r.gso) r.leave_partial = partial_peer;
  const size_t length = d.length;
  r.segments = r.gso && r.vh.gso_size > 0 ? (length + r.vh.gso_size - 1) / r.vh.gso_size : 1;
  if (r.segments > max_segments) return dropped(r, kEgressDropBadOffload);
  return r;
}

}  // namespace flannel
