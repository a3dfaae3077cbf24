// Unit tests of who may send what (forwarding.h): partial checksums only
// when both ends take them, capabilities per lease rather than per sender
// address, sources refused whatever the policy allows, the IPv6 decision
// without the source check, route-only IPv6 endpoints, and lengths.
#include <cstring>
#include <vector>

#include "../core/checksum.h"
#include "../core/forwarding.h"
#include "../core/gso.h"
#include "../core/partial_checksum.h"
#include "../core/refusal_log.h"
#include "../core/tun_read.h"
#include "../core/virtio_net.h"
#include "packet_builder.h"
#include "test_harness.h"

using namespace flannel;
using namespace testpkt;

namespace {

constexpr uint32_t kPeerB = 0xc0a83202;  // 192.168.50.2: owns 10.5.2.0/24, advertises partial checksums
constexpr uint32_t kOwnUnderlay = 0xc0a83201;  // 192.168.50.1: this node

// This node 10.5.1.0/24 of 10.5.0.0/16, taking partial checksums; peer B's
// lease 10.5.2.0/24 with them; a second record with B's PublicIP
// (10.5.7.0/24, a stale lease from before a reinstall) without any.
ForwardingState audit_state() {
  ForwardingState st;
  st.routes = LpmTable({{ip(10, 5, 2, 0), 24, NextHop{kPeerB, 8285, kPeerPartialChecksums}},
                        {ip(10, 5, 7, 0), 24, NextHop{kPeerB, 8285, 0}}});
  // The address speaks with its newest lease: here the stale one.
  st.peers = AddrSet(std::vector<Peer>{{kPeerB, 0}});
  st.policy.configured = true;
  st.policy.own_subnet = {ip(10, 5, 1, 0), 24};
  st.policy.network = {ip(10, 5, 0, 0), 16};
  st.policy.partial_checksums = true;
  st.local = LocalAddrs({kOwnUnderlay, ip(172, 17, 0, 1)}, {load_ipv6(ip6(0xfd99, 0, 0, 0, 0, 0, 0, 1).data())});
  return st;
}

// A TCP packet as the kernel hands it to the TUN, checksum pending.
std::vector<uint8_t> pending_tun_read(uint32_t dst) {
  TcpSpec s;
  s.dst = dst;
  s.payload = pattern(400, 3);
  std::vector<uint8_t> p = build_tcp4(s);
  store_be16(p.data() + 36, pseudo_header_sum_ipv4(p.data(), 6, p.size() - 20));
  VirtioNetHdr vh;
  vh.flags = kVirtioFlagNeedsCsum;
  vh.csum_start = 20;
  vh.csum_offset = 16;
  std::vector<uint8_t> buf(kVirtioNetHdrLen + p.size());
  encode_virtio_hdr(vh, buf.data());
  std::memcpy(buf.data() + kVirtioNetHdrLen, p.data(), p.size());
  return buf;
}

std::vector<uint8_t> tcp_from(uint32_t src, uint32_t dst = ip(10, 5, 1, 7)) {
  TcpSpec s;
  s.src = src;
  s.dst = dst;
  s.payload = pattern(200, 4);
  return build_tcp4(s);
}

}  // namespace

TEST(egress_sends_partial_checksums_only_when_this_node_takes_them_too) {
  // Peer B's lease advertises them; this node does not ("AdvertiseCapabilities": false).
  ForwardingState st = audit_state();
  st.policy.partial_checksums = false;
  auto buf = pending_tun_read(ip(10, 5, 2, 9));
  TunRead r = classify_tun_read(buf.data(), buf.size(), true, st, 64);
  CHECK(r.decision.forward);
  CHECK(!r.leave_partial);
  CHECK_EQ(l4_check_reference(r.pkt, r.decision.length), 0);  // complete on the wire
  // The same packet when this node takes them: left pending for B.
  st.policy.partial_checksums = true;
  auto again = pending_tun_read(ip(10, 5, 2, 9));
  r = classify_tun_read(again.data(), again.size(), true, st, 64);
  CHECK(r.decision.forward && r.leave_partial);
}

TEST(ingress_takes_capabilities_from_the_lease_of_the_inner_source) {
  const ForwardingState st = audit_state();
  // B's pod (10.5.2.9): B's own lease advertises partial checksums, so the
  // stale record with B's address and none changes nothing for it.
  auto a = tcp_from(ip(10, 5, 2, 9));
  Decision d = decide_ingress(a.data(), a.size(), kPeerB, st);
  CHECK(d.forward && d.partial);
  // A source in the stale record's subnet is judged by that record: complete.
  auto b = tcp_from(ip(10, 5, 7, 9));
  d = decide_ingress(b.data(), b.size(), kPeerB, st);
  CHECK(d.forward && !d.partial);
  CHECK_EQ(l4_check_reference(b.data(), b.size()), 0);
  // B's host itself (its PublicIP as the source): the newest lease's flags.
  auto c = tcp_from(kPeerB);
  d = decide_ingress(c.data(), c.size(), kPeerB, st);
  CHECK(d.forward && !d.partial);
  ForwardingState newest_has_them = audit_state();
  newest_has_them.peers = AddrSet(std::vector<Peer>{{kPeerB, kPeerPartialChecksums}});
  auto c2 = tcp_from(kPeerB);
  CHECK(decide_ingress(c2.data(), c2.size(), kPeerB, newest_has_them).partial);
  // This node does not take them: nothing partial, whatever the lease says.
  ForwardingState off = audit_state();
  off.policy.partial_checksums = false;
  auto e = tcp_from(ip(10, 5, 2, 9));
  CHECK(!decide_ingress(e.data(), e.size(), kPeerB, off).partial);
}

TEST(ipv6_is_taken_by_the_lease_of_the_inner_source_not_the_sender_address) {
  ForwardingState st = audit_state();
  st.policy.ipv6 = true;
  st.policy.own_subnet6 = {load_ipv6(ip6(0xfd00, 5, 1, 0, 0, 0, 0, 0).data()), 64};
  st.policy.network6 = {load_ipv6(ip6(0xfd00, 5, 0, 0, 0, 0, 0, 0).data()), 32};
  st.routes6 = Lpm6Table({Ipv6Route{load_ipv6(ip6(0xfd00, 5, 2, 0, 0, 0, 0, 0).data()), 64, NextHop{kPeerB, 8285, kPeerIpv6}}});
  // B's address is flagged without IPv6 (the stale record is its newest), yet B's pods' IPv6 passes.
  auto p = build_ipv6(Ipv6Spec{});
  CHECK(decide_ingress(p.data(), p.size(), kPeerB, st).forward);
}

TEST(sources_that_no_overlay_packet_may_carry_are_refused_whatever_the_policy) {
  for (const bool source_check : {true, false}) {
    ForwardingState st = audit_state();
    st.policy.allow_external_sources = true;
    st.policy.source_check = source_check;
    const uint32_t martians[] = {ip(127, 0, 0, 1),   ip(0, 1, 2, 3),         ip(169, 254, 169, 254), ip(224, 0, 0, 5),
                                 ip(240, 0, 0, 1),   ip(255, 255, 255, 255), kOwnUnderlay,           ip(172, 17, 0, 1)};
    for (uint32_t src : martians) {
      auto pkt = tcp_from(src);
      const Decision d = decide_ingress(pkt.data(), pkt.size(), kPeerB, st);
      CHECK(!d.forward);
      CHECK_EQ(d.drop, kIngressDropMartianSource);
    }
    // An ordinary outside source is still allowed by AllowExternalSources.
    auto ok = tcp_from(ip(203, 0, 113, 9));
    CHECK(decide_ingress(ok.data(), ok.size(), kPeerB, st).forward);
  }
  // Without AllowExternalSources they are refused by their own reason too.
  ForwardingState plain = audit_state();
  auto lo = tcp_from(ip(127, 0, 0, 1));
  CHECK_EQ(decide_ingress(lo.data(), lo.size(), kPeerB, plain).drop, kIngressDropMartianSource);
}

TEST(ipv6_sources_that_no_overlay_packet_may_carry_are_refused) {
  ForwardingState st = audit_state();
  st.policy.ipv6 = true;
  st.policy.allow_external_sources = true;
  st.policy.own_subnet6 = {load_ipv6(ip6(0xfd00, 5, 1, 0, 0, 0, 0, 0).data()), 64};
  st.policy.network6 = {load_ipv6(ip6(0xfd00, 5, 0, 0, 0, 0, 0, 0).data()), 32};
  st.peers = AddrSet(std::vector<Peer>{{kPeerB, kPeerIpv6}});
  const std::array<uint8_t, 16> martians[] = {ip6(0, 0, 0, 0, 0, 0, 0, 1), ip6(0xfe80, 0, 0, 0, 0, 0, 0, 1),
                                              ip6(0xff02, 0, 0, 0, 0, 0, 0, 1), ip6(0, 0, 0, 0, 0, 0xffff, 0x7f00, 1),
                                              ip6(0xfd99, 0, 0, 0, 0, 0, 0, 1)};
  for (const auto& src : martians) {
    Ipv6Spec s;
    s.src = src;
    auto p = build_ipv6(s);
    CHECK_EQ(decide_ingress(p.data(), p.size(), kPeerB, st).drop, kIngressDropMartianSource);
  }
  Ipv6Spec outside;
  outside.src = ip6(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
  auto q = build_ipv6(outside);
  CHECK(decide_ingress(q.data(), q.size(), kPeerB, st).forward);
}

TEST(ipv6_underlay_endpoints_that_only_a_route_names_are_unknown_senders) {
  ForwardingState st = audit_state();
  st.policy.ipv6 = true;
  st.policy.own_subnet6 = {load_ipv6(ip6(0xfd00, 5, 1, 0, 0, 0, 0, 0).data()), 64};
  st.policy.network6 = {load_ipv6(ip6(0xfd00, 5, 0, 0, 0, 0, 0, 0).data()), 32};
  // Endpoint 0 is a known peer; endpoint 1 only a route's target (known size 1).
  st.endpoints6 = Endpoint6Table({{load_ipv6(ip6(0xfd99, 0, 0, 0, 0, 0, 0, 2).data()), kPeerIpv6},
                                  {load_ipv6(ip6(0xfd99, 0, 0, 0, 0, 0, 0, 3).data()), 0}},
                                 1);
  CHECK_EQ(st.endpoints6.known_size(), 1u);
  NextHop h1{1, 8285, static_cast<uint8_t>(kPeerIpv6 | kPeerUnderlay6)};
  st.routes6 = Lpm6Table({Ipv6Route{load_ipv6(ip6(0xfd00, 5, 3, 0, 0, 0, 0, 0).data()), 64, h1}});
  Ipv6Spec s;
  s.src = ip6(0xfd00, 5, 3, 0, 0, 0, 0, 2);
  auto p = build_ipv6(s);
  CHECK_EQ(decide_ingress(p.data(), p.size(), Sender{1, true}, st).drop, kIngressDropUnknownSource);
  // The table's known size never exceeds its size.
  CHECK_EQ(Endpoint6Table({}, 5).known_size(), 0u);
}

TEST(ipv6_payload_lengths_that_would_wrap_16_bits_are_refused) {
  std::vector<uint8_t> p(70000, 0);
  p[0] = 0x60;
  store_be16(p.data() + 4, 65500);  // 40 + 65500 > 65535
  Ipv6Header h;
  CHECK(parse_ipv6(p.data(), p.size(), &h) == Ipv6Error::kBadPayloadLength);
  store_be16(p.data() + 4, 65495);  // 40 + 65495 = 65535: the largest
  CHECK(parse_ipv6(p.data(), p.size(), &h) == Ipv6Error::kNone);
  CHECK_EQ(h.total_len(), 65535);
}

TEST(refusals_stay_reported_after_many_distinct_senders) {
  RefusalLog log;
  Refusal out[RefusalLog::kRing];
  auto spoofed = [](uint32_t sender) { return Refusal{sender, kIngressDropSpoofedSource}; };
  CHECK(log.note(spoofed(1)));
  CHECK(!log.note(spoofed(1)));  // remembered: not again
  CHECK_EQ(log.drain(out, RefusalLog::kRing), 1u);
  // A flood of distinct senders (random forged addresses), drained as the control side does.
  size_t reported = 1;
  for (uint32_t s = 2; s < 5000; ++s) {
    if (log.note(spoofed(s))) ++reported;
    if (s % 200 == 0) log.drain(out, RefusalLog::kRing);
  }
  CHECK_EQ(reported, 4999u);  // every new pair reported: the memory recycles instead of filling up
  log.drain(out, RefusalLog::kRing);
  // A later attack is reported too.
  CHECK(log.note(Refusal{0xcb007101, kIngressDropMartianSource}));
  CHECK_EQ(log.drain(out, RefusalLog::kRing), 1u);
  CHECK_EQ(out[0].reason, kIngressDropMartianSource);
  // Undrained, the ring holds kRing; the rest are only counted (by the drop counters).
  RefusalLog full;
  size_t queued = 0;
  for (uint32_t s = 1; s <= RefusalLog::kRing + 10; ++s) queued += full.note(spoofed(s)) ? 1 : 0;
  CHECK_EQ(queued, RefusalLog::kRing);
}
