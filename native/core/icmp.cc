#include "icmp.h"

#include <cstring>

#include "checksum.h"

namespace flannel {

namespace {

// ICMP types Linux knows as queries or replies (not errors); icmp_send
// refuses to answer everything else, including types above 18.
bool is_icmp_query_type(uint8_t type) {
  switch (type) {
    case 0:   // echo reply
    case 8:   // echo request
    case 13:  // timestamp
    case 14:  // timestamp reply
    case 15:  // information request
    case 16:  // information reply
    case 17:  // address mask request
    case 18:  // address mask reply
      return true;
    default:
      return false;
  }
}

}  // namespace

bool icmp_error_allowed(IcmpError kind, const uint8_t* pkt, const Ipv4Header& h) {
  if (!h.is_first_fragment()) return false;
  if (is_special_ipv4(h.src) || h.dst >= 0xe0000000u) return false;
  if (h.protocol != kIpProtoIcmp) return true;
  if (kind == IcmpError::kNetUnreachable) return false;
  // An ICMP packet too short to carry a type byte is treated as an error message.
  if (h.total_len <= h.header_len) return false;
  return is_icmp_query_type(pkt[h.header_len]);
}

size_t build_icmp_error(IcmpError kind, const uint8_t* offender, const Ipv4Header& h,
                        uint32_t source_addr, uint8_t* out, size_t out_cap) {
  const size_t payload_available = h.total_len - h.header_len;
  const size_t quote_len =
      h.header_len + (payload_available < kIcmpErrorQuotedPayload ? payload_available
                                                                  : kIcmpErrorQuotedPayload);
  const size_t icmp_len = 8 + quote_len;
  const size_t total_len = kIpv4MinHeaderLen + icmp_len;
  if (total_len > out_cap) return 0;

  const bool unreachable = kind == IcmpError::kNetUnreachable;
  uint8_t* ip = out;
  ip[0] = 0x45;
  ip[1] = 0;  // TOS
  store_be16(ip + 2, static_cast<uint16_t>(total_len));
  store_be16(ip + 4, 0);  // ID
  store_be16(ip + 6, 0);  // flags, fragment offset: DF not set
  ip[8] = unreachable ? kIcmpNetUnreachableTtl : kIcmpTimeExceededTtl;
  ip[9] = kIpProtoIcmp;
  store_be16(ip + 10, 0);
  store_be32(ip + 12, source_addr);
  store_be32(ip + 16, h.src);
  store_be16(ip + 10, internet_checksum(ip, kIpv4MinHeaderLen));

  uint8_t* icmp = out + kIpv4MinHeaderLen;
  icmp[0] = unreachable ? kIcmpTypeDestUnreachable : kIcmpTypeTimeExceeded;
  icmp[1] = unreachable ? kIcmpCodeNetUnreachable : kIcmpCodeTtlExceeded;
  store_be16(icmp + 2, 0);
  store_be32(icmp + 4, 0);  // unused
  std::memcpy(icmp + 8, offender, quote_len);
  store_be16(icmp + 2, internet_checksum(icmp, icmp_len));
  return total_len;
}

}  // namespace flannel
