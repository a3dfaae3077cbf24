#include "icmpv6.h"

#include <cstring>

#include "checksum.h"
#include "gso.h"

namespace flannel {

uint16_t upper_layer_checksum_ipv6(const uint8_t* ip, uint8_t protocol, const uint8_t* l4, size_t l4_len) {
  return l4_checksum_with_pseudo(pseudo_header_sum_ipv6(ip, protocol, l4_len), l4, l4_len);
}

bool icmpv6_error_allowed(const uint8_t* pkt, const Ipv6Header& h) {
  if (is_multicast_ipv6(h.dst) || is_link_scoped_ipv6(h.src)) return false;
  const Ipv6UpperLayer u = find_ipv6_upper_layer(pkt, h);
  if (!u.found || !u.first_fragment) return false;
  if (u.protocol != kIpProtoIcmpv6) return true;
  // An ICMPv6 message too short to carry a type byte counts as an error message.
  if (u.offset >= h.total_len()) return false;
  const uint8_t type = pkt[u.offset];
  return type >= 128 && type != kIcmpv6TypeRedirect;
}

size_t build_icmpv6_error(Icmpv6Error kind, const uint8_t* offender, const Ipv6Header& h, const Ipv6Addr& source,
                          uint8_t* out, size_t out_cap) {
  constexpr size_t kIcmpHeader = 8;
  const size_t room = kIpv6MinMtu - kIpv6HeaderLen - kIcmpHeader;
  const size_t quote = h.total_len() < room ? h.total_len() : room;
  const size_t icmp_len = kIcmpHeader + quote;
  const size_t total = kIpv6HeaderLen + icmp_len;
  if (total > out_cap) return 0;
  uint8_t* ip = out;
  store_be32(ip, 0x60000000u);  // version 6, traffic class 0, flow label 0
  store_be16(ip + 4, static_cast<uint16_t>(icmp_len));
  ip[6] = kIpProtoIcmpv6;
  ip[kIpv6HopLimitOffset] = kIcmpv6ErrorHopLimit;
  store_ipv6(ip + kIpv6SourceOffset, source);
  store_ipv6(ip + kIpv6DestinationOffset, h.src);
  uint8_t* icmp = out + kIpv6HeaderLen;
  icmp[0] = kind == Icmpv6Error::kHopLimitExceeded ? kIcmpv6TypeTimeExceeded : kIcmpv6TypeDestUnreachable;
  icmp[1] = kind == Icmpv6Error::kAdminProhibited ? 1 : 0;
  store_be16(icmp + 2, 0);
  store_be32(icmp + 4, 0);  // unused
  std::memcpy(icmp + kIcmpHeader, offender, quote);
  store_be16(icmp + 2, upper_layer_checksum_ipv6(ip, kIpProtoIcmpv6, icmp, icmp_len));
  return total;
}

}  // namespace flannel
