#include "partial_checksum.h"

#include "checksum.h"
#include "gso.h"

namespace flannel {

bool l4_checksum_spot(const uint8_t* pkt, const Ipv4Header& h, ChecksumSpot* out) {
  (void)pkt;
  if ((h.frag_field & 0x3fff) != 0) return false;  // MF or an offset: a fragment
  uint16_t offset;
  size_t min_header;
  if (h.protocol == kIpProtoTcp) {
    offset = 16;
    min_header = 20;
  } else if (h.protocol == kIpProtoUdp) {
    offset = 6;
    min_header = 8;
  } else {
    return false;
  }
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
  const uint16_t pseudo = pseudo_header_sum_ipv4(pkt, h.protocol, h.total_len - spot.start);
  uint8_t word[2];
  store_be16(word, pseudo);
  const uint32_t sum = csum_add_bytes(csum_add_bytes(0, word, 2), pkt + spot.start, h.total_len - spot.start);
  return csum_fold(sum) == 0;
}

bool l4_checksum_spot(const uint8_t* pkt, const Ipv6Header& h, ChecksumSpot* out) {
  (void)pkt;
  size_t min_header;
  uint16_t offset;
  if (h.next_header == kIpProtoTcp) {
    offset = 16;
    min_header = 20;
  } else if (h.next_header == kIpProtoUdp) {
    offset = 6;
    min_header = 8;
  } else {
    return false;
  }
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
  const uint16_t pseudo = pseudo_header_sum_ipv6(pkt, h.next_header, h.total_len() - spot.start);
  uint8_t word[2];
  store_be16(word, pseudo);
  const uint32_t sum = csum_add_bytes(csum_add_bytes(0, word, 2), pkt + spot.start, h.total_len() - spot.start);
  return csum_fold(sum) == 0;
}

}  // namespace flannel
