#include "gso.h"

#include <cstring>

#include "checksum.h"
#include "ipv4.h"
#include "ipv6.h"

namespace flannel {

namespace {

constexpr uint8_t kTcpFin = 0x01;
constexpr uint8_t kTcpPsh = 0x08;
constexpr uint8_t kTcpCwr = 0x80;

// The unfolded sum of the pseudo-header of `ip` (IPv4, RFC 793 §3.1; IPv6,
// RFC 8200 §8.1) for an L4 part of `l4_len` bytes.
uint32_t pseudo_sum(const uint8_t* ip, bool v6, uint8_t protocol, size_t l4_len) {
  if (v6) {
    uint8_t tail[8] = {0, 0, 0, 0, 0, 0, 0, protocol};
    store_be32(tail, static_cast<uint32_t>(l4_len));
    return csum_add_bytes(csum_add_bytes(0, ip + kIpv6SourceOffset, 32), tail, sizeof(tail));
  }
  uint8_t pseudo[12];
  std::memcpy(pseudo, ip + 12, 8);  // source, destination
  pseudo[8] = 0;
  pseudo[9] = protocol;
  store_be16(pseudo + 10, static_cast<uint16_t>(l4_len));
  return csum_add_bytes(0, pseudo, sizeof(pseudo));
}

uint16_t segment_checksum(const uint8_t* ip, bool v6, uint8_t protocol, const uint8_t* l4hdr, size_t l4hdr_len,
                          const uint8_t* payload, size_t payload_len, bool leave_partial) {
  const uint32_t pseudo = pseudo_sum(ip, v6, protocol, l4hdr_len + payload_len);
  if (leave_partial) return static_cast<uint16_t>(~csum_fold(pseudo));
  // The header's checksum field is zeroed in every header we build, and
  // l4hdr_len is even (TCP: 4 * data offset; UDP: 8), so chaining is exact.
  uint16_t c = csum_fold(csum_add_bytes(csum_add_bytes(pseudo, l4hdr, l4hdr_len), payload, payload_len));
  if (protocol == kIpProtoUdp && c == 0) c = 0xffff;  // RFC 768: 0 means "no checksum"
  return c;
}

}  // namespace

bool complete_partial_checksum(uint8_t* pkt, size_t len, uint16_t csum_start, uint16_t csum_offset) {
  const size_t field = static_cast<size_t>(csum_start) + csum_offset;
  if (csum_start >= len || field + 2 > len) return false;
  // The field already holds the pseudo-header sum; summing it in completes it.
  const uint16_t c = csum_fold(csum_add_bytes(0, pkt + csum_start, len - csum_start));
  store_be16(pkt + field, c);
  return true;
}

uint16_t pseudo_header_sum_ipv4(const uint8_t* iphdr, uint8_t protocol, size_t l4_len) {
  return static_cast<uint16_t>(~csum_fold(pseudo_sum(iphdr, false, protocol, l4_len)));
}

uint16_t pseudo_header_sum_ipv6(const uint8_t* iphdr, uint8_t protocol, size_t l4_len) {
  return static_cast<uint16_t>(~csum_fold(pseudo_sum(iphdr, true, protocol, l4_len)));
}

uint16_t l4_checksum_with_pseudo(uint16_t pseudo, const uint8_t* l4, size_t len) {
  uint8_t word[2];
  store_be16(word, pseudo);
  return csum_fold(csum_add_bytes(csum_add_bytes(0, word, 2), l4, len));
}

uint16_t l4_checksum_ipv4(const uint8_t* iphdr, uint8_t protocol, const uint8_t* l4hdr, size_t l4hdr_len,
                          const uint8_t* payload, size_t payload_len) {
  return segment_checksum(iphdr, false, protocol, l4hdr, l4hdr_len, payload, payload_len, false);
}

SplitResult split_tun_packet(const VirtioNetHdr& vh, uint8_t* pkt, size_t len, uint8_t* arena,
                             size_t arena_cap, SegmentSlice* out, size_t max_out, size_t* nout,
                             bool leave_partial) {
  *nout = 0;
  const uint8_t gso = static_cast<uint8_t>(vh.gso_type & ~kVirtioGsoEcn);
  if (gso == kVirtioGsoNone) {
    if ((vh.flags & kVirtioFlagNeedsCsum) && !leave_partial &&
        !complete_partial_checksum(pkt, len, vh.csum_start, vh.csum_offset)) {
      return SplitResult::kBadVirtioHdr;
    }
    if (len > 0xffff) return SplitResult::kBadPacket;  // an unsegmented IPv4 packet is at most 64 KiB
    if (max_out < 1) return SplitResult::kTooManySegments;
    out[0] = SegmentSlice{0, 0, 0, static_cast<uint16_t>(len)};
    *nout = 1;
    return SplitResult::kOk;
  }
  if (gso != kVirtioGsoTcpv4 && gso != kVirtioGsoTcpv6 && gso != kVirtioGsoUdpL4) return SplitResult::kUnsupportedGso;
  if (vh.gso_size == 0) return SplitResult::kBadVirtioHdr;
  if (len < kIpv4MinHeaderLen) return SplitResult::kBadPacket;
  const bool v6 = (pkt[0] >> 4) == 6;
  if ((pkt[0] >> 4) != (v6 ? 6 : 4) || (gso == kVirtioGsoTcpv4 && v6) || (gso == kVirtioGsoTcpv6 && !v6)) {
    return SplitResult::kBadPacket;
  }
  // IPv6: the L4 header must follow the fixed header (the kernel's TSO6 and
  // USO packets from a TUN carry no extension headers).
  const size_t iphl = v6 ? kIpv6HeaderLen : static_cast<size_t>(pkt[0] & 0x0f) * 4;
  if (iphl < kIpv4MinHeaderLen || iphl > len) return SplitResult::kBadPacket;
  const bool tcp = gso != kVirtioGsoUdpL4;
  if (pkt[v6 ? 6 : 9] != (tcp ? kIpProtoTcp : kIpProtoUdp)) return SplitResult::kBadPacket;
  size_t l4hl;
  if (tcp) {
    if (iphl + 20 > len) return SplitResult::kBadPacket;
    l4hl = static_cast<size_t>(pkt[iphl + 12] >> 4) * 4;
    if (l4hl < 20) return SplitResult::kBadPacket;
  } else {
    l4hl = 8;
  }
  const size_t hl = iphl + l4hl;
  if (hl >= len) return SplitResult::kBadPacket;  // GSO without payload
  const size_t payload = len - hl;
  const size_t mss = vh.gso_size;
  const size_t nseg = (payload + mss - 1) / mss;
  if (nseg > max_out) return SplitResult::kTooManySegments;
  if (nseg * hl > arena_cap) return SplitResult::kArenaFull;

  const uint16_t id0 = v6 ? 0 : load_be16(pkt + 4);
  const uint32_t seq0 = tcp ? load_be32(pkt + iphl + 4) : 0;
  const uint8_t flags0 = tcp ? pkt[iphl + 13] : 0;
  size_t off = hl;
  for (size_t i = 0; i < nseg; ++i) {
    const size_t seglen = (i + 1 < nseg) ? mss : payload - mss * (nseg - 1);
    uint8_t* h = arena + i * hl;
    std::memcpy(h, pkt, hl);
    if (v6) {
      // IPv6: the payload length (no id, no header checksum).
      store_be16(h + 4, static_cast<uint16_t>(l4hl + seglen));
    } else {
      // IPv4: length, id, checksum.
      store_be16(h + 2, static_cast<uint16_t>(hl + seglen));
      store_be16(h + 4, static_cast<uint16_t>(id0 + i));
      store_be16(h + 10, 0);
      store_be16(h + 10, internet_checksum(h, iphl));
    }
    uint8_t* l4 = h + iphl;
    if (tcp) {
      store_be32(l4 + 4, seq0 + static_cast<uint32_t>(mss * i));
      uint8_t f = flags0;
      if (i + 1 < nseg) f &= static_cast<uint8_t>(~(kTcpFin | kTcpPsh));
      if (i > 0) f &= static_cast<uint8_t>(~kTcpCwr);
      l4[13] = f;
      store_be16(l4 + 16, 0);
      store_be16(l4 + 16, segment_checksum(h, v6, kIpProtoTcp, l4, l4hl, pkt + off, seglen, leave_partial));
    } else {
      store_be16(l4 + 4, static_cast<uint16_t>(8 + seglen));
      store_be16(l4 + 6, 0);
      store_be16(l4 + 6, segment_checksum(h, v6, kIpProtoUdp, l4, 8, pkt + off, seglen, leave_partial));
    }
    out[i] = SegmentSlice{static_cast<uint32_t>(i * hl), static_cast<uint16_t>(hl), static_cast<uint32_t>(off),
                          static_cast<uint16_t>(seglen)};
    off += seglen;
  }
  *nout = nseg;
  return SplitResult::kOk;
}

}  // namespace flannel
