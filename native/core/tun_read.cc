#include "tun_read.h"

#include "gso.h"

namespace flannel {

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
  if (!r.gso && (r.vh.flags & kVirtioFlagNeedsCsum)) {
    if (!complete_partial_checksum(r.pkt, r.len, r.vh.csum_start, r.vh.csum_offset)) {
      r.decision.drop = kEgressDropBadOffload;
      return r;
    }
    r.vh.flags = static_cast<uint8_t>(r.vh.flags & ~kVirtioFlagNeedsCsum);
  }
  r.decision = decide_egress(r.pkt, r.len, state);
  if (!r.decision.forward) return r;
  const size_t length = r.decision.length;
  r.segments = r.gso && r.vh.gso_size > 0 ? (length + r.vh.gso_size - 1) / r.vh.gso_size : 1;
  if (r.segments > max_segments) {
    r.decision.forward = false;
    r.decision.drop = kEgressDropBadOffload;
    r.decision.icmp = IcmpAction::kNone;
  }
  return r;
}

}  // namespace flannel
