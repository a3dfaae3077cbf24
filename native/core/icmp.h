// ICMPv4 error generation (pure, no I/O): net-unreachable for packets with no
// route (docs/compatibility.md §5.6) and time-exceeded for packets whose TTL runs out
// (beyond upstream, which drops them silently, docs/compatibility.md §10).
#pragma once

#include <cstddef>
#include <cstdint>

#include "ipv4.h"

namespace flannel {

enum class IcmpError : uint8_t {
  kNetUnreachable,  // type 3 code 0 (RFC 792)
  kTimeExceeded,    // type 11 code 0, "time to live exceeded in transit" (RFC 792)
};

constexpr uint8_t kIcmpTypeDestUnreachable = 3;
constexpr uint8_t kIcmpCodeNetUnreachable = 0;
constexpr uint8_t kIcmpTypeTimeExceeded = 11;
constexpr uint8_t kIcmpCodeTtlExceeded = 0;

// TTL of a generated net-unreachable: upstream's proxy_amd64.c uses 8, and the
// bytes must match it (docs/compatibility.md §5.6).
constexpr uint8_t kIcmpNetUnreachableTtl = 8;
// TTL of a generated time-exceeded: the kernel's default (net.ipv4.ip_default_ttl).
constexpr uint8_t kIcmpTimeExceededTtl = 64;

// The ICMP header (8 bytes) follows a 20-byte IP header; the quote is the
// offender's header plus at most 8 bytes of its payload (RFC 792).
constexpr size_t kIcmpErrorQuotedPayload = 8;
constexpr size_t kIcmpErrorMaxLen = kIpv4MinHeaderLen + 8 + kIpv4MaxHeaderLen + kIcmpErrorQuotedPayload;

// Whether an ICMP error of `kind` may be sent about the packet `pkt` (already
// validated by parse_ipv4 into `h`):
//  - never about a non-first fragment (RFC 1812 §4.3.2.7; upstream too);
//  - never about a packet from or to an address that is not a unicast host
//    address (RFC 1812 §4.3.2.7: 0/8, 127/8, multicast, class E, broadcast);
//  - net-unreachable: never about any ICMP packet (upstream's rule, kept);
//  - time-exceeded: never about an ICMP error or an ICMP type the kernel
//    does not know as a query (RFC 1812 §4.3.2.7; Linux icmp_send does the
//    same), but echo requests get one, so `traceroute -I` works.
bool icmp_error_allowed(IcmpError kind, const uint8_t* pkt, const Ipv4Header& h);

// Writes the ICMP error about `offender` into `out` and returns its length,
// or 0 when `out_cap` is too small (kIcmpErrorMaxLen always suffices).
// Layout (docs/compatibility.md §5.6): IPv4 header 0x45, TOS 0, ID 0, no flags, TTL as
// above, protocol 1, source `source_addr` (the TUN address), destination the
// offender's source; then type, code, checksum, a zero unused word, and the
// offender's header plus min(8, what it has) payload bytes: never bytes past
// the offender's total length (upstream copied stale buffer bytes there).
size_t build_icmp_error(IcmpError kind, const uint8_t* offender, const Ipv4Header& h,
                        uint32_t source_addr, uint8_t* out, size_t out_cap);

}  // namespace flannel
