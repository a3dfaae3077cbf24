// Unit tests of the pure packet core: checksums, IPv4 parsing, TTL, ICMP
// errors, the LPM table, the forwarding decisions and state publication.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <map>
#include <random>
#include <stdexcept>
#include <thread>

#include "../core/checksum.h"
#include "../core/flow_hash.h"
#include "../core/forwarding.h"
#include "../core/icmp.h"
#include "../core/ipv4.h"
#include "../core/lpm_table.h"
#include "../core/peer_backoff.h"
#include "../core/state_publisher.h"
#include "../core/token_bucket.h"
#include "packet_builder.h"
#include "test_harness.h"

using namespace flannel;
using testpkt::build_ipv4;
using testpkt::header_checksum_ok;
using testpkt::ip;
using testpkt::Ipv4Spec;
using testpkt::reference_checksum;

// ---------------------------------------------------------------- checksums

TEST(checksum_matches_known_ipv4_header) {
  // A header whose checksum field is 0xb861 (the widely published example).
  uint8_t h[20] = {0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
                   0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7};
  CHECK_EQ(internet_checksum(h, 20), 0xb861);
}

TEST(checksum_odd_length_pads_right) {
  const uint8_t d[3] = {0x01, 0x02, 0x03};
  CHECK_EQ(internet_checksum(d, 3), reference_checksum(d, 3));
  CHECK_EQ(internet_checksum(d, 3), static_cast<uint16_t>(~(0x0102 + 0x0300) & 0xffff));
}

TEST(checksum_incremental_equals_full_recompute) {
  std::mt19937 rng(42);
  for (int n = 0; n < 20000; ++n) {
    Ipv4Spec s;
    s.src = rng();
    s.dst = rng();
    s.ttl = static_cast<uint8_t>(2 + rng() % 254);
    s.protocol = static_cast<uint8_t>(rng());
    s.id = static_cast<uint16_t>(rng());
    auto p = build_ipv4(s);
    CHECK(decrement_ttl(p.data()));
    CHECK(header_checksum_ok(p.data()));
    CHECK_EQ(p[8], static_cast<uint8_t>(s.ttl - 1));
  }
}

TEST(checksum_replace16_rfc1624_example) {
  // RFC 1624 §4: a field 0x5555 -> 0x3285 in data whose checksum was 0xDD2F
  // yields 0x0000 by eqn. 3 (never the -0 of eqn. 2).
  CHECK_EQ(csum_replace16(0xdd2f, 0x5555, 0x3285), 0x0000);
}

// ---------------------------------------------------------------- parsing

TEST(parse_accepts_valid_packet) {
  Ipv4Spec s;
  auto p = build_ipv4(s);
  Ipv4Header h;
  CHECK(parse_ipv4(p.data(), p.size(), &h) == Ipv4Error::kNone);
  CHECK_EQ(h.header_len, 20);
  CHECK_EQ(h.total_len, p.size());
  CHECK_EQ(h.src, s.src);
  CHECK_EQ(h.dst, s.dst);
  CHECK_EQ(h.ttl, 64);
  CHECK_EQ(h.protocol, 17);
  CHECK(h.is_first_fragment());
}

TEST(parse_accepts_60_byte_header) {
  Ipv4Spec s;
  s.options_len = 40;
  auto p = build_ipv4(s);
  Ipv4Header h;
  CHECK(parse_ipv4(p.data(), p.size(), &h) == Ipv4Error::kNone);
  CHECK_EQ(h.header_len, 60);
}

TEST(parse_rejects_non_ipv4) {
  uint8_t v6[40] = {0x60};
  Ipv4Header h;
  CHECK(parse_ipv4(v6, sizeof(v6), &h) == Ipv4Error::kNotIpv4);
  // The version is checked first, even for a too-short buffer.
  CHECK(parse_ipv4(v6, 1, &h) == Ipv4Error::kNotIpv4);
}

TEST(parse_rejects_short_and_bad_lengths) {
  Ipv4Spec s;
  auto p = build_ipv4(s);
  Ipv4Header h;
  CHECK(parse_ipv4(p.data(), 19, &h) == Ipv4Error::kTooShort);
  CHECK(parse_ipv4(p.data(), 0, &h) == Ipv4Error::kTooShort);

  auto bad = p;
  bad[0] = 0x44;  // IHL 4
  CHECK(parse_ipv4(bad.data(), bad.size(), &h) == Ipv4Error::kBadHeaderLength);
  bad = p;
  bad[0] = 0x4f;  // IHL 15 = 60 bytes > 32 available
  CHECK(parse_ipv4(bad.data(), bad.size(), &h) == Ipv4Error::kBadHeaderLength);
  bad = p;
  bad[2] = 0;
  bad[3] = 19;  // total length below the header length
  CHECK(parse_ipv4(bad.data(), bad.size(), &h) == Ipv4Error::kBadTotalLength);
  bad = p;
  bad[3] = static_cast<uint8_t>(bad[3] + 1);  // claims one byte more than present
  CHECK(parse_ipv4(bad.data(), bad.size(), &h) == Ipv4Error::kBadTotalLength);
}

TEST(parse_tolerates_trailing_bytes) {
  Ipv4Spec s;
  auto p = build_ipv4(s);
  const size_t real = p.size();
  p.resize(real + 7, 0xee);
  Ipv4Header h;
  CHECK(parse_ipv4(p.data(), p.size(), &h) == Ipv4Error::kNone);
  CHECK_EQ(h.total_len, real);
}

TEST(ttl_one_and_zero_are_not_forwarded) {
  for (uint8_t ttl : {0, 1}) {
    Ipv4Spec s;
    s.ttl = ttl;
    auto p = build_ipv4(s);
    auto before = p;
    CHECK(!decrement_ttl(p.data()));
    CHECK(p == before);
  }
  Ipv4Spec s;
  s.ttl = 2;
  auto p = build_ipv4(s);
  CHECK(decrement_ttl(p.data()));
  CHECK_EQ(p[8], 1);
  CHECK(header_checksum_ok(p.data()));
}

// ---------------------------------------------------------------- ICMP

TEST(icmp_net_unreachable_exact_bytes) {
  Ipv4Spec s;
  s.src = ip(10, 5, 1, 2);
  s.dst = ip(10, 5, 99, 2);
  s.ttl = 63;
  s.payload = {0x30, 0x39, 0x1f, 0x90, 0x00, 0x14, 0x00, 0x00, 'h', 'e', 'l', 'l'};
  auto offender = build_ipv4(s);
  Ipv4Header h;
  CHECK(parse_ipv4(offender.data(), offender.size(), &h) == Ipv4Error::kNone);
  CHECK(icmp_error_allowed(IcmpError::kNetUnreachable, offender.data(), h));
  uint8_t out[kIcmpErrorMaxLen];
  const size_t n = build_icmp_error(IcmpError::kNetUnreachable, offender.data(), h, ip(10, 5, 1, 0),
                                    out, sizeof(out));
  CHECK_EQ(n, 20u + 8 + 20 + 8);

  std::vector<uint8_t> want = {0x45, 0x00, 0x00, 56, 0x00, 0x00, 0x00, 0x00, 8, 1, 0, 0,
                               10, 5, 1, 0, 10, 5, 1, 2,
                               3, 0, 0, 0, 0, 0, 0, 0};
  for (size_t i = 0; i < 28; ++i) want.push_back(offender[i]);
  const uint16_t ipc = reference_checksum(want.data(), 20);
  want[10] = static_cast<uint8_t>(ipc >> 8);
  want[11] = static_cast<uint8_t>(ipc);
  const uint16_t icc = reference_checksum(want.data() + 20, want.size() - 20);
  want[22] = static_cast<uint8_t>(icc >> 8);
  want[23] = static_cast<uint8_t>(icc);
  CHECK_EQ(want.size(), n);
  CHECK_BYTES(out, want.data(), n);
}

TEST(icmp_quotes_60_byte_header) {
  Ipv4Spec s;
  s.options_len = 40;
  auto offender = build_ipv4(s);
  Ipv4Header h;
  CHECK(parse_ipv4(offender.data(), offender.size(), &h) == Ipv4Error::kNone);
  CHECK(icmp_error_allowed(IcmpError::kNetUnreachable, offender.data(), h));
  uint8_t out[kIcmpErrorMaxLen];
  const size_t n = build_icmp_error(IcmpError::kNetUnreachable, offender.data(), h, ip(10, 5, 1, 0),
                                    out, sizeof(out));
  CHECK_EQ(n, 20u + 8 + 60 + 8);
  CHECK_BYTES(out + 28, offender.data(), 68);
  CHECK(header_checksum_ok(out));
  CHECK_EQ(reference_checksum(out + 20, n - 20), 0);
}

TEST(icmp_short_offender_quotes_only_its_bytes) {
  Ipv4Spec s;
  s.payload = {1, 2, 3};
  auto offender = build_ipv4(s);
  // Stale bytes after the packet in the same buffer must not be quoted.
  offender.resize(offender.size() + 16, 0xcc);
  Ipv4Header h;
  CHECK(parse_ipv4(offender.data(), offender.size(), &h) == Ipv4Error::kNone);
  uint8_t out[kIcmpErrorMaxLen];
  memset(out, 0x77, sizeof(out));
  const size_t n = build_icmp_error(IcmpError::kNetUnreachable, offender.data(), h, ip(10, 5, 1, 0),
                                    out, sizeof(out));
  CHECK_EQ(n, 20u + 8 + 23);
  CHECK_EQ((out[2] << 8) | out[3], static_cast<int>(n));
  CHECK_BYTES(out + 28, offender.data(), 23);
  CHECK_EQ(reference_checksum(out + 20, n - 20), 0);
  CHECK_EQ(out[n], 0x77);  // nothing written past the end
}

TEST(icmp_time_exceeded_fields) {
  Ipv4Spec s;
  s.ttl = 1;
  auto offender = build_ipv4(s);
  Ipv4Header h;
  CHECK(parse_ipv4(offender.data(), offender.size(), &h) == Ipv4Error::kNone);
  uint8_t out[kIcmpErrorMaxLen];
  const size_t n = build_icmp_error(IcmpError::kTimeExceeded, offender.data(), h, ip(10, 5, 2, 0), out,
                                    sizeof(out));
  CHECK_EQ(n, 56u);
  CHECK_EQ(out[8], kIcmpTimeExceededTtl);
  CHECK_EQ(out[20], 11);
  CHECK_EQ(out[21], 0);
  CHECK(header_checksum_ok(out));
  CHECK_EQ(reference_checksum(out + 20, n - 20), 0);
}

TEST(icmp_rules) {
  Ipv4Header h;
  auto allowed = [&h](IcmpError kind, Ipv4Spec s) {
    auto p = build_ipv4(s);
    parse_ipv4(p.data(), p.size(), &h);
    return icmp_error_allowed(kind, p.data(), h);
  };
  Ipv4Spec udp;
  CHECK(allowed(IcmpError::kNetUnreachable, udp));
  CHECK(allowed(IcmpError::kTimeExceeded, udp));

  Ipv4Spec echo;
  echo.protocol = 1;
  echo.payload = {8, 0, 0, 0, 0, 1, 0, 1};
  CHECK(!allowed(IcmpError::kNetUnreachable, echo));  // upstream: never about ICMP
  CHECK(allowed(IcmpError::kTimeExceeded, echo));     // traceroute -I

  Ipv4Spec err = echo;
  err.payload[0] = 3;  // an ICMP error
  CHECK(!allowed(IcmpError::kTimeExceeded, err));
  err.payload[0] = 11;
  CHECK(!allowed(IcmpError::kTimeExceeded, err));
  err.payload[0] = 42;  // unknown type: treated as an error
  CHECK(!allowed(IcmpError::kTimeExceeded, err));

  Ipv4Spec frag;
  frag.frag_field = 0x0010;  // offset 16*8
  CHECK(!allowed(IcmpError::kNetUnreachable, frag));
  CHECK(!allowed(IcmpError::kTimeExceeded, frag));
  frag.frag_field = 0x2000;  // first fragment, more fragments follow
  CHECK(allowed(IcmpError::kNetUnreachable, frag));

  Ipv4Spec mcast;
  mcast.dst = ip(224, 0, 0, 5);
  CHECK(!allowed(IcmpError::kNetUnreachable, mcast));
  Ipv4Spec zero_src;
  zero_src.src = 0;
  CHECK(!allowed(IcmpError::kTimeExceeded, zero_src));
  Ipv4Spec bcast_src;
  bcast_src.src = ip(255, 255, 255, 255);
  CHECK(!allowed(IcmpError::kTimeExceeded, bcast_src));
}

// ---------------------------------------------------------------- LPM

static Ipv4Route route(uint32_t net, uint8_t len, uint32_t peer, uint16_t port = 8285) {
  return Ipv4Route{net, len, NextHop{peer, port}};
}

TEST(lpm_longest_prefix_wins_regardless_of_order) {
  std::vector<Ipv4Route> routes = {route(ip(10, 5, 0, 0), 16, 1), route(ip(10, 5, 2, 0), 24, 2),
                                   route(ip(10, 5, 2, 128), 25, 3), route(0, 0, 4)};
  for (int rotation = 0; rotation < 4; ++rotation) {
    LpmTable t(routes);
    CHECK_EQ(t.size(), 4u);
    CHECK_EQ(t.lookup(ip(10, 5, 2, 200))->addr, 3u);
    CHECK_EQ(t.lookup(ip(10, 5, 2, 5))->addr, 2u);
    CHECK_EQ(t.lookup(ip(10, 5, 9, 9))->addr, 1u);
    CHECK_EQ(t.lookup(ip(8, 8, 8, 8))->addr, 4u);
    std::rotate(routes.begin(), routes.begin() + 1, routes.end());
  }
}

TEST(lpm_no_match_and_host_routes) {
  LpmTable empty;
  CHECK(empty.lookup(ip(10, 0, 0, 1)) == nullptr);
  LpmTable t({route(ip(10, 5, 2, 0), 24, 2), route(ip(10, 5, 3, 7), 32, 9, 1234)});
  CHECK(t.lookup(ip(10, 5, 4, 1)) == nullptr);
  CHECK_EQ(t.lookup(ip(10, 5, 3, 7))->addr, 9u);
  CHECK_EQ(t.lookup(ip(10, 5, 3, 7))->port, 1234);
  CHECK(t.lookup(ip(10, 5, 3, 8)) == nullptr);
}

TEST(lpm_rejects_port_zero_and_long_prefixes) {
  bool threw = false;
  try {
    LpmTable t({route(ip(10, 5, 2, 0), 24, 2, 0)});
  } catch (const std::invalid_argument&) {
    threw = true;
  }
  CHECK(threw);
  threw = false;
  try {
    LpmTable t({route(ip(10, 5, 2, 0), 33, 2)});
  } catch (const std::invalid_argument&) {
    threw = true;
  }
  CHECK(threw);
}

TEST(lpm_masks_networks_and_later_duplicate_wins) {
  LpmTable t({route(ip(10, 5, 2, 77), 24, 1), route(ip(10, 5, 2, 0), 24, 2)});
  CHECK_EQ(t.size(), 1u);
  CHECK_EQ(t.lookup(ip(10, 5, 2, 1))->addr, 2u);
}

TEST(lpm_matches_brute_force_on_random_tables) {
  std::mt19937 rng(7);
  for (int round = 0; round < 20; ++round) {
    std::vector<Ipv4Route> routes;
    const int n = 1 + static_cast<int>(rng() % 3000);
    for (int i = 0; i < n; ++i) {
      const uint8_t len = static_cast<uint8_t>(8 + rng() % 25);
      routes.push_back(route(ip(10, 0, 0, 0) | (rng() & 0x00ffffff), len, static_cast<uint32_t>(i + 1)));
    }
    LpmTable t(routes);
    // Reference: the last-written route of the longest matching prefix.
    std::map<std::pair<uint32_t, int>, uint32_t> ref;
    for (const auto& r : routes) ref[{r.network & prefix_mask(r.prefix_len), r.prefix_len}] = r.next_hop.addr;
    for (int q = 0; q < 2000; ++q) {
      const uint32_t dst = ip(10, 0, 0, 0) | (rng() & 0x00ffffff);
      uint32_t want = 0;
      for (int len = 32; len >= 0 && want == 0; --len) {
        auto it = ref.find({dst & prefix_mask(static_cast<uint8_t>(len)), len});
        if (it != ref.end()) want = it->second;
      }
      const NextHop* got = t.lookup(dst);
      CHECK_EQ(got == nullptr ? 0u : got->addr, want);
    }
  }
}

TEST(lpm_ten_thousand_routes_all_found) {
  std::vector<Ipv4Route> routes;
  for (uint32_t i = 0; i < 10000; ++i) routes.push_back(route(ip(10, 0, 0, 0) + (i << 8), 24, i + 1));
  LpmTable t(routes);
  CHECK_EQ(t.size(), 10000u);
  for (uint32_t i = 0; i < 10000; ++i) CHECK_EQ(t.lookup(ip(10, 0, 0, 9) + (i << 8))->addr, i + 1);
}

TEST(addr_set_membership) {
  AddrSet empty;
  CHECK(!empty.contains(ip(1, 2, 3, 4)));
  std::vector<Peer> peers;
  for (uint32_t i = 0; i < 500; ++i) peers.push_back({ip(192, 168, 0, 0) + i * 3, static_cast<uint8_t>(i & 1)});
  AddrSet s(peers);
  CHECK_EQ(s.size(), 500u);
  for (uint32_t i = 0; i < 1500; ++i) CHECK_EQ(s.contains(ip(192, 168, 0, 0) + i), i % 3 == 0);
  for (uint32_t i = 0; i < 500; ++i) CHECK_EQ(*s.find(ip(192, 168, 0, 0) + i * 3), i & 1);
}

// ---------------------------------------------------------------- decisions

static ForwardingState make_state() {
  ForwardingState st;
  st.routes = LpmTable({route(ip(10, 5, 2, 0), 24, ip(192, 168, 50, 2))});
  st.peers = AddrSet(std::vector<Peer>{{ip(192, 168, 50, 2), 0}});
  return st;
}

// make_state() as node 10.5.1.0/24 of Network 10.5.0.0/16, inner checks on.
static ForwardingState make_policed_state() {
  ForwardingState st;
  st.routes = LpmTable({route(ip(10, 5, 2, 0), 24, ip(192, 168, 50, 2)),
                        route(ip(10, 5, 3, 0), 24, ip(192, 168, 50, 3))});
  st.peers = AddrSet(std::vector<Peer>{{ip(192, 168, 50, 2), 0}, {ip(192, 168, 50, 3), 0}});
  st.policy.configured = true;
  st.policy.own_subnet = {ip(10, 5, 1, 0), 24};
  st.policy.network = {ip(10, 5, 0, 0), 16};
  return st;
}

TEST(egress_forwards_with_ttl_decrement) {
  ForwardingState st = make_state();
  Ipv4Spec s;
  auto p = build_ipv4(s);
  auto original = p;
  p.resize(p.size() + 100, 0);  // a larger buffer than the packet
  Decision d = decide_egress(p.data(), original.size(), st);
  CHECK(d.forward);
  CHECK_EQ(d.next_hop.addr, ip(192, 168, 50, 2));
  CHECK_EQ(d.next_hop.port, 8285);
  CHECK_EQ(d.length, original.size());
  CHECK_EQ(p[8], 63);
  CHECK(header_checksum_ok(p.data()));
  // Everything but TTL and checksum is untouched.
  for (size_t i = 0; i < original.size(); ++i) {
    if (i == 8 || i == 10 || i == 11) continue;
    CHECK_EQ(p[i], original[i]);
  }
}

TEST(egress_no_route_wants_net_unreachable) {
  ForwardingState st = make_state();
  Ipv4Spec s;
  s.dst = ip(10, 5, 99, 1);
  auto p = build_ipv4(s);
  Decision d = decide_egress(p.data(), p.size(), st);
  CHECK(!d.forward);
  CHECK_EQ(d.drop, kEgressDropNoRoute);
  CHECK(d.icmp == IcmpAction::kSend);
  CHECK(d.icmp_kind == IcmpError::kNetUnreachable);
  CHECK_EQ(p[8], 64);  // untouched
}

TEST(egress_ttl_expiry_wants_time_exceeded) {
  ForwardingState st = make_state();
  Ipv4Spec s;
  s.ttl = 1;
  auto p = build_ipv4(s);
  Decision d = decide_egress(p.data(), p.size(), st);
  CHECK(!d.forward);
  CHECK_EQ(d.drop, kEgressDropTtlExpired);
  CHECK(d.icmp == IcmpAction::kSend);
  CHECK(d.icmp_kind == IcmpError::kTimeExceeded);
}

TEST(egress_malformed_drops) {
  ForwardingState st = make_state();
  uint8_t v6[48] = {0x60};
  CHECK_EQ(decide_egress(v6, sizeof(v6), st).drop, kEgressDropNotIpv4);
  Ipv4Spec s;
  auto p = build_ipv4(s);
  CHECK_EQ(decide_egress(p.data(), 10, st).drop, kEgressDropTooShort);
  p[3] = static_cast<uint8_t>(p[3] + 50);
  Decision d = decide_egress(p.data(), p.size() - 0, st);
  CHECK_EQ(d.drop, kEgressDropBadHeader);
  CHECK(d.icmp == IcmpAction::kNone);
}

TEST(ingress_source_check) {
  ForwardingState st = make_state();
  Ipv4Spec s;
  s.src = ip(10, 5, 2, 2);
  s.dst = ip(10, 5, 1, 2);
  auto p = build_ipv4(s);
  Decision d = decide_ingress(p.data(), p.size(), ip(192, 168, 50, 9), st);
  CHECK(!d.forward);
  CHECK_EQ(d.drop, kIngressDropUnknownSource);
  CHECK(d.icmp == IcmpAction::kNone);
  CHECK_EQ(p[8], 64);

  d = decide_ingress(p.data(), p.size(), ip(192, 168, 50, 2), st);
  CHECK(d.forward);
  CHECK_EQ(p[8], 63);
  CHECK(header_checksum_ok(p.data()));

  st.policy.source_check = false;
  auto q = build_ipv4(s);
  d = decide_ingress(q.data(), q.size(), ip(203, 0, 113, 1), st);
  CHECK(d.forward);
}

// The verdict of a datagram from `sender` carrying src -> dst.
static Counter inner_verdict(uint32_t src, uint32_t dst, uint32_t sender, const ForwardingState& st) {
  Ipv4Spec s;
  s.src = src;
  s.dst = dst;
  auto p = build_ipv4(s);
  const Decision d = decide_ingress(p.data(), p.size(), sender, st);
  return d.forward ? kCounterCount : d.drop;
}

TEST(ingress_inner_source_must_be_the_senders) {
  ForwardingState st = make_policed_state();
  const uint32_t peer2 = ip(192, 168, 50, 2), ours = ip(10, 5, 1, 7);
  // Accepted: the sender's pods, the sender host itself (unmasqueraded).
  CHECK_EQ(inner_verdict(ip(10, 5, 2, 9), ours, peer2, st), kCounterCount);
  CHECK_EQ(inner_verdict(peer2, ours, peer2, st), kCounterCount);
  // Refused: a third node's pod, our own subnet, outside the Network, an
  // unrouted subnet of the Network.
  CHECK_EQ(inner_verdict(ip(10, 5, 3, 9), ours, peer2, st), kIngressDropSpoofedSource);
  CHECK_EQ(inner_verdict(ip(10, 5, 1, 9), ours, peer2, st), kIngressDropSpoofedSource);
  CHECK_EQ(inner_verdict(ip(8, 8, 8, 8), ours, peer2, st), kIngressDropSpoofedSource);
  CHECK_EQ(inner_verdict(ip(10, 5, 77, 1), ours, peer2, st), kIngressDropSpoofedSource);
  // The other peer's pods from the other peer are fine.
  CHECK_EQ(inner_verdict(ip(10, 5, 3, 9), ours, ip(192, 168, 50, 3), st), kCounterCount);
  // External sources only with allow_external_sources; never our own subnet.
  st.policy.allow_external_sources = true;
  CHECK_EQ(inner_verdict(ip(8, 8, 8, 8), ours, peer2, st), kCounterCount);
  CHECK_EQ(inner_verdict(ip(10, 5, 3, 9), ours, peer2, st), kIngressDropSpoofedSource);
  CHECK_EQ(inner_verdict(ip(10, 5, 1, 9), ours, peer2, st), kIngressDropSpoofedSource);
}

TEST(ingress_inner_destination_must_be_ours) {
  ForwardingState st = make_policed_state();
  const uint32_t peer2 = ip(192, 168, 50, 2), src = ip(10, 5, 2, 9);
  CHECK_EQ(inner_verdict(src, ip(10, 5, 3, 1), peer2, st), kIngressDropForeignDestination);
  CHECK_EQ(inner_verdict(src, ip(192, 168, 50, 1), peer2, st), kIngressDropForeignDestination);
  CHECK_EQ(inner_verdict(src, ip(1, 1, 1, 1), peer2, st), kIngressDropForeignDestination);
  st.policy.source_check = false;
  CHECK_EQ(inner_verdict(src, ip(10, 5, 3, 1), peer2, st), kIngressDropForeignDestination);
}

TEST(ingress_nat_mode_checks_the_network_only) {
  ForwardingState st = make_policed_state();
  st.policy.source_check = false;
  const uint32_t stranger = ip(203, 0, 113, 1), ours = ip(10, 5, 1, 7);
  CHECK_EQ(inner_verdict(ip(10, 5, 3, 9), ours, stranger, st), kCounterCount);
  CHECK_EQ(inner_verdict(ip(10, 5, 77, 9), ours, stranger, st), kCounterCount);
  CHECK_EQ(inner_verdict(ip(10, 5, 1, 9), ours, stranger, st), kIngressDropSpoofedSource);
  CHECK_EQ(inner_verdict(ip(8, 8, 8, 8), ours, stranger, st), kIngressDropSpoofedSource);
}

TEST(ingress_refusal_precedes_ttl_and_icmp) {
  ForwardingState st = make_policed_state();
  Ipv4Spec s;
  s.src = ip(10, 5, 3, 9);
  s.dst = ip(10, 5, 1, 7);
  s.ttl = 1;
  auto p = build_ipv4(s);
  Decision d = decide_ingress(p.data(), p.size(), ip(192, 168, 50, 2), st);
  CHECK_EQ(d.drop, kIngressDropSpoofedSource);
  CHECK(d.icmp == IcmpAction::kNone);
  CHECK_EQ(p[8], 1);
}

TEST(ingress_malformed_and_ttl) {
  ForwardingState st = make_state();
  const uint32_t peer = ip(192, 168, 50, 2);
  uint8_t tiny[8] = {0x45};
  CHECK_EQ(decide_ingress(tiny, sizeof(tiny), peer, st).drop, kIngressDropTooShort);
  uint8_t v6[60] = {0x60};
  CHECK_EQ(decide_ingress(v6, sizeof(v6), peer, st).drop, kIngressDropNotIpv4);
  Ipv4Spec s;
  auto p = build_ipv4(s);
  p[0] = 0x43;
  CHECK_EQ(decide_ingress(p.data(), p.size(), peer, st).drop, kIngressDropBadHeader);
  s.ttl = 1;
  p = build_ipv4(s);
  Decision d = decide_ingress(p.data(), p.size(), peer, st);
  CHECK_EQ(d.drop, kIngressDropTtlExpired);
  CHECK(d.icmp == IcmpAction::kSend);
}

// ---------------------------------------------------------------- rate limit

TEST(token_bucket_rate_and_burst) {
  TokenBucket b(10, 3);
  uint64_t t = 1000000000;
  CHECK(b.allow(t));
  CHECK(b.allow(t));
  CHECK(b.allow(t));
  CHECK(!b.allow(t));
  CHECK(!b.allow(t + 50000000));  // 0.05 s: half a token
  CHECK(b.allow(t + 100000000));  // 0.1 s: one token
  CHECK(!b.allow(t + 100000000));
  CHECK(b.allow(t + 10000000000ull));  // refilled, capped at the burst
  CHECK(b.allow(t + 10000000000ull));
  CHECK(b.allow(t + 10000000000ull));
  CHECK(!b.allow(t + 10000000000ull));
  TokenBucket off(0, 5);
  CHECK(!off.allow(t));
}

// ---------------------------------------------------------------- publication

struct Versioned {
  static std::atomic<int> live;
  uint64_t magic = 0x600dcafe;
  uint64_t version;
  explicit Versioned(uint64_t v) : version(v) { ++live; }
  ~Versioned() {
    magic = 0xdeadbeef;  // poison: a reader holding a freed version sees it
    --live;
  }
};
std::atomic<int> Versioned::live{0};

TEST(publisher_retires_until_readers_pass_quiescent_point) {
  {
    StatePublisher<Versioned> pub(std::make_unique<Versioned>(0));
    const int r = pub.register_reader();
    CHECK(r >= 0);
    const Versioned* v0 = pub.read(r);
    CHECK_EQ(v0->version, 0u);
    pub.publish(std::make_unique<Versioned>(1));
    CHECK_EQ(pub.reclaim(), 1u);     // the reader may still hold v0
    CHECK_EQ(v0->magic, 0x600dcafeu);
    const Versioned* v1 = pub.read(r);
    CHECK_EQ(v1->version, 1u);
    CHECK_EQ(pub.reclaim(), 0u);     // passed a quiescent point: v0 freed
    pub.idle(r);
    pub.publish(std::make_unique<Versioned>(2));
    CHECK_EQ(pub.reclaim(), 0u);     // an idle reader holds nothing
    pub.unregister_reader(r);
  }
  CHECK_EQ(Versioned::live.load(), 0);
}

TEST(publisher_concurrent_readers_never_see_freed_state) {
  std::atomic<bool> done{false};
  std::atomic<int> bad{0};
  std::atomic<uint64_t> reads{0};
  {
    StatePublisher<Versioned> pub(std::make_unique<Versioned>(0));
    std::vector<std::thread> readers;
    for (int t = 0; t < 3; ++t) {
      readers.emplace_back([&] {
        const int slot = pub.register_reader();
        uint64_t last = 0;
        while (!done.load()) {
          const Versioned* v = pub.read(slot);
          for (int k = 0; k < 50; ++k) {
            if (v->magic != 0x600dcafeu) ++bad;
          }
          if (v->version < last) ++bad;  // versions never go backwards
          last = v->version;
          ++reads;
          if ((last & 7) == 0) pub.idle(slot);
        }
        pub.unregister_reader(slot);
      });
    }
    for (uint64_t v = 1; v <= 20000; ++v) {
      pub.publish(std::make_unique<Versioned>(v));
      if ((v & 63) == 0) std::this_thread::yield();
    }
    done.store(true);
    for (auto& th : readers) th.join();
    CHECK_EQ(pub.reclaim(), 0u);
  }
  CHECK_EQ(bad.load(), 0);
  CHECK(reads.load() > 0);
  CHECK_EQ(Versioned::live.load(), 0);
}

// ---------------------------------------------------------------- peer backoff

TEST(peer_backoff_suppresses_until_the_deadline_and_replaces_the_first_to_expire) {
  auto k = PeerBackoff::v4_key;
  PeerBackoff b;
  CHECK(!b.suppressed(k(1), 0));
  b.suppress(k(1), 100, 0);
  CHECK(b.suppressed(k(1), 99));
  CHECK(!b.suppressed(k(1), 100));
  CHECK(!b.suppressed(k(2), 50));
  b.suppress(k(1), 300, 50);  // extended, not duplicated
  CHECK(b.suppressed(k(1), 200));
  CHECK_EQ(b.size(), 1u);
  // Expired entries make room; a full table replaces the entry expiring first.
  for (uint32_t a = 10; a < 10 + PeerBackoff::kSlots; ++a) b.suppress(k(a), 1000 + a, 400);
  CHECK_EQ(b.size(), PeerBackoff::kSlots);  // peer 1 (expired at 300) was dropped
  CHECK(!b.suppressed(k(1), 400));
  b.suppress(k(7), 5000, 400);
  CHECK(b.suppressed(k(7), 4000));
  CHECK(!b.suppressed(k(10), 500));  // 10 expired first: replaced
  CHECK(b.suppressed(k(11), 500));
}

TEST(peer_backoff_keys_ipv6_peers_by_address_apart_from_ipv4_ones) {
  PeerBackoff b;
  const Ipv6Addr v6{0xfd00000000000000ull, 2};
  b.suppress(v6, 100, 0);
  CHECK(b.suppressed(v6, 50));
  // The IPv4 peer 0.0.0.2 and the index 2 of an endpoint table are not this peer.
  CHECK(!b.suppressed(PeerBackoff::v4_key(2), 50));
  CHECK(!b.suppressed(Ipv6Addr{0, 2}, 50));
  CHECK((PeerBackoff::v4_key(0xc0a80102) == Ipv6Addr{0, 0x0000ffffc0a80102ull}));
}

// ---------------------------------------------------------------- flow hash

// The flow hash of a well-formed packet (0xffffffff if it does not parse).
static uint32_t hash_of(const std::vector<uint8_t>& p) {
  Ipv4Header h;
  if (parse_ipv4(p.data(), p.size(), &h) != Ipv4Error::kNone) return 0xffffffffu;
  return flow_hash(p.data(), p.size(), h);
}

TEST(flow_hash_keys_on_the_flow_and_spreads_flows) {
  testpkt::TcpSpec t;
  t.payload = testpkt::pattern(100);
  const uint32_t base = hash_of(testpkt::build_tcp4(t));
  CHECK(base != 0xffffffffu);
  testpkt::TcpSpec later = t;
  later.seq += 5000;
  later.id = 9;
  later.payload = testpkt::pattern(700, 3);
  CHECK_EQ(hash_of(testpkt::build_tcp4(later)), base);  // same flow, other packet
  testpkt::TcpSpec other = t;
  other.sport = static_cast<uint16_t>(t.sport + 1);
  CHECK(hash_of(testpkt::build_tcp4(other)) != base);
  // Fragments of a datagram hash alike (addresses and protocol only).
  Ipv4Spec f;
  f.frag_field = 0x2000;  // MF, offset 0
  f.payload = std::vector<uint8_t>(16, 1);
  const uint32_t first = hash_of(build_ipv4(f));
  f.frag_field = 0x0010;  // offset 128, last
  f.payload = std::vector<uint8_t>(16, 2);
  CHECK_EQ(hash_of(build_ipv4(f)), first);
  // 1000 flows over 16 ports: every port used, none with more than twice its share.
  int buckets[16] = {};
  for (int i = 0; i < 1000; ++i) {
    testpkt::TcpSpec s = t;
    s.sport = static_cast<uint16_t>(30000 + i);
    s.src = ip(10, 5, 1, 2 + (i % 7));
    buckets[hash_of(testpkt::build_tcp4(s)) % 16]++;
  }
  for (int b : buckets) CHECK(b > 20 && b < 125);
}
