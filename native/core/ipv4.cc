#include "ipv4.h"

#include "checksum.h"

namespace flannel {

Ipv4Error parse_ipv4(const uint8_t* pkt, size_t len, Ipv4Header* out) {
  if (len >= 1 && (pkt[0] >> 4) != 4) return Ipv4Error::kNotIpv4;
  if (len < kIpv4MinHeaderLen) return Ipv4Error::kTooShort;
  const size_t header_len = static_cast<size_t>(pkt[0] & 0x0f) * 4;
  if (header_len < kIpv4MinHeaderLen || header_len > len) return Ipv4Error::kBadHeaderLength;
  const uint16_t total_len = load_be16(pkt + 2);
  if (total_len < header_len || total_len > len) return Ipv4Error::kBadTotalLength;
  out->header_len = static_cast<uint8_t>(header_len);
  out->tos = pkt[1];
  out->total_len = total_len;
  out->id = load_be16(pkt + 4);
  out->frag_field = load_be16(pkt + 6);
  out->ttl = pkt[kIpv4TtlOffset];
  out->protocol = pkt[9];
  out->src = load_be32(pkt + 12);
  out->dst = load_be32(pkt + 16);
  return Ipv4Error::kNone;
}

bool decrement_ttl(uint8_t* pkt) {
  const uint8_t ttl = pkt[kIpv4TtlOffset];
  if (ttl <= 1) return false;
  // The TTL shares a 16-bit word with the protocol byte (RFC 791 §3.1).
  const uint16_t old_word = load_be16(pkt + kIpv4TtlOffset);
  pkt[kIpv4TtlOffset] = static_cast<uint8_t>(ttl - 1);
  const uint16_t new_word = load_be16(pkt + kIpv4TtlOffset);
  const uint16_t check = load_be16(pkt + kIpv4ChecksumOffset);
  store_be16(pkt + kIpv4ChecksumOffset, csum_replace16(check, old_word, new_word));
  return true;
}

bool is_special_ipv4(uint32_t addr) {
  const uint8_t first = static_cast<uint8_t>(addr >> 24);
  return first == 0 || first == 127 || first >= 224;  // 224+: class D, class E, 255.255.255.255
}

bool is_martian_source_ipv4(uint32_t addr) { return is_special_ipv4(addr) || (addr >> 16) == 0xa9feu; }

}  // namespace flannel
