// Unit tests of inner IPv6 in the packet core: parsing, hop limit, address
// classes, ICMPv6 errors, the IPv6 LPM table, the forwarding decisions with
// the source check, and TSO6 segmentation.
#include <cstring>
#include <stdexcept>

#include "../core/flow_hash.h"
#include "../core/forwarding.h"
#include "../core/gro.h"
#include "../core/gso.h"
#include "../core/icmpv6.h"
#include "../core/ipv6.h"
#include "../core/lpm6_table.h"
#include "../core/tun_read.h"
#include "packet_builder.h"
#include "test_harness.h"

using namespace flannel;
using namespace testpkt;

namespace {

Ipv6Addr addr(const std::array<uint8_t, 16>& a) { return load_ipv6(a.data()); }

NextHop hop(uint32_t peer, uint8_t flags = kPeerIpv6) {
  NextHop h{peer, 8285};
  h.flags = flags;
  return h;
}

// Node fd00:5:1::/64 of IPv6Network fd00:5::/32; peers .2 (carries IPv6) and .3 (an upstream node).
ForwardingState make_state6() {
  ForwardingState st;
  st.routes = LpmTable({Ipv4Route{ip(10, 5, 2, 0), 24, hop(ip(192, 168, 50, 2))}});
  st.routes6 = Lpm6Table({Ipv6Route{addr(ip6(0xfd00, 5, 2, 0, 0, 0, 0, 0)), 64, hop(ip(192, 168, 50, 2))},
                          Ipv6Route{addr(ip6(0xfd00, 5, 3, 0, 0, 0, 0, 0)), 64, hop(ip(192, 168, 50, 3), 0)}});
  st.peers = AddrSet(std::vector<Peer>{{ip(192, 168, 50, 2), kPeerIpv6}, {ip(192, 168, 50, 3), 0}});
  st.policy.configured = true;
  st.policy.own_subnet = {ip(10, 5, 1, 0), 24};
  st.policy.network = {ip(10, 5, 0, 0), 16};
  st.policy.ipv6 = true;
  st.policy.own_subnet6 = {addr(ip6(0xfd00, 5, 1, 0, 0, 0, 0, 0)), 64};
  st.policy.network6 = {addr(ip6(0xfd00, 5, 0, 0, 0, 0, 0, 0)), 32};
  return st;
}

// An outgoing packet: from our pod to a pod of peer .2.
Ipv6Spec outgoing() {
  Ipv6Spec s;
  s.src = ip6(0xfd00, 5, 1, 0, 0, 0, 0, 2);
  s.dst = ip6(0xfd00, 5, 2, 0, 0, 0, 0, 2);
  return s;
}

}  // namespace

TEST(ipv6_parse_accepts_and_rejects) {
  Ipv6Spec s;
  auto p = build_ipv6(s);
  Ipv6Header h;
  CHECK(parse_ipv6(p.data(), p.size(), &h) == Ipv6Error::kNone);
  CHECK_EQ(h.payload_len, 16);
  CHECK_EQ(h.total_len(), 56);
  CHECK_EQ(h.next_header, 17);
  CHECK_EQ(h.hop_limit, 64);
  CHECK(h.src == addr(s.src));
  CHECK(h.dst == addr(s.dst));
  p.resize(p.size() + 8, 0);  // trailing bytes are tolerated
  CHECK(parse_ipv6(p.data(), p.size(), &h) == Ipv6Error::kNone);
  CHECK(parse_ipv6(p.data(), 39, &h) == Ipv6Error::kTooShort);
  CHECK(parse_ipv6(p.data(), 50, &h) == Ipv6Error::kBadPayloadLength);
  p[4] = p[5] = 0;  // a jumbogram's zero payload length
  CHECK(parse_ipv6(p.data(), p.size(), &h) == Ipv6Error::kBadPayloadLength);
  auto v4 = build_ipv4(Ipv4Spec{});
  CHECK(parse_ipv6(v4.data(), v4.size(), &h) == Ipv6Error::kNotIpv6);
}

TEST(ipv6_hop_limit_decrements_and_stops_at_one) {
  Ipv6Spec s;
  s.hop_limit = 2;
  auto p = build_ipv6(s);
  CHECK(decrement_hop_limit(p.data()));
  CHECK_EQ(p[7], 1);
  CHECK(!decrement_hop_limit(p.data()));
  CHECK_EQ(p[7], 1);
}

TEST(ipv6_prefixes_and_address_classes) {
  const Ipv6Prefix net{addr(ip6(0xfd00, 5, 0, 0, 0, 0, 0, 0)), 48};
  CHECK(net.contains(addr(ip6(0xfd00, 5, 0, 0xffff, 1, 0, 0, 9))));
  CHECK(!net.contains(addr(ip6(0xfd00, 5, 1, 0, 0, 0, 0, 9))));
  CHECK(!net.contains(addr(ip6(0xfd00, 6, 0, 0, 0, 0, 0, 1))));
  const Ipv6Prefix host{addr(ip6(0xfd00, 0, 0, 0, 0, 0, 0, 7)), 128};
  CHECK(host.contains(addr(ip6(0xfd00, 0, 0, 0, 0, 0, 0, 7))));
  CHECK(!host.contains(addr(ip6(0xfd00, 0, 0, 0, 0, 0, 0, 6))));
  const Ipv6Prefix all{Ipv6Addr{}, 0};
  CHECK(all.contains(addr(ip6(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1))));
  const Ipv6Prefix p96{addr(ip6(0xfd00, 0, 0, 0, 0, 0, 0xab00, 0)), 104};
  CHECK(p96.contains(addr(ip6(0xfd00, 0, 0, 0, 0, 0, 0xabff, 1))));
  CHECK(!p96.contains(addr(ip6(0xfd00, 0, 0, 0, 0, 0, 0xac00, 1))));
  CHECK(is_link_scoped_ipv6(addr(ip6(0xfe80, 0, 0, 0, 1, 2, 3, 4))));
  CHECK(is_link_scoped_ipv6(addr(ip6(0xfebf, 0, 0, 0, 0, 0, 0, 1))));
  CHECK(is_link_scoped_ipv6(addr(ip6(0xff02, 0, 0, 0, 0, 0, 0, 2))));  // all routers
  CHECK(is_link_scoped_ipv6(addr(ip6(0, 0, 0, 0, 0, 0, 0, 0))));
  CHECK(is_link_scoped_ipv6(addr(ip6(0, 0, 0, 0, 0, 0, 0, 1))));
  CHECK(!is_link_scoped_ipv6(addr(ip6(0xfec0, 0, 0, 0, 0, 0, 0, 1))));
  CHECK(!is_link_scoped_ipv6(addr(ip6(0xfd00, 5, 1, 0, 0, 0, 0, 2))));
}

TEST(ipv6_upper_layer_behind_extension_headers) {
  Ipv6Spec s;
  s.next_header = kIpv6HopByHop;
  s.payload.assign(8 + 8 + 8, 0);
  s.payload[0] = kIpv6Fragment;  // hop-by-hop, 8 bytes, then a fragment header
  s.payload[8] = kIpProtoIcmpv6;
  s.payload[16] = 128;  // echo request
  auto p = build_ipv6(s);
  Ipv6Header h;
  CHECK(parse_ipv6(p.data(), p.size(), &h) == Ipv6Error::kNone);
  Ipv6UpperLayer u = find_ipv6_upper_layer(p.data(), h);
  CHECK(u.found);
  CHECK(u.first_fragment);
  CHECK_EQ(u.protocol, kIpProtoIcmpv6);
  CHECK_EQ(u.offset, 56);
  p[40 + 8 + 3] = 0x08;  // fragment offset 1 (8 bytes)
  u = find_ipv6_upper_layer(p.data(), h);
  CHECK(!u.first_fragment);
  p[6] = 99;  // an unknown header is the upper layer as far as the walker goes
  CHECK(parse_ipv6(p.data(), p.size(), &h) == Ipv6Error::kNone);
  CHECK_EQ(find_ipv6_upper_layer(p.data(), h).protocol, 99);
}

TEST(icmpv6_error_quotes_the_offender_with_a_valid_checksum) {
  Ipv6Spec s = outgoing();
  s.next_header = kIpProtoIcmpv6;
  s.payload = pattern(2000);
  s.payload[0] = 128;  // echo request
  auto p = build_ipv6(s);
  Ipv6Header h;
  CHECK(parse_ipv6(p.data(), p.size(), &h) == Ipv6Error::kNone);
  CHECK(icmpv6_error_allowed(p.data(), h));
  uint8_t out[kIcmpv6ErrorMaxLen];
  const Ipv6Addr from = addr(ip6(0xfd00, 5, 1, 0, 0, 0, 0, 0));
  const size_t n = build_icmpv6_error(Icmpv6Error::kNoRoute, p.data(), h, from, out, sizeof(out));
  CHECK_EQ(n, kIpv6MinMtu);  // the quote stops at the minimum MTU
  Ipv6Header e;
  CHECK(parse_ipv6(out, n, &e) == Ipv6Error::kNone);
  CHECK_EQ(e.next_header, kIpProtoIcmpv6);
  CHECK(e.src == from);
  CHECK(e.dst == addr(s.src));
  CHECK_EQ(out[40], 1);
  CHECK_EQ(out[41], 0);
  CHECK_EQ(l4_check_reference6(out, n), 0);
  CHECK(std::memcmp(out + 48, p.data(), n - 48) == 0);
  // A short offender is quoted whole; admin-prohibited and hop-limit kinds.
  Ipv6Spec small = outgoing();
  auto q = build_ipv6(small);
  CHECK(parse_ipv6(q.data(), q.size(), &h) == Ipv6Error::kNone);
  size_t m = build_icmpv6_error(Icmpv6Error::kAdminProhibited, q.data(), h, from, out, sizeof(out));
  CHECK_EQ(m, 48 + q.size());
  CHECK_EQ(out[40], 1);
  CHECK_EQ(out[41], 1);
  CHECK_EQ(l4_check_reference6(out, m), 0);
  m = build_icmpv6_error(Icmpv6Error::kHopLimitExceeded, q.data(), h, from, out, sizeof(out));
  CHECK_EQ(out[40], 3);
  CHECK_EQ(out[41], 0);
  CHECK_EQ(l4_check_reference6(out, m), 0);
  CHECK_EQ(build_icmpv6_error(Icmpv6Error::kNoRoute, q.data(), h, from, out, 60), 0u);
}

TEST(icmpv6_errors_never_about_errors_multicast_or_unknown_upper_layers) {
  Ipv6Header h;
  Ipv6Spec s = outgoing();
  s.next_header = kIpProtoIcmpv6;
  s.payload[0] = 1;  // an ICMPv6 error
  auto p = build_ipv6(s);
  CHECK(parse_ipv6(p.data(), p.size(), &h) == Ipv6Error::kNone);
  CHECK(!icmpv6_error_allowed(p.data(), h));
  p[40] = kIcmpv6TypeRedirect;
  CHECK(!icmpv6_error_allowed(p.data(), h));
  p[40] = 129;  // echo reply
  CHECK(icmpv6_error_allowed(p.data(), h));
  Ipv6Spec m = outgoing();
  m.dst = ip6(0xff05, 0, 0, 0, 0, 0, 0, 2);
  auto mp = build_ipv6(m);
  CHECK(parse_ipv6(mp.data(), mp.size(), &h) == Ipv6Error::kNone);
  CHECK(!icmpv6_error_allowed(mp.data(), h));
  Ipv6Spec f = outgoing();
  f.next_header = kIpv6Fragment;
  f.payload.assign(16, 0);
  f.payload[0] = 17;
  f.payload[3] = 0x10;  // not the first fragment
  auto fp = build_ipv6(f);
  CHECK(parse_ipv6(fp.data(), fp.size(), &h) == Ipv6Error::kNone);
  CHECK(!icmpv6_error_allowed(fp.data(), h));
}

TEST(lpm6_longest_match_replacement_and_misses) {
  const Lpm6Table t({Ipv6Route{addr(ip6(0xfd00, 5, 0, 0, 0, 0, 0, 0)), 48, hop(1)},
                     Ipv6Route{addr(ip6(0xfd00, 5, 2, 0, 0, 0, 0, 0)), 64, hop(2)},
                     Ipv6Route{addr(ip6(0xfd00, 5, 2, 0, 0, 0, 0, 0x99)), 128, hop(3)},
                     Ipv6Route{addr(ip6(0xfd00, 5, 4, 0, 0, 0, 0, 5)), 64, hop(4)},    // host bits ignored
                     Ipv6Route{addr(ip6(0xfd00, 5, 4, 0, 0, 0, 0, 0)), 64, hop(5)}});  // replaces it
  CHECK_EQ(t.size(), 4u);
  CHECK_EQ(t.lookup(addr(ip6(0xfd00, 5, 2, 0, 0, 0, 0, 1)))->addr, 2u);
  CHECK_EQ(t.lookup(addr(ip6(0xfd00, 5, 2, 0, 0, 0, 0, 0x99)))->addr, 3u);
  CHECK_EQ(t.lookup(addr(ip6(0xfd00, 5, 0, 7, 0, 0, 0, 1)))->addr, 1u);
  CHECK(t.lookup(addr(ip6(0xfd00, 5, 7, 0, 0, 0, 0, 1))) == nullptr);
  CHECK_EQ(t.lookup(addr(ip6(0xfd00, 5, 4, 0, 1, 0, 0, 1)))->addr, 5u);
  CHECK(t.lookup(addr(ip6(0xfd00, 6, 0, 0, 0, 0, 0, 1))) == nullptr);
  CHECK(Lpm6Table().lookup(addr(ip6(0xfd00, 5, 2, 0, 0, 0, 0, 1))) == nullptr);
  bool threw = false;
  try {
    Lpm6Table bad({Ipv6Route{Ipv6Addr{}, 129, hop(1)}});
  } catch (const std::invalid_argument&) {
    threw = true;
  }
  CHECK(threw);
}

TEST(egress6_forwards_to_a_capable_peer_with_the_hop_limit_decremented) {
  ForwardingState st = make_state6();
  auto p = build_ipv6(outgoing());
  const auto original = p;
  Decision d = decide_egress(p.data(), p.size(), st);
  CHECK(d.forward);
  CHECK_EQ(d.version, 6);
  CHECK_EQ(d.next_hop.addr, ip(192, 168, 50, 2));
  CHECK_EQ(d.length, original.size());
  CHECK_EQ(p[7], 63);
  for (size_t i = 0; i < p.size(); ++i) {
    if (i != 7) CHECK_EQ(p[i], original[i]);
  }
}

TEST(egress6_keeps_router_solicitations_and_mld_reports_on_the_link) {
  ForwardingState st = make_state6();
  Ipv6Spec rs;  // what the kernel sends on a TUN with IPv6
  rs.src = ip6(0xfe80, 0, 0, 0, 0x1234, 0, 0, 1);
  rs.dst = ip6(0xff02, 0, 0, 0, 0, 0, 0, 2);
  rs.next_header = kIpProtoIcmpv6;
  rs.payload[0] = 133;
  auto p = build_ipv6(rs);
  Decision d = decide_egress(p.data(), p.size(), st);
  CHECK(!d.forward);
  CHECK_EQ(d.drop, kEgressDropIpv6LinkScoped);
  CHECK(d.icmp == IcmpAction::kNone);
  Ipv6Spec mld;
  mld.src = ip6(0, 0, 0, 0, 0, 0, 0, 0);
  mld.dst = ip6(0xff02, 0, 0, 0, 0, 0, 0, 0x16);
  mld.next_header = kIpv6HopByHop;
  auto q = build_ipv6(mld);
  CHECK_EQ(decide_egress(q.data(), q.size(), st).drop, kEgressDropIpv6LinkScoped);
  Ipv6Spec global_to_mcast = outgoing();
  global_to_mcast.dst = ip6(0xff0e, 0, 0, 0, 0, 0, 0, 1);
  auto r = build_ipv6(global_to_mcast);
  CHECK_EQ(decide_egress(r.data(), r.size(), st).drop, kEgressDropIpv6LinkScoped);
}

TEST(egress6_refusals_answer_with_icmpv6) {
  ForwardingState st = make_state6();
  Ipv6Spec none = outgoing();
  none.dst = ip6(0xfd00, 5, 9, 0, 0, 0, 0, 2);
  auto p = build_ipv6(none);
  Decision d = decide_egress(p.data(), p.size(), st);
  CHECK_EQ(d.drop, kEgressDropNoRoute);
  CHECK(d.icmp == IcmpAction::kSend);
  CHECK(d.icmp6_kind == Icmpv6Error::kNoRoute);
  Ipv6Spec upstream = outgoing();
  upstream.dst = ip6(0xfd00, 5, 3, 0, 0, 0, 0, 2);  // an upstream peer: its datapath would corrupt it
  auto q = build_ipv6(upstream);
  d = decide_egress(q.data(), q.size(), st);
  CHECK_EQ(d.drop, kEgressDropIpv6PeerIncapable);
  CHECK(d.icmp6_kind == Icmpv6Error::kAdminProhibited);
  CHECK_EQ(q[7], 64);
  Ipv6Spec last = outgoing();
  last.hop_limit = 1;
  auto r = build_ipv6(last);
  d = decide_egress(r.data(), r.size(), st);
  CHECK_EQ(d.drop, kEgressDropTtlExpired);
  CHECK(d.icmp6_kind == Icmpv6Error::kHopLimitExceeded);
  CHECK(d.icmp == IcmpAction::kSend);
  auto shorty = build_ipv6(outgoing());
  CHECK_EQ(decide_egress(shorty.data(), 30, st).drop, kEgressDropTooShort);
  CHECK_EQ(decide_egress(shorty.data(), 45, st).drop, kEgressDropBadHeader);
  // IPv6 off: an IPv6 packet is what it always was, not IPv4.
  st.policy.ipv6 = false;
  auto s = build_ipv6(outgoing());
  CHECK_EQ(decide_egress(s.data(), s.size(), st).drop, kEgressDropNotIpv4);
}

TEST(ingress6_source_check) {
  ForwardingState st = make_state6();
  const uint32_t peer2 = ip(192, 168, 50, 2);
  auto legit = build_ipv6(Ipv6Spec{});  // fd00:5:2::2 -> fd00:5:1::2
  Decision d = decide_ingress(legit.data(), legit.size(), peer2, st);
  CHECK(d.forward);
  CHECK_EQ(d.version, 6);
  CHECK_EQ(legit[7], 63);
  CHECK(!d.partial);
  // From the upstream peer, even with a source it owns: refused.
  Ipv6Spec from3;
  from3.src = ip6(0xfd00, 5, 3, 0, 0, 0, 0, 2);
  auto a = build_ipv6(from3);
  CHECK_EQ(decide_ingress(a.data(), a.size(), ip(192, 168, 50, 3), st).drop, kIngressDropIpv6SenderIncapable);
  // From peer .2: a source of node .3, of our own subnet, of outside the network.
  CHECK_EQ(decide_ingress(a.data(), a.size(), peer2, st).drop, kIngressDropSpoofedSource);
  Ipv6Spec own;
  own.src = ip6(0xfd00, 5, 1, 0, 0, 0, 0, 9);
  auto b = build_ipv6(own);
  CHECK_EQ(decide_ingress(b.data(), b.size(), peer2, st).drop, kIngressDropSpoofedSource);
  Ipv6Spec outside;
  outside.src = ip6(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
  auto c = build_ipv6(outside);
  CHECK_EQ(decide_ingress(c.data(), c.size(), peer2, st).drop, kIngressDropSpoofedSource);
  // Destinations not ours: a third node's pod, outside the network.
  Ipv6Spec third;
  third.dst = ip6(0xfd00, 5, 3, 0, 0, 0, 0, 2);
  auto e = build_ipv6(third);
  CHECK_EQ(decide_ingress(e.data(), e.size(), peer2, st).drop, kIngressDropForeignDestination);
  // Unknown senders are refused before anything else.
  CHECK_EQ(decide_ingress(legit.data(), legit.size(), ip(192, 168, 50, 9), st).drop, kIngressDropUnknownSource);
  // AllowExternalSources takes the outside source; SourceCheck off takes another node's.
  st.policy.allow_external_sources = true;
  auto c2 = build_ipv6(outside);
  CHECK(decide_ingress(c2.data(), c2.size(), peer2, st).forward);
  st.policy.source_check = false;
  // SourceCheck off: the sender says nothing, the source's lease decides.
  // Node .2's pods arrive from any sender (NAT between nodes), node .3's
  // lease does not carry IPv6, a source in no lease has no capability.
  auto a2 = build_ipv6(Ipv6Spec{});
  CHECK(decide_ingress(a2.data(), a2.size(), ip(192, 168, 50, 3), st).forward);
  auto a3 = build_ipv6(Ipv6Spec{});
  CHECK(decide_ingress(a3.data(), a3.size(), ip(203, 0, 113, 7), st).forward);
  auto a4 = build_ipv6(from3);
  CHECK_EQ(decide_ingress(a4.data(), a4.size(), peer2, st).drop, kIngressDropIpv6SenderIncapable);
  Ipv6Spec unleased;
  unleased.src = ip6(0xfd00, 5, 9, 0, 0, 0, 0, 2);
  auto a5 = build_ipv6(unleased);
  CHECK_EQ(decide_ingress(a5.data(), a5.size(), peer2, st).drop, kIngressDropIpv6SenderIncapable);
  auto b2 = build_ipv6(own);
  CHECK_EQ(decide_ingress(b2.data(), b2.size(), peer2, st).drop, kIngressDropSpoofedSource);
  // Hop limit 1 on arrival: time exceeded.
  st = make_state6();
  Ipv6Spec last;
  last.hop_limit = 1;
  auto f = build_ipv6(last);
  d = decide_ingress(f.data(), f.size(), peer2, st);
  CHECK_EQ(d.drop, kIngressDropTtlExpired);
  CHECK(d.icmp6_kind == Icmpv6Error::kHopLimitExceeded);
}

TEST(split_tso6_cuts_valid_segments) {
  Ipv6Spec ip = outgoing();
  const auto payload = pattern(3000, 4);
  auto pkt = build_tcp6(ip, 5000, 0x18 /* PSH ACK */, payload);
  VirtioNetHdr vh;
  vh.flags = kVirtioFlagNeedsCsum;
  vh.gso_type = kVirtioGsoTcpv6;
  vh.gso_size = 1200;
  vh.csum_start = 40;
  vh.csum_offset = 16;
  std::vector<uint8_t> arena(64 * 60);
  SegmentSlice segs[8];
  size_t n = 0;
  CHECK(split_tun_packet(vh, pkt.data(), pkt.size(), arena.data(), arena.size(), segs, 8, &n) == SplitResult::kOk);
  CHECK_EQ(n, 3u);
  size_t seen = 0;
  for (size_t i = 0; i < n; ++i) {
    std::vector<uint8_t> seg(arena.data() + segs[i].header_off, arena.data() + segs[i].header_off + segs[i].header_len);
    seg.insert(seg.end(), pkt.begin() + segs[i].payload_off, pkt.begin() + segs[i].payload_off + segs[i].payload_len);
    CHECK_EQ(load_be16(seg.data() + 4), seg.size() - 40);
    CHECK_EQ(load_be32(seg.data() + 44), 5000 + seen);
    CHECK_EQ(l4_check_reference6(seg.data(), seg.size()), 0);
    CHECK_EQ(seg[53] & 0x08, i + 1 == n ? 0x08 : 0);  // PSH on the last only
    seen += segs[i].payload_len;
  }
  CHECK_EQ(seen, payload.size());
  // TSO6 announced for an IPv4 packet, TSO4 for an IPv6 one: refused.
  auto v4 = build_tcp4(TcpSpec{});
  CHECK(split_tun_packet(vh, v4.data(), v4.size(), arena.data(), arena.size(), segs, 8, &n) == SplitResult::kBadPacket);
  vh.gso_type = kVirtioGsoTcpv4;
  CHECK(split_tun_packet(vh, pkt.data(), pkt.size(), arena.data(), arena.size(), segs, 8, &n) == SplitResult::kBadPacket);
}

TEST(flow_hash6_is_per_flow) {
  auto a = build_tcp6(outgoing(), 1, 0x10, pattern(100));
  auto b = build_tcp6(outgoing(), 999, 0x10, pattern(200, 3));
  Ipv6Header ha, hb;
  CHECK(parse_ipv6(a.data(), a.size(), &ha) == Ipv6Error::kNone);
  CHECK(parse_ipv6(b.data(), b.size(), &hb) == Ipv6Error::kNone);
  CHECK_EQ(flow_hash(a.data(), a.size(), ha), flow_hash(b.data(), b.size(), hb));
  b[41] ^= 1;  // another source port
  CHECK(flow_hash(a.data(), a.size(), ha) != flow_hash(b.data(), b.size(), hb));
}

TEST(endpoints6_find_by_address_and_index) {
  const Ipv6Addr a = addr(ip6(0xfd99, 0, 0, 0, 0, 0, 0, 2));
  const Ipv6Addr b = addr(ip6(0xfd99, 0, 0, 0, 0, 0, 0, 1));
  const Endpoint6Table t({{a, kPeerIpv6}, {b, 0}});
  CHECK_EQ(t.size(), 2u);
  CHECK_EQ(t.find(a), 0u);
  CHECK_EQ(t.find(b), 1u);
  CHECK(t.addr(1) == b);
  CHECK_EQ(t.flags_at(0), kPeerIpv6);
  CHECK_EQ(t.find(addr(ip6(0xfd99, 0, 0, 0, 0, 0, 0, 3))), Endpoint6Table::kNone);
  CHECK_EQ(Endpoint6Table().find(a), Endpoint6Table::kNone);
}

TEST(ingress_over_the_ipv6_underlay_checks_the_sender_by_endpoint) {
  // An IPv6-only cluster: peer 0 (fd99::2) owns fd00:5:2::/64, peer 1 (fd99::3) fd00:5:3::/64.
  ForwardingState st = make_state6();
  const uint8_t u6 = kPeerIpv6 | kPeerUnderlay6;
  st.endpoints6 = Endpoint6Table({{addr(ip6(0xfd99, 0, 0, 0, 0, 0, 0, 2)), kPeerIpv6}, {addr(ip6(0xfd99, 0, 0, 0, 0, 0, 0, 3)), kPeerIpv6}});
  NextHop h0{0, 8285};
  h0.flags = u6;
  NextHop h1{1, 8285};
  h1.flags = u6;
  st.routes6 = Lpm6Table({Ipv6Route{addr(ip6(0xfd00, 5, 2, 0, 0, 0, 0, 0)), 64, h0}, Ipv6Route{addr(ip6(0xfd00, 5, 3, 0, 0, 0, 0, 0)), 64, h1}});
  auto legit = build_ipv6(Ipv6Spec{});  // fd00:5:2::2 -> fd00:5:1::2
  CHECK(decide_ingress(legit.data(), legit.size(), Sender{0, true}, st).forward);
  auto again = build_ipv6(Ipv6Spec{});
  CHECK_EQ(decide_ingress(again.data(), again.size(), Sender{1, true}, st).drop, kIngressDropSpoofedSource);
  // Index 0 over the IPv4 underlay is address 0.0.0.0, not endpoint 0.
  CHECK_EQ(decide_ingress(again.data(), again.size(), Sender{0, false}, st).drop, kIngressDropUnknownSource);
  CHECK_EQ(decide_ingress(again.data(), again.size(), Sender{Endpoint6Table::kNone, true}, st).drop, kIngressDropUnknownSource);
  // Egress: the next hop is the endpoint's index, flagged.
  auto out = build_ipv6(outgoing());
  const Decision d = decide_egress(out.data(), out.size(), st);
  CHECK(d.forward);
  CHECK_EQ(d.next_hop.addr, 0u);
  CHECK_EQ(d.next_hop.flags, u6);
}

TEST(coalesce_merges_ipv6_tcp_segments_of_one_flow) {
  // Three in-order segments of one IPv6 flow, then one of another flow.
  std::vector<std::vector<uint8_t>> pkts;
  const auto data = pattern(3 * 1000, 7);
  for (int i = 0; i < 3; ++i) {
    pkts.push_back(build_tcp6(outgoing(), 1000 + 1000 * i, 0x10, std::vector<uint8_t>(data.begin() + 1000 * i, data.begin() + 1000 * (i + 1))));
  }
  Ipv6Spec other = outgoing();
  other.src = ip6(0xfd00, 5, 1, 0, 0, 0, 0, 9);
  pkts.push_back(build_tcp6(other, 1, 0x10, pattern(100)));
  std::vector<InnerPacket> in;
  for (auto& p : pkts) in.push_back(InnerPacket{p.data(), static_cast<uint16_t>(p.size()), false});
  std::vector<uint16_t> next(in.size());
  std::vector<uint8_t> arena(kCoalesceArenaPerPacket * in.size());
  std::vector<CoalescedItem> items(in.size());
  const size_t n = coalesce(in.data(), in.size(), next.data(), arena.data(), arena.size(), items.data(), false);
  CHECK_EQ(n, 2u);
  const CoalescedItem& it = items[0];
  CHECK_EQ(it.count, 3);
  CHECK_EQ(it.l34_len, 60);
  CHECK_EQ(it.header_len, kVirtioNetHdrLen + 60);
  const VirtioNetHdr vh = decode_virtio_hdr(arena.data() + it.header_off);
  CHECK_EQ(vh.gso_type, kVirtioGsoTcpv6);
  CHECK_EQ(vh.gso_size, 1000);
  CHECK_EQ(vh.csum_start, 40);
  // The merged packet, completed as the kernel would, is one valid IPv6/TCP packet of all the bytes.
  std::vector<uint8_t> merged(arena.data() + it.header_off + kVirtioNetHdrLen, arena.data() + it.header_off + it.header_len);
  for (uint16_t k = it.first, c = 0; c < it.count; ++c, k = next[k]) merged.insert(merged.end(), pkts[k].begin() + 60, pkts[k].end());
  CHECK_EQ(load_be16(merged.data() + 4), merged.size() - 40);
  CHECK(complete_partial_checksum(merged.data(), merged.size(), 40, 16));
  CHECK_EQ(l4_check_reference6(merged.data(), merged.size()), 0);
  CHECK(std::memcmp(merged.data() + 60, data.data(), data.size()) == 0);
  CHECK_EQ(items[1].count, 1);
  // A bad checksum is never merged.
  pkts[1][70] ^= 0xff;
  in[1] = InnerPacket{pkts[1].data(), static_cast<uint16_t>(pkts[1].size()), false};
  CHECK_EQ(coalesce(in.data(), in.size(), next.data(), arena.data(), arena.size(), items.data(), false), 4u);
}

TEST(split_uso_over_ipv6_cuts_valid_datagrams) {
  Ipv6Spec ip = outgoing();
  ip.next_header = 17;
  ip.payload.assign(8 + 2500, 0);
  const auto data = pattern(2500, 9);
  for (size_t i = 0; i < data.size(); ++i) ip.payload[8 + i] = data[i];
  auto pkt = build_ipv6(ip);
  put16(pkt, 40, 40000);
  put16(pkt, 42, 53);
  put16(pkt, 44, static_cast<uint16_t>(8 + data.size()));
  VirtioNetHdr vh;
  vh.flags = kVirtioFlagNeedsCsum;
  vh.gso_type = kVirtioGsoUdpL4;
  vh.gso_size = 1000;
  vh.csum_start = 40;
  vh.csum_offset = 6;
  std::vector<uint8_t> arena(8 * 48);
  SegmentSlice segs[8];
  size_t n = 0;
  CHECK(split_tun_packet(vh, pkt.data(), pkt.size(), arena.data(), arena.size(), segs, 8, &n) == SplitResult::kOk);
  CHECK_EQ(n, 3u);
  for (size_t i = 0; i < n; ++i) {
    std::vector<uint8_t> seg(arena.data() + segs[i].header_off, arena.data() + segs[i].header_off + segs[i].header_len);
    seg.insert(seg.end(), pkt.begin() + segs[i].payload_off, pkt.begin() + segs[i].payload_off + segs[i].payload_len);
    CHECK_EQ(load_be16(seg.data() + 4), seg.size() - 40);
    CHECK_EQ(load_be16(seg.data() + 44), seg.size() - 40);  // the UDP length
    CHECK_EQ(l4_check_reference6(seg.data(), seg.size()), 0);
  }
}

TEST(partial_checksums_for_ipv6_both_ways) {
  // Ingress from a peer that sends partial checksums: the field gets the pseudo-header sum.
  ForwardingState st = make_state6();
  st.policy.partial_checksums = true;
  st.routes6 = Lpm6Table({Ipv6Route{addr(ip6(0xfd00, 5, 2, 0, 0, 0, 0, 0)), 64, hop(ip(192, 168, 50, 2), kPeerIpv6 | kPeerPartialChecksums)}});
  auto in = build_tcp6(Ipv6Spec{}, 1, 0x10, pattern(500));
  Decision d = decide_ingress(in.data(), in.size(), ip(192, 168, 50, 2), st);
  CHECK(d.forward);
  CHECK(d.partial);
  CHECK_EQ(d.partial_spot.start, 40);
  CHECK_EQ(d.partial_spot.offset, 16);
  CHECK_EQ(load_be16(in.data() + 56), pseudo_header_sum_ipv6(in.data(), 6, in.size() - 40));
  CHECK(complete_partial_checksum(in.data(), in.size(), 40, 16));
  CHECK_EQ(l4_check_reference6(in.data(), in.size()), 0);
  // From a lease without them: verified as it came, nothing left partial.
  st.routes6 = Lpm6Table({Ipv6Route{addr(ip6(0xfd00, 5, 2, 0, 0, 0, 0, 0)), 64, hop(ip(192, 168, 50, 2))}});
  auto plain = build_tcp6(Ipv6Spec{}, 1, 0x10, pattern(500));
  CHECK(!decide_ingress(plain.data(), plain.size(), ip(192, 168, 50, 2), st).partial);

  // Egress toward a peer that takes them: a pending checksum at the spot stays pending.
  ForwardingState eg = make_state6();
  eg.policy.partial_checksums = true;
  NextHop h{ip(192, 168, 50, 2), 8285};
  h.flags = kPeerIpv6 | kPeerPartialChecksums;
  eg.routes6 = Lpm6Table({Ipv6Route{addr(ip6(0xfd00, 5, 2, 0, 0, 0, 0, 0)), 64, h}});
  auto out = build_tcp6(outgoing(), 1, 0x10, pattern(300));
  store_be16(out.data() + 56, pseudo_header_sum_ipv6(out.data(), 6, out.size() - 40));  // as the kernel leaves it
  std::vector<uint8_t> buf(kVirtioNetHdrLen);
  VirtioNetHdr vh;
  vh.flags = kVirtioFlagNeedsCsum;
  vh.csum_start = 40;
  vh.csum_offset = 16;
  encode_virtio_hdr(vh, buf.data());
  buf.insert(buf.end(), out.begin(), out.end());
  TunRead r = classify_tun_read(buf.data(), buf.size(), true, eg, 64);
  CHECK(r.decision.forward);
  CHECK(r.leave_partial);
  // A bad checksum that the kernel did not vouch for is not sent on partial.
  auto bad = build_tcp6(outgoing(), 1, 0x10, pattern(300));
  bad[70] ^= 1;
  std::vector<uint8_t> buf2(kVirtioNetHdrLen, 0);
  buf2.insert(buf2.end(), bad.begin(), bad.end());
  r = classify_tun_read(buf2.data(), buf2.size(), true, eg, 64);
  CHECK_EQ(r.decision.drop, kEgressDropBadChecksum);
}
