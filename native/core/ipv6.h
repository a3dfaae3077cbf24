// IPv6 header parsing, hop limit and address classes (pure, no I/O).
//
// The udp backend carries inner IPv6 beside IPv4 (docs/datapath.md, "IPv6"):
// the forwarding decisions need the fixed header (RFC 8200 §3), the hop
// limit, and, for ICMPv6 errors and the source check's exceptions, the
// upper-layer protocol behind the common extension headers.
#pragma once

#include <cstddef>
#include <cstdint>

namespace flannel {

// RFC 8200 §3.
constexpr size_t kIpv6HeaderLen = 40;
constexpr size_t kIpv6HopLimitOffset = 7;
constexpr size_t kIpv6SourceOffset = 8;
constexpr size_t kIpv6DestinationOffset = 24;
constexpr uint8_t kIpProtoIcmpv6 = 58;  // RFC 4443
// Extension headers walked to find the upper layer (RFC 8200 §4.1).
constexpr uint8_t kIpv6HopByHop = 0;
constexpr uint8_t kIpv6Routing = 43;
constexpr uint8_t kIpv6Fragment = 44;
constexpr uint8_t kIpv6DestinationOptions = 60;

// An IPv6 address as two host-order halves.
struct Ipv6Addr {
  uint64_t hi = 0;
  uint64_t lo = 0;
  bool operator==(const Ipv6Addr& o) const { return hi == o.hi && lo == o.lo; }
  bool operator!=(const Ipv6Addr& o) const { return !(*this == o); }
  bool operator<(const Ipv6Addr& o) const { return hi != o.hi ? hi < o.hi : lo < o.lo; }
};

Ipv6Addr load_ipv6(const uint8_t* p);
void store_ipv6(uint8_t* p, const Ipv6Addr& a);
// `a` with the bits beyond `len` (0..128) cleared.
Ipv6Addr mask_ipv6(const Ipv6Addr& a, uint8_t len);

// An IPv6 network.
struct Ipv6Prefix {
  Ipv6Addr network;
  uint8_t len = 0;
  bool contains(const Ipv6Addr& a) const { return mask_ipv6(a, len) == mask_ipv6(network, len); }
};

enum class Ipv6Error : uint8_t {
  kNone,
  kNotIpv6,           // version nibble is not 6
  kTooShort,          // fewer bytes than the fixed header
  kBadPayloadLength,  // payload length beyond the bytes read, 0 (a jumbogram, RFC 2675), or 40 + it > 65535
};

// The fields of an IPv6 header the datapath needs.
struct Ipv6Header {
  uint16_t payload_len;  // in [1, min(buffer length, 65535) - 40]
  uint8_t next_header;
  uint8_t hop_limit;
  Ipv6Addr src;
  Ipv6Addr dst;
  uint16_t total_len() const { return static_cast<uint16_t>(kIpv6HeaderLen + payload_len); }
};

// Validates `len` bytes as one IPv6 packet and fills `out`. Bytes beyond the
// payload length are tolerated and must be ignored, as for IPv4.
Ipv6Error parse_ipv6(const uint8_t* pkt, size_t len, Ipv6Header* out);

// Forwarding decrements the hop limit (RFC 8200 §3). Returns false and
// leaves the packet untouched when it is 0 or 1. IPv6 has no header checksum.
bool decrement_hop_limit(uint8_t* pkt);

// The upper-layer header behind the extension headers this walker knows
// (hop-by-hop, routing, fragment, destination options).
struct Ipv6UpperLayer {
  bool found = false;           // false: an unknown extension header or a truncated chain
  bool first_fragment = true;   // false for a fragment with a non-zero offset
  uint8_t protocol = 0;
  uint16_t offset = 0;          // of the upper-layer header, from the start of the packet
};
Ipv6UpperLayer find_ipv6_upper_layer(const uint8_t* pkt, const Ipv6Header& h);

// Addresses whose packets the overlay never carries (RFC 4291 §2.4-2.5):
// the unspecified address, loopback, link-local unicast (fe80::/10) and
// every multicast (ff00::/8). The kernel sends router solicitations and MLD
// reports from and to such addresses on a TUN with IPv6; they stay on the link.
bool is_link_scoped_ipv6(const Ipv6Addr& a);
bool is_multicast_ipv6(const Ipv6Addr& a);

// True for inner sources no overlay packet may carry (docs/datapath.md,
// "Sources refused always"): the link-scoped addresses above and the
// IPv4-mapped ::ffff:0:0/96 (RFC 4291 §2.5.5.2), which a dual-stack socket
// would take for an IPv4 peer.
bool is_martian_source_ipv6(const Ipv6Addr& a);

}  // namespace flannel
