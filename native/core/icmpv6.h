// ICMPv6 error generation (pure, no I/O), for inner IPv6 over the udp
// backend: destination unreachable for packets with no route or toward a
// peer that carries no IPv6, time exceeded for packets whose hop limit runs
// out (RFC 4443 §3.1, §3.3).
#pragma once

#include <cstddef>
#include <cstdint>

#include "ipv6.h"

namespace flannel {

enum class Icmpv6Error : uint8_t {
  kNoRoute,            // type 1 code 0, "no route to destination"
  kAdminProhibited,    // type 1 code 1: the peer's datapath carries no IPv6
  kHopLimitExceeded,   // type 3 code 0, "hop limit exceeded in transit"
};

constexpr uint8_t kIcmpv6TypeDestUnreachable = 1;
constexpr uint8_t kIcmpv6TypeTimeExceeded = 3;
constexpr uint8_t kIcmpv6TypeRedirect = 137;
// Hop limit of a generated error: the kernel's default (net.ipv6.conf.*.hop_limit).
constexpr uint8_t kIcmpv6ErrorHopLimit = 64;
// An error quotes as much of the offender as fits in the minimum IPv6 MTU
// (RFC 4443 §2.4(c)).
constexpr size_t kIpv6MinMtu = 1280;
constexpr size_t kIcmpv6ErrorMaxLen = kIpv6MinMtu;

// Whether an ICMPv6 error may be sent about `pkt` (validated into `h`),
// after RFC 4443 §2.4(e): never about an ICMPv6 error message or a
// redirect, a packet to a multicast address, or from an address that
// names no single node (unspecified, multicast, link-scoped); and, as the
// upper layer must be known for that, never about a non-first fragment or a
// packet whose extension headers the walker does not know.
bool icmpv6_error_allowed(const uint8_t* pkt, const Ipv6Header& h);

// Writes the error about `offender` into `out` (from `source`, the TUN's
// IPv6 address, to the offender's source) and returns its length, or 0 when
// `out_cap` is too small (kIcmpv6ErrorMaxLen always suffices). The checksum
// covers the IPv6 pseudo-header (RFC 4443 §2.3); the quote never reaches
// past the offender's payload length.
size_t build_icmpv6_error(Icmpv6Error kind, const uint8_t* offender, const Ipv6Header& h, const Ipv6Addr& source,
                          uint8_t* out, size_t out_cap);

// The checksum of an ICMPv6, TCP or UDP message over IPv6: the pseudo-header
// of `ip` (RFC 8200 §8.1) with `protocol` and `l4_len`, then the message.
// The message's checksum field must be zero.
uint16_t upper_layer_checksum_ipv6(const uint8_t* ip, uint8_t protocol, const uint8_t* l4, size_t l4_len);

}  // namespace flannel
