// libFuzzer target: the egress glue, from the bytes of one TUN read to the
// wire segments (core/tun_read.h classify_tun_read, then core/gso.h
// split_tun_packet, as native/linux/egress_linux.cc runs them). Input: one
// byte choosing the state and whether the TUN has a virtio header, then the
// read. Invariants: the packet lies inside the read; a forwarded packet goes
// to the route of its destination (inner IPv6 only to a peer that carries
// it) and its segment bound is within the
// limit; a checksum is left partial only when this node and the route's
// lease both take partial checksums; a
// split's slices lie inside the packet and the arena, never exceed that
// bound, and tile the forwarded length; a drop names a drop counter.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "../core/gso.h"
#include "../core/tun_read.h"
#include "fuzz_check.h"
#include "fuzz_state.h"

using namespace flannel;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const ForwardingState& st = fuzzstate::state(data[0]);
  const bool vnet_hdr = (data[0] & 0x80) != 0;
  std::vector<uint8_t> buf(data + 1, data + size);
  constexpr size_t kMaxSegments = 1024;
  const TunRead r = classify_tun_read(buf.data(), buf.size(), vnet_hdr, st, kMaxSegments);
  FUZZ_CHECK(r.pkt >= buf.data() && r.pkt + r.len <= buf.data() + buf.size());
  FUZZ_CHECK(r.len == (vnet_hdr ? (buf.size() >= kVirtioNetHdrLen ? buf.size() - kVirtioNetHdrLen : 0) : buf.size()));
  const Decision& d = r.decision;
  if (!d.forward) {
    FUZZ_CHECK(d.drop < kCounterCount);
    return 0;
  }
  FUZZ_CHECK(d.length <= r.len && r.segments >= 1 && r.segments <= kMaxSegments);
  const NextHop* hop = d.version == 6 ? st.routes6.lookup(d.header6.dst) : st.routes.lookup(d.header.dst);
  FUZZ_CHECK(hop != nullptr && hop->addr == d.next_hop.addr && hop->flags == d.next_hop.flags);
  // Inner IPv6 goes only to a peer that carries it.
  if (d.version == 6) FUZZ_CHECK((d.next_hop.flags & kPeerIpv6) != 0);
  // A pending checksum is completed before the split unless the peer takes partial ones.
  if (!r.gso && !r.leave_partial) FUZZ_CHECK((r.vh.flags & kVirtioFlagNeedsCsum) == 0);
  // Partial only when both ends take them: this node's policy and the route's lease.
  if (r.leave_partial) FUZZ_CHECK(st.policy.partial_checksums && (d.next_hop.flags & kPeerPartialChecksums) != 0);

  std::vector<uint8_t> arena(kMaxSegments * 120);
  std::vector<SegmentSlice> slices(kMaxSegments);
  size_t n = 0;
  const SplitResult split =
      split_tun_packet(r.vh, r.pkt, d.length, arena.data(), arena.size(), slices.data(), kMaxSegments, &n,
                       r.leave_partial);
  if (split != SplitResult::kOk) {
    FUZZ_CHECK(n == 0);
    return 0;
  }
  FUZZ_CHECK(n >= 1 && n <= r.segments);
  size_t end = slices[0].payload_off;
  for (size_t i = 0; i < n; ++i) {
    const SegmentSlice& s = slices[i];
    FUZZ_CHECK(static_cast<size_t>(s.header_off) + s.header_len <= arena.size());
    FUZZ_CHECK(s.payload_off == end && static_cast<size_t>(s.payload_off) + s.payload_len <= d.length);
    end += s.payload_len;
  }
  FUZZ_CHECK(end == d.length);
  return 0;
}
