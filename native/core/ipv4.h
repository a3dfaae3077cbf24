// IPv4 header parsing and TTL handling (pure, no I/O).
#pragma once

#include <cstddef>
#include <cstdint>

namespace flannel {

// RFC 791 §3.1 constants.
constexpr size_t kIpv4MinHeaderLen = 20;  // IHL 5
constexpr size_t kIpv4MaxHeaderLen = 60;  // IHL 15: legal (upstream rejected it, docs/compatibility.md §5.6)
constexpr uint8_t kIpProtoIcmp = 1;
constexpr uint8_t kIpProtoTcp = 6;
constexpr uint8_t kIpProtoUdp = 17;
constexpr size_t kIpv4TtlOffset = 8;
constexpr size_t kIpv4ChecksumOffset = 10;

enum class Ipv4Error : uint8_t {
  kNone,
  kNotIpv4,          // version nibble is not 4 (e.g. an IPv6 router solicitation on flannel0)
  kTooShort,         // fewer bytes than a minimal IPv4 header
  kBadHeaderLength,  // IHL < 5, or the header runs past the end of the buffer
  kBadTotalLength,   // total length < header length, or > the bytes available
};

// The fields of an IPv4 header the datapath needs. Addresses are host order.
struct Ipv4Header {
  uint8_t header_len;  // IHL * 4, in [20, 60]
  uint8_t tos;
  uint16_t total_len;  // in [header_len, buffer length]
  uint16_t id;
  uint16_t frag_field;  // flags (3 bits) + fragment offset (13 bits)
  uint8_t ttl;
  uint8_t protocol;
  uint32_t src;
  uint32_t dst;

  bool is_first_fragment() const { return (frag_field & 0x1fff) == 0; }
  bool more_fragments() const { return (frag_field & 0x2000) != 0; }
};

// Validates `len` bytes as one IPv4 packet and fills `out`. The version is
// checked first so a non-IPv4 packet is classified as such whatever its
// length. Bytes beyond total_len (never produced by a TUN or by a flannel
// peer) are tolerated and must be ignored by the caller, as the kernel does
// in ip_rcv.
Ipv4Error parse_ipv4(const uint8_t* pkt, size_t len, Ipv4Header* out);

// Forwarding a packet decrements its TTL (RFC 1812 §5.3.1). Returns false and
// leaves the packet untouched when the TTL is 0 or 1: the decremented TTL
// would be 0, so the packet must not be forwarded. Otherwise decrements the
// TTL in place and patches the header checksum incrementally (RFC 1624), so a
// header whose checksum was valid stays valid and one that was not stays not.
bool decrement_ttl(uint8_t* pkt);

// True for addresses that must never be the destination of an ICMP error or
// be answered at all (RFC 1812 §4.3.2.7): 0.0.0.0/8, 127.0.0.0/8, class D
// multicast, class E, and the limited broadcast.
bool is_special_ipv4(uint32_t addr);

// True for inner sources no overlay packet may carry, whatever the source
// check allows (docs/datapath.md, "Sources refused always"): the special
// addresses above and link-local 169.254.0.0/16 (RFC 3927). A packet from
// one of them would reach pods and host services as if it came from the
// node itself or its loopback (flannel0 has accept_local, and kube-proxy
// sets route_localnet).
bool is_martian_source_ipv4(uint32_t addr);

}  // namespace flannel
