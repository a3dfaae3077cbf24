// The per-packet forwarding decisions of the udp backend (pure, no I/O).
//
// The threads in native/linux own the sockets; these functions only look at a
// packet and the published forwarding state and say what to do with it
// (after boringtun's sans-I/O TunnResult). Wire format: compat spec docs/compatibility.md §5.3-5.4:
// the UDP payload is the bare inner IPv4 packet, and the TTL is decremented
// on both paths with an incremental checksum fix.
#pragma once

#include <cstddef>
#include <cstdint>

#include "counters.h"
#include "icmp.h"
#include "ipv4.h"
#include "lpm_table.h"

namespace flannel {

// What the control plane publishes to the forwarding threads. Immutable once
// published.
struct ForwardingState {
  LpmTable routes;
  AddrSet peers;             // PublicIPs of known peers, for the source check
  bool source_check = true;  // udp backend option "SourceCheck" (default true)
};

enum class IcmpAction : uint8_t {
  kNone,        // no ICMP error is due
  kSend,        // an ICMP error of `icmp_kind` is due and allowed (rate limit still applies)
  kSuppressed,  // one would be due, but RFC 1812 / upstream's rules forbid it
};

struct Decision {
  bool forward = false;
  Counter drop = kCounterCount;  // the drop reason when !forward
  NextHop next_hop{0, 0};        // egress only, when forward
  uint16_t length = 0;           // bytes to send or write, when forward (the IPv4 total length)
  IcmpAction icmp = IcmpAction::kNone;
  IcmpError icmp_kind = IcmpError::kNetUnreachable;
  Ipv4Header header{};           // valid unless the drop reason is a parse error
};

// A packet read from the TUN (`len` bytes at `pkt`, modified in place when
// forwarded): validate, look up the destination, decrement the TTL.
Decision decide_egress(uint8_t* pkt, size_t len, const ForwardingState& state);

// A datagram received on the UDP socket from `source_addr` (host order):
// source check, validate, decrement the TTL. A datagram that did not fit the
// receive buffer must be dropped by the caller (kIngressDropOversize) before
// this is called: its bytes are incomplete.
Decision decide_ingress(uint8_t* pkt, size_t len, uint32_t source_addr,
                        const ForwardingState& state);

}  // namespace flannel
