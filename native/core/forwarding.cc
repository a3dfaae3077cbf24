#include "forwarding.h"

namespace flannel {

namespace {

struct ParseCounters {
  Counter not_ipv4, too_short, bad_header;
};
constexpr ParseCounters kEgressParse{kEgressDropNotIpv4, kEgressDropTooShort, kEgressDropBadHeader};
constexpr ParseCounters kIngressParse{kIngressDropNotIpv4, kIngressDropTooShort,
                                      kIngressDropBadHeader};

// Fills d.header; on failure sets the drop reason and returns false.
bool parse_into(const uint8_t* pkt, size_t len, const ParseCounters& c, Decision& d) {
  switch (parse_ipv4(pkt, len, &d.header)) {
    case Ipv4Error::kNone:
      return true;
    case Ipv4Error::kNotIpv4:
      d.drop = c.not_ipv4;
      return false;
    case Ipv4Error::kTooShort:
      d.drop = c.too_short;
      return false;
    case Ipv4Error::kBadHeaderLength:
    case Ipv4Error::kBadTotalLength:
      d.drop = c.bad_header;
      return false;
  }
  d.drop = c.bad_header;
  return false;
}

void want_icmp(Decision& d, IcmpError kind, const uint8_t* pkt) {
  d.icmp_kind = kind;
  d.icmp = icmp_error_allowed(kind, pkt, d.header) ? IcmpAction::kSend : IcmpAction::kSuppressed;
}

// TTL step shared by both directions (docs/compatibility.md §5.4: decremented on both paths).
bool forward_with_ttl(uint8_t* pkt, Counter expired, Decision& d) {
  if (!decrement_ttl(pkt)) {
    d.drop = expired;
    want_icmp(d, IcmpError::kTimeExceeded, pkt);
    return false;
  }
  d.forward = true;
  d.length = d.header.total_len;
  return true;
}

bool is_ipv6(const uint8_t* pkt, size_t len, const ForwardingState& state) {
  return state.policy.ipv6 && len >= 1 && (pkt[0] >> 4) == 6;
}

bool parse6_into(const uint8_t* pkt, size_t len, const ParseCounters& c, Decision& d) {
  d.version = 6;
  switch (parse_ipv6(pkt, len, &d.header6)) {
    case Ipv6Error::kNone:
      return true;
    case Ipv6Error::kTooShort:
      d.drop = c.too_short;
      return false;
    case Ipv6Error::kNotIpv6:
    case Ipv6Error::kBadPayloadLength:
      d.drop = c.bad_header;
      return false;
  }
  d.drop = c.bad_header;
  return false;
}

void want_icmp6(Decision& d, Icmpv6Error kind, const uint8_t* pkt) {
  d.icmp6_kind = kind;
  d.icmp = icmpv6_error_allowed(pkt, d.header6) ? IcmpAction::kSend : IcmpAction::kSuppressed;
}

bool forward_with_hop_limit(uint8_t* pkt, Counter expired, Decision& d) {
  if (!decrement_hop_limit(pkt)) {
    d.drop = expired;
    want_icmp6(d, Icmpv6Error::kHopLimitExceeded, pkt);
    return false;
  }
  d.forward = true;
  d.length = d.header6.total_len();
  return true;
}

Decision decide_egress6(uint8_t* pkt, size_t len, const ForwardingState& state) {
  Decision d;
  if (!parse6_into(pkt, len, kEgressParse, d)) return d;
  const Ipv6Header& h = d.header6;
  if (is_link_scoped_ipv6(h.src) || is_link_scoped_ipv6(h.dst)) {
    d.drop = kEgressDropIpv6LinkScoped;
    return d;
  }
  const NextHop* hop = state.routes6.lookup(h.dst);
  if (hop == nullptr) {
    d.drop = kEgressDropNoRoute;
    want_icmp6(d, Icmpv6Error::kNoRoute, pkt);
    return d;
  }
  if ((hop->flags & kPeerIpv6) == 0) {
    d.drop = kEgressDropIpv6PeerIncapable;
    want_icmp6(d, Icmpv6Error::kAdminProhibited, pkt);
    return d;
  }
  if (forward_with_hop_limit(pkt, kEgressDropTtlExpired, d)) d.next_hop = *hop;
  return d;
}

}  // namespace

Decision decide_egress(uint8_t* pkt, size_t len, const ForwardingState& state) {
  if (is_ipv6(pkt, len, state)) return decide_egress6(pkt, len, state);
  Decision d;
  if (!parse_into(pkt, len, kEgressParse, d)) return d;
  // Route lookup before the TTL check, as upstream's tun_to_udp does.
  const NextHop* hop = state.routes.lookup(d.header.dst);
  if (hop == nullptr) {
    d.drop = kEgressDropNoRoute;
    want_icmp(d, IcmpError::kNetUnreachable, pkt);
    return d;
  }
  if (forward_with_ttl(pkt, kEgressDropTtlExpired, d)) d.next_hop = *hop;
  return d;
}

namespace {

// Whether `hop` leads to `sender`: the same address, over the same underlay.
bool hop_is_sender(const NextHop* hop, Sender sender) {
  return hop != nullptr && hop->addr == sender.key && ((hop->flags & kPeerUnderlay6) != 0) == sender.underlay6;
}

// Whether a datagram from `sender` may carry a packet from `src` to `dst`.
Counter inner_check(uint32_t src, uint32_t dst, Sender sender, const ForwardingState& state) {
  const IngressPolicy& p = state.policy;
  if (!p.own_subnet.contains(dst)) return kIngressDropForeignDestination;
  if (p.own_subnet.contains(src)) return kIngressDropSpoofedSource;
  // The peer host's own traffic, not masqueraded (its PublicIP as source).
  if (p.source_check && !sender.underlay6 && src == sender.key) return kCounterCount;
  if (!p.network.contains(src)) return p.allow_external_sources ? kCounterCount : kIngressDropSpoofedSource;
  if (!p.source_check) return kCounterCount;  // NAT between nodes: the sender's address says nothing
  return hop_is_sender(state.routes.lookup(src), sender) ? kCounterCount : kIngressDropSpoofedSource;
}

// The same rules for inner IPv6 (the peer host's own IPv6 traffic comes from
// its flannel0 address, inside its v6 subnet).
Counter inner_check6(const Ipv6Addr& src, const Ipv6Addr& dst, Sender sender, const ForwardingState& state) {
  const IngressPolicy& p = state.policy;
  if (!p.own_subnet6.contains(dst)) return kIngressDropForeignDestination;
  if (p.own_subnet6.contains(src)) return kIngressDropSpoofedSource;
  if (!p.network6.contains(src)) return p.allow_external_sources ? kCounterCount : kIngressDropSpoofedSource;
  if (!p.source_check) return kCounterCount;
  return hop_is_sender(state.routes6.lookup(src), sender) ? kCounterCount : kIngressDropSpoofedSource;
}

// The sender's flags, or nullptr for an unknown sender.
const uint8_t* sender_flags(Sender sender, const ForwardingState& state) {
  if (!sender.underlay6) return state.peers.find(sender.key);
  if (sender.key >= state.endpoints6.size()) return nullptr;
  return &state.endpoints6.flags_at(sender.key);
}

// `flags`: the sender's (sender_flags), looked up once per datagram.
Decision decide_ingress6(uint8_t* pkt, size_t len, Sender sender, const uint8_t* flags, const ForwardingState& state) {
  Decision d;
  d.version = 6;
  if (flags == nullptr || (*flags & kPeerIpv6) == 0) {
    d.drop = kIngressDropIpv6SenderIncapable;
    return d;
  }
  if (!parse6_into(pkt, len, kIngressParse, d)) return d;
  const Counter refused = inner_check6(d.header6.src, d.header6.dst, sender, state);
  if (refused != kCounterCount) {
    d.drop = refused;
    return d;
  }
  forward_with_hop_limit(pkt, kIngressDropTtlExpired, d);
  if (d.forward && state.policy.partial_checksums && (*flags & kPeerPartialChecksums) &&
      l4_checksum_spot(pkt, d.header6, &d.partial_spot)) {
    write_pseudo_header_sum(pkt, d.header6, d.partial_spot);
    d.partial = true;
  }
  return d;
}

}  // namespace

Decision decide_ingress(uint8_t* pkt, size_t len, Sender sender, const ForwardingState& state) {
  Decision d;
  // The outer source comes first: nothing from an unknown sender is parsed or
  // answered, not even with an ICMP error.
  const uint8_t* flags = sender_flags(sender, state);
  if (state.policy.source_check && flags == nullptr) {
    d.drop = kIngressDropUnknownSource;
    return d;
  }
  if (is_ipv6(pkt, len, state)) return decide_ingress6(pkt, len, sender, flags, state);
  if (!parse_into(pkt, len, kIngressParse, d)) return d;
  if (state.policy.configured) {
    const Counter refused = inner_check(d.header.src, d.header.dst, sender, state);
    if (refused != kCounterCount) {
      d.drop = refused;
      return d;
    }
  }
  forward_with_ttl(pkt, kIngressDropTtlExpired, d);
  if (d.forward && state.policy.partial_checksums && flags != nullptr && (*flags & kPeerPartialChecksums) &&
      l4_checksum_spot(pkt, d.header, &d.partial_spot)) {
    write_pseudo_header_sum(pkt, d.header, d.partial_spot);
    d.partial = true;
  }
  return d;
}

}  // namespace flannel
