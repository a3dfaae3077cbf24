#include "partial_checksum.h"

#include "checksum.h"
#include "gso.h"

namespace flannel {

namespace {

// Where TCP's and UDP's checksum field is in their header, and the shortest header.
bool l4_checksum_field(uint8_t protocol, uint16_t* offset, size_t* min_header) {
  if (protocol == kIpProtoTcp) {
    *offset = 16;
    *min_header = 20;
    return true;
  }
  if (protocol == kIpProtoUdp) {
    *offset = 6;
    *min_header = 8;
    return true;
  }
  return false;
}

}  // namespace

bool l4_checksum_spot(const uint8_t* pkt, const Ipv4Header& h, ChecksumSpot* out) {
  (void)pkt;
  if ((h.frag_field & 0x3fff) != 0) return false;  // MF or an offset: a fragment
  uint16_t offset;
  size_t min_header;
  if (!l4_checksum_field(h.protocol, &offset, &min_header)) return false;
  if (static_cast<size_t>(h.header_len) + min_header > h.total_len) return false;
  out->start = h.header_len;
  out->offset = offset;
  return true;
}

void write_pseudo_header_sum(uint8_t* pkt, const Ipv4Header& h, const ChecksumSpot& spot) {
  store_be16(pkt + spot.start + spot.offset, pseudo_header_sum_ipv4(pkt, h.protocol, h.total_len - spot.start));
}

bool l4_checksum_valid(const uint8_t* pkt, const Ipv4Header& h, const ChecksumSpot& spot) {
  if (h.protocol == kIpProtoUdp && load_be16(pkt + spot.start + spot.offset) == 0) return true;
  // The folded pseudo-header sum plus every L4 byte (the field included) folds to zero.
  const size_t len = h.total_len - spot.start;
  return l4_checksum_with_pseudo(pseudo_header_sum_ipv4(pkt, h.protocol, len), pkt + spot.start, len) == 0;
}

bool l4_checksum_spot(const uint8_t* pkt, const Ipv6Header& h, ChecksumSpot* out) {
  (void)pkt;
  uint16_t offset;
  size_t min_header;
  if (!l4_checksum_field(h.next_header, &offset, &min_header)) return false;
  if (h.payload_len < min_header) return false;
  out->start = static_cast<uint16_t>(kIpv6HeaderLen);
  out->offset = offset;
  return true;
}

void write_pseudo_header_sum(uint8_t* pkt, const Ipv6Header& h, const ChecksumSpot& spot) {
  store_be16(pkt + spot.start + spot.offset, pseudo_header_sum_ipv6(pkt, h.next_header, h.total_len() - spot.start));
}

bool l4_checksum_valid(const uint8_t* pkt, const Ipv6Header& h, const ChecksumSpot& spot) {
  if (h.next_header == kIpProtoUdp && load_be16(pkt + spot.start + spot.offset) == 0) return false;
  const size_t len = h.total_len() - spot.start;
  return l4_checksum_with_pseudo(pseudo_header_sum_ipv6(pkt, h.next_header, len), pkt + spot.start, len) == 0;
}

}  // namespace flannel
