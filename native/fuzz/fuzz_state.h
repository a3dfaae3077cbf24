// The forwarding state the fuzz targets run against: node 10.5.1.0/24 of
// Network 10.5.0.0/16, peers 192.168.1.2 (10.5.2.0/24, partial checksums)
// and 192.168.1.3 (10.5.3.0/24 and 10.5.64.0/18), with the ingress policy
// chosen by one input byte, and the rules that policy promises.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "../core/forwarding.h"
#include "../test/packet_builder.h"
#include "fuzz_check.h"

namespace fuzzstate {

using flannel::ForwardingState;

constexpr int kVariants = 4;

// Addresses a structure-aware target picks inner and outer addresses from:
// ours, each peer's pods, each peer host, outside the Network, unrouted.
inline uint32_t interesting_addr(uint8_t pick) {
  using testpkt::ip;
  static const uint32_t kAddrs[16] = {
      ip(10, 5, 1, 7),    ip(10, 5, 1, 0),   ip(10, 5, 2, 9),   ip(10, 5, 2, 0),
      ip(10, 5, 3, 9),    ip(10, 5, 70, 1),  ip(192, 168, 1, 2), ip(192, 168, 1, 3),
      ip(192, 168, 1, 9), ip(8, 8, 8, 8),    ip(10, 5, 200, 1), ip(10, 6, 0, 1),
      ip(10, 5, 1, 255),  ip(0, 0, 0, 0),    ip(255, 255, 255, 255), ip(10, 5, 2, 255)};
  return kAddrs[pick & 15];
}

// Variant 0: no policy yet (inner checks off); 1: SourceCheck and partial
// checksums; 2: both with external sources allowed; 3: SourceCheck off (NAT
// between nodes).
inline const ForwardingState& state(uint8_t selector) {
  // Never freed (a static array of pointers is not destroyed at exit, so
  // LeakSanitizer still sees them reachable).
  static ForwardingState* states[kVariants];
  static const bool built = [] {
    using namespace flannel;
    using testpkt::ip;
    for (int k = 0; k < kVariants; ++k) {
      auto* st = new ForwardingState();
      st->routes = LpmTable({{ip(10, 5, 2, 0), 24, NextHop{ip(192, 168, 1, 2), 8285, kPeerPartialChecksums}},
                             {ip(10, 5, 3, 0), 24, NextHop{ip(192, 168, 1, 3), 8285, 0}},
                             {ip(10, 5, 64, 0), 18, NextHop{ip(192, 168, 1, 3), 8285, 0}}});
      st->peers = AddrSet(std::vector<Peer>{{ip(192, 168, 1, 2), kPeerPartialChecksums}, {ip(192, 168, 1, 3), 0}});
      st->policy.configured = k != 0;
      st->policy.source_check = k != 3;
      st->policy.allow_external_sources = k == 2;
      st->policy.partial_checksums = k == 1 || k == 2;
      st->policy.own_subnet = {ip(10, 5, 1, 0), 24};
      st->policy.network = {ip(10, 5, 0, 0), 16};
      // Inner IPv6 in the configured variants: fd00:5:1::/64 of fd00:5::/32,
      // peer .2 carries IPv6 (fd00:5:2::/64), peer .3 does not (fd00:5:3::/64).
      st->policy.ipv6 = k != 0;
      st->policy.own_subnet6 = {load_ipv6(testpkt::ip6(0xfd00, 5, 1, 0, 0, 0, 0, 0).data()), 64};
      st->policy.network6 = {load_ipv6(testpkt::ip6(0xfd00, 5, 0, 0, 0, 0, 0, 0).data()), 32};
      st->routes6 = Lpm6Table({{load_ipv6(testpkt::ip6(0xfd00, 5, 2, 0, 0, 0, 0, 0).data()), 64,
                                NextHop{ip(192, 168, 1, 2), 8285, kPeerPartialChecksums | kPeerIpv6}},
                               {load_ipv6(testpkt::ip6(0xfd00, 5, 3, 0, 0, 0, 0, 0).data()), 64,
                                NextHop{ip(192, 168, 1, 3), 8285, 0}}});
      st->peers = AddrSet(std::vector<Peer>{{ip(192, 168, 1, 2), kPeerPartialChecksums | kPeerIpv6}, {ip(192, 168, 1, 3), 0}});
      states[k] = st;
    }
    return true;
  }();
  (void)built;
  return *states[selector % kVariants];
}

// What a forwarded ingress decision promises about the inner packet
// (forwarding.h IngressPolicy).
inline void check_ingress_policy(const flannel::Decision& d, uint32_t sender, const ForwardingState& st) {
  if (!d.forward) return;
  const flannel::IngressPolicy& p = st.policy;
  if (p.source_check) FUZZ_CHECK(st.peers.contains(sender));
  if (!p.configured) return;
  if (d.version == 6) {
    const uint8_t* flags = st.peers.find(sender);
    FUZZ_CHECK(flags != nullptr && (*flags & flannel::kPeerIpv6) != 0);
    const flannel::Ipv6Addr& src6 = d.header6.src;
    FUZZ_CHECK(p.own_subnet6.contains(d.header6.dst));
    FUZZ_CHECK(!p.own_subnet6.contains(src6));
    if (!p.network6.contains(src6)) {
      FUZZ_CHECK(p.allow_external_sources);
    } else if (p.source_check) {
      const flannel::NextHop* hop = st.routes6.lookup(src6);
      FUZZ_CHECK(hop != nullptr && hop->addr == sender);
    }
    return;
  }
  const uint32_t src = d.header.src;
  FUZZ_CHECK(p.own_subnet.contains(d.header.dst));
  FUZZ_CHECK(!p.own_subnet.contains(src));
  if (!p.network.contains(src)) {
    FUZZ_CHECK(p.allow_external_sources || (p.source_check && src == sender));
  } else if (p.source_check && src != sender) {
    const flannel::NextHop* hop = st.routes.lookup(src);
    FUZZ_CHECK(hop != nullptr && hop->addr == sender);
  }
}

}  // namespace fuzzstate
