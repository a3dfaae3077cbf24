// libFuzzer target: cutting what a TUN with TSO/USO hands us into wire
// packets (core/gso.h split_tun_packet). Input: a byte whose low bit says
// whether checksums are left partial (toward a peer that takes them), a
// 10-byte virtio header, then the packet. Invariants when the split
// succeeds: every slice lies within the packet and the arena; the payload
// slices tile the packet's payload in order; and each segment, reassembled
// here, is one IPv4 packet whose total length, header checksum and TCP/UDP
// checksum verify (IPv6: payload length and TCP/UDP checksum) (reference
// checksum, not the datapath's), with TCP sequence numbers following on;
// with partial checksums, each segment's checksum field holds its
// pseudo-header sum, and completing it gives the checksum that verifies.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "../core/checksum.h"
#include "../core/gso.h"
#include "../test/packet_builder.h"
#include "fuzz_check.h"

using namespace flannel;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1 + kVirtioNetHdrLen) return 0;
  const bool leave_partial = (data[0] & 1) != 0;
  ++data;
  --size;
  const VirtioNetHdr vh = decode_virtio_hdr(data);
  std::vector<uint8_t> pkt(data + kVirtioNetHdrLen, data + size);
  const std::vector<uint8_t> original = pkt;
  constexpr size_t kMaxOut = 1024;
  std::vector<uint8_t> arena(kMaxOut * 120);
  std::vector<SegmentSlice> out(kMaxOut);
  size_t n = 0;
  const SplitResult r =
      split_tun_packet(vh, pkt.data(), pkt.size(), arena.data(), arena.size(), out.data(), kMaxOut, &n, leave_partial);
  if (r != SplitResult::kOk) {
    FUZZ_CHECK(n == 0);
    return 0;
  }
  FUZZ_CHECK(n >= 1 && n <= kMaxOut);
  const uint8_t gso = static_cast<uint8_t>(vh.gso_type & ~kVirtioGsoEcn);
  if (gso == kVirtioGsoNone) {
    FUZZ_CHECK(n == 1 && out[0].header_len == 0 && out[0].payload_off == 0 && out[0].payload_len == pkt.size());
    // A pending checksum left partial is left as it came.
    if (leave_partial) FUZZ_CHECK(pkt == original);
    return 0;
  }
  const bool v6 = (pkt[0] >> 4) == 6;
  const size_t iphl = v6 ? 40 : static_cast<size_t>(pkt[0] & 0x0f) * 4;
  size_t expect_off = out[0].payload_off;
  const bool tcp = gso == kVirtioGsoTcpv4 || gso == kVirtioGsoTcpv6;
  uint32_t expect_seq = tcp ? load_be32(pkt.data() + iphl + 4) : 0;
  for (size_t i = 0; i < n; ++i) {
    const SegmentSlice& s = out[i];
    FUZZ_CHECK(s.header_len == out[0].header_len && s.header_len > 0);
    FUZZ_CHECK(static_cast<size_t>(s.header_off) + s.header_len <= arena.size());
    FUZZ_CHECK(s.payload_off == expect_off && static_cast<size_t>(s.payload_off) + s.payload_len <= pkt.size());
    FUZZ_CHECK(s.payload_len > 0 && s.payload_len <= vh.gso_size);
    if (i + 1 < n) FUZZ_CHECK(s.payload_len == vh.gso_size);
    expect_off += s.payload_len;
    std::vector<uint8_t> seg(arena.begin() + s.header_off, arena.begin() + s.header_off + s.header_len);
    seg.insert(seg.end(), pkt.begin() + s.payload_off, pkt.begin() + s.payload_off + s.payload_len);
    if (leave_partial) {
      // The field holds the pseudo-header sum; completing it gives the real checksum.
      const uint16_t field = load_be16(seg.data() + iphl + (tcp ? 16 : 6));
      const uint8_t proto = tcp ? 6 : 17;
      FUZZ_CHECK(field == (v6 ? pseudo_header_sum_ipv6(seg.data(), proto, seg.size() - iphl)
                               : pseudo_header_sum_ipv4(seg.data(), proto, seg.size() - iphl)));
      FUZZ_CHECK(complete_partial_checksum(seg.data(), seg.size(), static_cast<uint16_t>(iphl), tcp ? 16 : 6));
    }
    if (v6) {
      FUZZ_CHECK(load_be16(seg.data() + 4) + 40u == seg.size());
      FUZZ_CHECK(testpkt::l4_check_reference6(seg.data(), seg.size()) == 0);
    } else {
      FUZZ_CHECK(load_be16(seg.data() + 2) == seg.size());
      FUZZ_CHECK(testpkt::header_checksum_ok(seg.data()));
      FUZZ_CHECK(testpkt::l4_check_reference(seg.data(), seg.size()) == 0);
    }
    if (tcp) {
      FUZZ_CHECK(load_be32(seg.data() + iphl + 4) == expect_seq);
      expect_seq += s.payload_len;
      if (i + 1 < n) FUZZ_CHECK((seg[iphl + 13] & 0x09) == 0);  // FIN, PSH only on the last
    }
  }
  FUZZ_CHECK(expect_off == pkt.size());
  return 0;
}
