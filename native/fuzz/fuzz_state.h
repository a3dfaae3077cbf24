// The forwarding state the fuzz targets run against, and the rules the
// ingress policy promises (an oracle written from forwarding.h's contract,
// not from its code).
//
// Node 10.5.1.0/24 of Network 10.5.0.0/16 (fd00:5:1::/64 of fd00:5::/32),
// own addresses 192.168.1.1 and fd99::1. Peers on the IPv4 underlay:
// 192.168.1.2 (10.5.2.0/24 and fd00:5:2::/64, partial checksums and IPv6),
// 192.168.1.3 (10.5.3.0/24, 10.5.64.0/18 and fd00:5:3::/64, nothing), and a
// stale second record with 192.168.1.2's address (10.5.7.0/24, nothing).
// On the IPv6 underlay: endpoint 0, fd99::2 (fd00:5:4::/64, IPv6), a known
// peer; endpoint 1, fd99::3, only a route's target (fd00:5:5::/64).
// The policy is chosen by one input byte.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "../core/forwarding.h"
#include "../test/packet_builder.h"
#include "fuzz_check.h"

namespace fuzzstate {

using flannel::ForwardingState;

constexpr int kVariants = 6;

// Addresses a structure-aware target picks inner and outer addresses from:
// ours, each peer's pods, each peer host, outside the Network, unrouted,
// sources that are never allowed.
inline uint32_t interesting_addr(uint8_t pick) {
  using testpkt::ip;
  static const uint32_t kAddrs[24] = {
      ip(10, 5, 1, 7),    ip(10, 5, 1, 0),   ip(10, 5, 2, 9),       ip(10, 5, 2, 0),
      ip(10, 5, 3, 9),    ip(10, 5, 70, 1),  ip(192, 168, 1, 2),    ip(192, 168, 1, 3),
      ip(192, 168, 1, 9), ip(8, 8, 8, 8),    ip(10, 5, 200, 1),     ip(10, 6, 0, 1),
      ip(10, 5, 1, 255),  ip(0, 0, 0, 0),    ip(255, 255, 255, 255), ip(10, 5, 2, 255),
      ip(10, 5, 7, 9),    ip(127, 0, 0, 1),  ip(169, 254, 0, 9),    ip(192, 168, 1, 1),
      ip(224, 0, 0, 1),   ip(240, 1, 2, 3),  ip(10, 5, 7, 0),       ip(10, 5, 64, 3)};
  return kAddrs[pick % 24];
}

inline flannel::Ipv6Addr v6(uint16_t a, uint16_t b, uint16_t c, uint16_t h) {
  return flannel::load_ipv6(testpkt::ip6(a, b, c, 0, 0, 0, 0, h).data());
}

// The same for IPv6.
inline flannel::Ipv6Addr interesting_addr6(uint8_t pick) {
  static const flannel::Ipv6Addr kAddrs[16] = {
      v6(0xfd00, 5, 1, 7),  v6(0xfd00, 5, 2, 9),  v6(0xfd00, 5, 3, 9), v6(0xfd00, 5, 4, 9),
      v6(0xfd00, 5, 5, 9),  v6(0xfd00, 5, 9, 9),  v6(0x2001, 0xdb8, 0, 1), v6(0, 0, 0, 1),
      v6(0xfe80, 0, 0, 1),  v6(0xff02, 0, 0, 1),  v6(0xfd99, 0, 0, 1), v6(0xfd99, 0, 0, 2),
      flannel::Ipv6Addr{0, 0x0000ffff7f000001ull}, v6(0xfd00, 5, 1, 0), v6(0xfd00, 5, 2, 0), v6(0, 0, 0, 0)};
  return kAddrs[pick & 15];
}

// A datagram's sender: the IPv4 peers and strangers, or an IPv6-underlay
// endpoint index (0 known, 1 route-only, kNone unknown).
inline flannel::Sender interesting_sender(uint8_t pick) {
  if (pick & 0x80) {
    static const uint32_t kIndex[3] = {0, 1, flannel::Endpoint6Table::kNone};
    return flannel::Sender{kIndex[(pick & 0x7f) % 3], true};
  }
  return flannel::Sender{interesting_addr(pick), false};
}

// Variant 0: no policy yet (inner checks off); 1: SourceCheck and partial
// checksums; 2: both with external sources allowed; 3: SourceCheck off (NAT
// between nodes); 4: SourceCheck off with external sources; 5: as 1, but
// 192.168.1.2's newest lease is the stale one (its address flagged with nothing).
inline const ForwardingState& state(uint8_t selector) {
  // Never freed (a static array of pointers is not destroyed at exit, so
  // LeakSanitizer still sees them reachable).
  static ForwardingState* states[kVariants];
  static const bool built = [] {
    using namespace flannel;
    using testpkt::ip;
    const uint8_t both = kPeerPartialChecksums | kPeerIpv6;
    const uint8_t u6 = kPeerIpv6 | kPeerUnderlay6;
    for (int k = 0; k < kVariants; ++k) {
      auto* st = new ForwardingState();
      st->routes = LpmTable({{ip(10, 5, 2, 0), 24, NextHop{ip(192, 168, 1, 2), 8285, both}},
                             {ip(10, 5, 3, 0), 24, NextHop{ip(192, 168, 1, 3), 8285, 0}},
                             {ip(10, 5, 64, 0), 18, NextHop{ip(192, 168, 1, 3), 8285, 0}},
                             {ip(10, 5, 7, 0), 24, NextHop{ip(192, 168, 1, 2), 8285, 0}}});
      st->routes6 = Lpm6Table({{v6(0xfd00, 5, 2, 0), 64, NextHop{ip(192, 168, 1, 2), 8285, both}},
                               {v6(0xfd00, 5, 3, 0), 64, NextHop{ip(192, 168, 1, 3), 8285, 0}},
                               {v6(0xfd00, 5, 4, 0), 64, NextHop{0, 8285, u6}},
                               {v6(0xfd00, 5, 5, 0), 64, NextHop{1, 8285, u6}}});
      st->peers = AddrSet(std::vector<Peer>{{ip(192, 168, 1, 2), k == 5 ? uint8_t{0} : both}, {ip(192, 168, 1, 3), 0}});
      st->endpoints6 = Endpoint6Table({{v6(0xfd99, 0, 0, 2), kPeerIpv6}, {v6(0xfd99, 0, 0, 3), 0}}, 1);
      st->local = LocalAddrs({ip(192, 168, 1, 1)}, {v6(0xfd99, 0, 0, 1)});
      st->policy.configured = k != 0;
      st->policy.source_check = k != 3 && k != 4;
      st->policy.allow_external_sources = k == 2 || k == 4;
      st->policy.partial_checksums = k == 1 || k == 2 || k == 5;
      st->policy.own_subnet = {ip(10, 5, 1, 0), 24};
      st->policy.network = {ip(10, 5, 0, 0), 16};
      st->policy.ipv6 = k != 0;
      st->policy.own_subnet6 = {v6(0xfd00, 5, 1, 0), 64};
      st->policy.network6 = {v6(0xfd00, 5, 0, 0), 32};
      states[k] = st;
    }
    return true;
  }();
  (void)built;
  return *states[selector % kVariants];
}

// The sender's flags as the source check knows them, or nullptr (unknown).
inline const uint8_t* known_sender(flannel::Sender s, const ForwardingState& st) {
  if (!s.underlay6) return st.peers.find(s.key);
  return s.key < st.endpoints6.known_size() ? &st.endpoints6.flags_at(s.key) : nullptr;
}

inline bool route_leads_to(const flannel::NextHop* hop, flannel::Sender s) {
  return hop != nullptr && hop->addr == s.key && ((hop->flags & flannel::kPeerUnderlay6) != 0) == s.underlay6;
}

// What a forwarded ingress decision promises about the inner packet
// (forwarding.h decide_ingress, IngressPolicy, ForwardingState): returns the
// flags of the lease that vouches for the inner source.
inline void check_ingress_policy(const flannel::Decision& d, flannel::Sender sender, const ForwardingState& st) {
  using namespace flannel;
  if (!d.forward) {
    FUZZ_CHECK(!d.partial);
    return;
  }
  const IngressPolicy& p = st.policy;
  const uint8_t* sender_flags = known_sender(sender, st);
  if (p.source_check) FUZZ_CHECK(sender_flags != nullptr);
  if (!p.configured) {
    FUZZ_CHECK(!d.partial);
    return;
  }
  uint8_t vouching = 0;  // the flags of the lease that answers for the source
  if (d.version == 6) {
    const Ipv6Addr& src = d.header6.src;
    FUZZ_CHECK(p.own_subnet6.contains(d.header6.dst));
    FUZZ_CHECK(!p.own_subnet6.contains(src));
    FUZZ_CHECK(!is_martian_source_ipv6(src) && !st.local.contains(src));
    const NextHop* hop = st.routes6.lookup(src);
    if (!p.network6.contains(src)) {
      FUZZ_CHECK(p.allow_external_sources);
      vouching = sender_flags != nullptr ? *sender_flags : 0;
    } else {
      FUZZ_CHECK(hop != nullptr);
      if (p.source_check) FUZZ_CHECK(route_leads_to(hop, sender));
      vouching = hop->flags;
    }
    FUZZ_CHECK(vouching & kPeerIpv6);
  } else {
    const uint32_t src = d.header.src;
    FUZZ_CHECK(p.own_subnet.contains(d.header.dst));
    FUZZ_CHECK(!p.own_subnet.contains(src));
    FUZZ_CHECK(!is_martian_source_ipv4(src) && !st.local.contains(src));
    const NextHop* hop = st.routes.lookup(src);
    if (p.source_check && !sender.underlay6 && src == sender.key) {
      vouching = *sender_flags;
    } else if (!p.network.contains(src)) {
      FUZZ_CHECK(p.allow_external_sources);
      vouching = sender_flags != nullptr ? *sender_flags : 0;
    } else if (p.source_check) {
      FUZZ_CHECK(route_leads_to(hop, sender));
      vouching = hop->flags;
    } else {
      vouching = hop != nullptr ? hop->flags : 0;
    }
  }
  // Partial checksums only when both ends take them.
  if (d.partial) FUZZ_CHECK(p.partial_checksums && (vouching & kPeerPartialChecksums));
}

}  // namespace fuzzstate
