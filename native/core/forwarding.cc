#include "forwarding.h"

#include <algorithm>
#include <utility>

namespace flannel {

namespace {

std::vector<Peer> as_peers(const std::vector<uint32_t>& addrs) {
  std::vector<Peer> out;
  out.reserve(addrs.size());
  for (uint32_t a : addrs) out.push_back(Peer{a, 0});
  return out;
}

}  // namespace

LocalAddrs::LocalAddrs(const std::vector<uint32_t>& v4, std::vector<Ipv6Addr> v6) : v4_(as_peers(v4)), v6_(std::move(v6)) {
  std::sort(v6_.begin(), v6_.end());
}

bool LocalAddrs::contains(const Ipv6Addr& addr) const { return std::binary_search(v6_.begin(), v6_.end(), addr); }

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

// The sender's flags (those of the newest lease with its address), or
// nullptr for a sender the source check does not know.
const uint8_t* sender_flags(Sender sender, const ForwardingState& state) {
  if (!sender.underlay6) return state.peers.find(sender.key);
  if (sender.key >= state.endpoints6.known_size()) return nullptr;
  return &state.endpoints6.flags_at(sender.key);
}

// What the inner check found: the drop reason (kCounterCount: accepted) and
// the flags of the lease that vouches for the inner source.
struct InnerVerdict {
  Counter refused = kCounterCount;
  uint8_t flags = 0;
};

InnerVerdict refuse(Counter reason) { return InnerVerdict{reason, 0}; }
InnerVerdict accept(uint8_t flags) { return InnerVerdict{kCounterCount, flags}; }
InnerVerdict accept(const uint8_t* flags) { return InnerVerdict{kCounterCount, flags != nullptr ? *flags : uint8_t{0}}; }

// Whether a datagram from `sender` may carry a packet from `src` to `dst`,
// and whose flags apply to it.
InnerVerdict inner_check(uint32_t src, uint32_t dst, Sender sender, const ForwardingState& state) {
  const IngressPolicy& p = state.policy;
  if (!p.own_subnet.contains(dst)) return refuse(kIngressDropForeignDestination);
  if (p.own_subnet.contains(src)) return refuse(kIngressDropSpoofedSource);
  if (is_martian_source_ipv4(src) || state.local.contains(src)) return refuse(kIngressDropMartianSource);
  // The peer host's own traffic, not masqueraded (its PublicIP as source).
  if (p.source_check && !sender.underlay6 && src == sender.key) return accept(sender_flags(sender, state));
  if (!p.network.contains(src)) {
    return p.allow_external_sources ? accept(sender_flags(sender, state)) : refuse(kIngressDropSpoofedSource);
  }
  const NextHop* hop = state.routes.lookup(src);
  // NAT between nodes: the sender's address says nothing; the source's lease, if any, still names its flags.
  if (!p.source_check) return accept(hop != nullptr ? hop->flags : uint8_t{0});
  return hop_is_sender(hop, sender) ? accept(hop->flags) : refuse(kIngressDropSpoofedSource);
}

// The same rules for inner IPv6 (the peer host's own IPv6 traffic comes from
// its flannel0 address, inside its v6 subnet). Without the source check, a
// source in no lease's subnet has no flags, so no IPv6 capability.
InnerVerdict inner_check6(const Ipv6Addr& src, const Ipv6Addr& dst, Sender sender, const ForwardingState& state) {
  const IngressPolicy& p = state.policy;
  if (!p.own_subnet6.contains(dst)) return refuse(kIngressDropForeignDestination);
  if (p.own_subnet6.contains(src)) return refuse(kIngressDropSpoofedSource);
  if (is_martian_source_ipv6(src) || state.local.contains(src)) return refuse(kIngressDropMartianSource);
  if (!p.network6.contains(src)) {
    return p.allow_external_sources ? accept(sender_flags(sender, state)) : refuse(kIngressDropSpoofedSource);
  }
  const NextHop* hop = state.routes6.lookup(src);
  if (!p.source_check) return accept(hop != nullptr ? hop->flags : uint8_t{0});
  return hop_is_sender(hop, sender) ? accept(hop->flags) : refuse(kIngressDropSpoofedSource);
}

// Leaves the TCP/UDP checksum partial when both ends take that: this node
// (the policy) and the lease the inner source belongs to (`flags`).
template <typename Header>
void leave_partial_if_agreed(uint8_t* pkt, const Header& h, uint8_t flags, const ForwardingState& state, Decision& d) {
  if (d.forward && state.policy.partial_checksums && (flags & kPeerPartialChecksums) &&
      l4_checksum_spot(pkt, h, &d.partial_spot)) {
    write_pseudo_header_sum(pkt, h, d.partial_spot);
    d.partial = true;
  }
}

Decision decide_ingress6(uint8_t* pkt, size_t len, Sender sender, const ForwardingState& state) {
  Decision d;
  if (!parse6_into(pkt, len, kIngressParse, d)) return d;
  const InnerVerdict v = inner_check6(d.header6.src, d.header6.dst, sender, state);
  if (v.refused != kCounterCount) {
    d.drop = v.refused;
    return d;
  }
  if ((v.flags & kPeerIpv6) == 0) {
    d.drop = kIngressDropIpv6SenderIncapable;
    return d;
  }
  forward_with_hop_limit(pkt, kIngressDropTtlExpired, d);
  leave_partial_if_agreed(pkt, d.header6, v.flags, state, d);
  return d;
}

}  // namespace

Decision decide_ingress(uint8_t* pkt, size_t len, Sender sender, const ForwardingState& state) {
  Decision d;
  // The outer source comes first: nothing from an unknown sender is parsed or
  // answered, not even with an ICMP error.
  if (state.policy.source_check && sender_flags(sender, state) == nullptr) {
    d.drop = kIngressDropUnknownSource;
    return d;
  }
  if (is_ipv6(pkt, len, state)) return decide_ingress6(pkt, len, sender, state);
  if (!parse_into(pkt, len, kIngressParse, d)) return d;
  // Before the control plane sets the policy nothing is taken partial either.
  InnerVerdict v;
  if (state.policy.configured) {
    v = inner_check(d.header.src, d.header.dst, sender, state);
    if (v.refused != kCounterCount) {
      d.drop = v.refused;
      return d;
    }
  }
  forward_with_ttl(pkt, kIngressDropTtlExpired, d);
  leave_partial_if_agreed(pkt, d.header, v.flags, state, d);
  return d;
}

}  // namespace flannel
