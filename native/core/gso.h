// Splitting what a TUN with TSO/USO hands us into wire packets (pure).
//
// A TCP (TSO) or UDP (USO) "super-packet" read from the TUN carries one IP
// and L4 header and up to ~64 KiB of payload; the virtio header says how to
// cut it (gso_size). Each datagram on the wire must carry exactly one
// complete inner IPv4 packet with valid IP and TCP/UDP checksums
// (docs/compatibility.md §5.3; an upstream peer knows nothing of offloads; a
// flannel-ts peer may take partial ones instead), so every segment gets
// its own headers, as the kernel's tcp4_gso_segment / __udp_gso_segment make
// them:
//  - IP: total length of the segment, IP id incremented per segment, header
//    checksum recomputed; TTL and the rest copied (the caller has already
//    decremented the TTL of the original header);
//  - TCP: sequence number advanced by the payload before it, FIN and PSH
//    only on the last segment, CWR only on the first, full checksum;
//  - UDP: length of the segment, full checksum.
// Inner IPv6 (TSO6, and USO over IPv6) likewise, after tcp6_gso_segment: the
// payload length per segment, no id, no header checksum, the L4 checksum
// over the IPv6 pseudo-header.
// The payload is NOT copied: a segment is (headers written into a caller
// arena) + (a slice of the original buffer), ready for an iovec.
#pragma once

#include <cstddef>
#include <cstdint>

#include "virtio_net.h"

namespace flannel {

struct SegmentSlice {
  uint32_t header_off;   // where this segment's headers are in the arena
  uint16_t header_len;   // IP + TCP/UDP header bytes (0: the slice is the whole packet)
  uint32_t payload_off;  // where its payload starts in the original packet
  uint16_t payload_len;

  size_t size() const { return static_cast<size_t>(header_len) + payload_len; }
};

enum class SplitResult : uint8_t {
  kOk,
  kBadVirtioHdr,      // checksum offsets outside the packet, gso_size 0, ...
  kUnsupportedGso,    // UFO (obsolete) or an unknown type
  kBadPacket,         // not the IPv4/IPv6 TCP/UDP packet the header announces
  kTooManySegments,   // more segments than `max_out`
  kArenaFull,         // headers do not fit `arena_cap`
};

// Prepares the packet `pkt` (`len` bytes after the virtio header `vh`) for
// sending. Without GSO it completes a pending checksum (NEEDS_CSUM) in place
// and returns one slice covering the whole packet. With GSO it writes the
// segments' headers into `arena` and returns one slice per segment in order.
// With `leave_partial` (toward a peer that takes partial checksums,
// partial_checksum.h) a pending checksum stays pending, and each segment's
// TCP/UDP checksum field gets its pseudo-header sum instead of the full sum:
// no pass over the payload.
SplitResult split_tun_packet(const VirtioNetHdr& vh, uint8_t* pkt, size_t len, uint8_t* arena,
                             size_t arena_cap, SegmentSlice* out, size_t max_out, size_t* nout,
                             bool leave_partial = false);

// Completes a CHECKSUM_PARTIAL packet: the 16-bit field at
// csum_start + csum_offset holds the pseudo-header sum; the checksum covers
// [csum_start, len). False when the offsets do not fit the packet.
bool complete_partial_checksum(uint8_t* pkt, size_t len, uint16_t csum_start, uint16_t csum_offset);

// What a CHECKSUM_PARTIAL packet's TCP/UDP checksum field holds: the
// pseudo-header sum (addresses from `iphdr`, `protocol`, `l4_len`), folded,
// not complemented.
uint16_t pseudo_header_sum_ipv4(const uint8_t* iphdr, uint8_t protocol, size_t l4_len);
// The same over an IPv6 header (RFC 8200 §8.1).
uint16_t pseudo_header_sum_ipv6(const uint8_t* iphdr, uint8_t protocol, size_t l4_len);
// The one's complement sum of an L4 part (`len` bytes at `l4`) and its
// pseudo-header sum `pseudo` (as the two functions above return), folded and
// complemented: 0 when the checksum field in it verifies; the checksum to
// store when that field is zero.
uint16_t l4_checksum_with_pseudo(uint16_t pseudo, const uint8_t* l4, size_t len);

// The full TCP or UDP checksum of an IPv4 packet's L4 part given as its
// header and payload in two pieces (as a segment is), with the checksum
// field of `l4hdr` counted as zero.
uint16_t l4_checksum_ipv4(const uint8_t* iphdr, uint8_t protocol, const uint8_t* l4hdr, size_t l4hdr_len,
                          const uint8_t* payload, size_t payload_len);

}  // namespace flannel
