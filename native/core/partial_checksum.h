// Leaving TCP/UDP checksums to the receiving kernel between flannel-ts nodes
// (pure).
//
// Every checksum pass over a payload costs a touch of every byte. Between
// two flannel-ts nodes that both advertise it (docs/datapath.md, "Partial
// checksums"), the outer UDP checksum protects the bytes on the wire (our
// sockets always send one and the receiving kernel verifies it), so the
// inner TCP/UDP checksum can stay as the Linux stack leaves it while a
// packet is in flight: CHECKSUM_PARTIAL, the field holding the pseudo-header
// sum (folded, not complemented: net/ipv4/tcp_ipv4.c __tcp_v4_send_check),
// the rest done by whoever finally needs it (a NIC, or nobody for a local
// socket). The receiver marks what it writes to its TUN with
// VIRTIO_NET_HDR_F_NEEDS_CSUM at this spot.
#pragma once

#include <cstddef>
#include <cstdint>

#include "ipv4.h"
#include "ipv6.h"

namespace flannel {

// The checksum field of an unfragmented IPv4 TCP or UDP packet, in the
// virtio header's terms: csum_start (the L4 header) and csum_offset (the
// field within it: TCP 16, UDP 6).
struct ChecksumSpot {
  uint16_t start = 0;
  uint16_t offset = 0;
};

// The spot of `pkt` (`len` >= h.total_len bytes, `h` its parsed header), or
// false for anything else: other protocols, fragments (the checksum of a
// first fragment covers bytes in the others), an L4 header cut short.
bool l4_checksum_spot(const uint8_t* pkt, const Ipv4Header& h, ChecksumSpot* out);

// Writes the pseudo-header sum (RFC 793 §3.1, RFC 768) into the field at
// `spot`, as the kernel leaves a CHECKSUM_PARTIAL packet: correct whether
// the packet arrived with a complete checksum or a partial one.
void write_pseudo_header_sum(uint8_t* pkt, const Ipv4Header& h, const ChecksumSpot& spot);

// Whether the TCP/UDP checksum of the packet at `spot` verifies (a UDP
// checksum of 0 means none, RFC 768, and is valid).
bool l4_checksum_valid(const uint8_t* pkt, const Ipv4Header& h, const ChecksumSpot& spot);

// The same for inner IPv6: TCP or UDP right after the fixed header (a
// fragment or any other extension header: no spot), the pseudo-header of
// RFC 8200 §8.1; a UDP checksum of 0 is invalid over IPv6.
bool l4_checksum_spot(const uint8_t* pkt, const Ipv6Header& h, ChecksumSpot* out);
void write_pseudo_header_sum(uint8_t* pkt, const Ipv6Header& h, const ChecksumSpot& spot);
bool l4_checksum_valid(const uint8_t* pkt, const Ipv6Header& h, const ChecksumSpot& spot);

}  // namespace flannel
