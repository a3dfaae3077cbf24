#include "ipv6.h"

#include "checksum.h"

namespace flannel {

Ipv6Addr load_ipv6(const uint8_t* p) {
  Ipv6Addr a;
  a.hi = static_cast<uint64_t>(load_be32(p)) << 32 | load_be32(p + 4);
  a.lo = static_cast<uint64_t>(load_be32(p + 8)) << 32 | load_be32(p + 12);
  return a;
}

void store_ipv6(uint8_t* p, const Ipv6Addr& a) {
  store_be32(p, static_cast<uint32_t>(a.hi >> 32));
  store_be32(p + 4, static_cast<uint32_t>(a.hi));
  store_be32(p + 8, static_cast<uint32_t>(a.lo >> 32));
  store_be32(p + 12, static_cast<uint32_t>(a.lo));
}

Ipv6Addr mask_ipv6(const Ipv6Addr& a, uint8_t len) {
  Ipv6Addr m;
  if (len == 0) return m;
  if (len <= 64) {
    m.hi = a.hi & (~0ull << (64 - len));
    return m;
  }
  m.hi = a.hi;
  m.lo = len >= 128 ? a.lo : a.lo & (~0ull << (128 - len));
  return m;
}

Ipv6Error parse_ipv6(const uint8_t* pkt, size_t len, Ipv6Header* out) {
  if (len < 1 || (pkt[0] >> 4) != 6) return Ipv6Error::kNotIpv6;
  if (len < kIpv6HeaderLen) return Ipv6Error::kTooShort;
  const uint16_t payload = load_be16(pkt + 4);
  // total_len() is 16 bits, like every length the datapath carries: a
  // payload above 65495 bytes would wrap it.
  if (payload == 0 || kIpv6HeaderLen + payload > len || kIpv6HeaderLen + payload > 0xffff) {
    return Ipv6Error::kBadPayloadLength;
  }
  out->payload_len = payload;
  out->next_header = pkt[6];
  out->hop_limit = pkt[kIpv6HopLimitOffset];
  out->src = load_ipv6(pkt + kIpv6SourceOffset);
  out->dst = load_ipv6(pkt + kIpv6DestinationOffset);
  return Ipv6Error::kNone;
}

bool decrement_hop_limit(uint8_t* pkt) {
  if (pkt[kIpv6HopLimitOffset] <= 1) return false;
  --pkt[kIpv6HopLimitOffset];
  return true;
}

Ipv6UpperLayer find_ipv6_upper_layer(const uint8_t* pkt, const Ipv6Header& h) {
  Ipv6UpperLayer u;
  const size_t end = h.total_len();
  size_t off = kIpv6HeaderLen;
  uint8_t next = h.next_header;
  // At most 8 extension headers: RFC 8200 §4.1 allows each once (destination options twice).
  for (int i = 0; i < 8; ++i) {
    switch (next) {
      case kIpv6HopByHop:
      case kIpv6Routing:
      case kIpv6DestinationOptions:
        if (off + 8 > end) return u;
        next = pkt[off];
        off += (static_cast<size_t>(pkt[off + 1]) + 1) * 8;
        continue;
      case kIpv6Fragment:
        if (off + 8 > end) return u;
        if ((load_be16(pkt + off + 2) & 0xfff8) != 0) u.first_fragment = false;
        next = pkt[off];
        off += 8;
        continue;
      default:
        if (off > end) return u;
        u.found = true;
        u.protocol = next;
        u.offset = static_cast<uint16_t>(off);
        return u;
    }
  }
  return u;
}

bool is_multicast_ipv6(const Ipv6Addr& a) { return (a.hi >> 56) == 0xff; }

bool is_link_scoped_ipv6(const Ipv6Addr& a) {
  if (a.hi == 0 && (a.lo == 0 || a.lo == 1)) return true;  // :: and ::1
  if ((a.hi >> 54) == (0xfe80ull >> 6)) return true;      // fe80::/10
  return is_multicast_ipv6(a);
}

bool is_martian_source_ipv6(const Ipv6Addr& a) {
  return is_link_scoped_ipv6(a) || (a.hi == 0 && (a.lo >> 32) == 0xffffu);
}

}  // namespace flannel
