// Unit tests of the offload core: splitting TSO/USO super-packets and
// coalescing received segments. Every header and checksum is checked with
// the reference implementation in packet_builder.h, not with the code under
// test.
#include <algorithm>
#include <cstring>
#include <random>
#include <vector>

#include "../core/checksum.h"
#include "../core/gro.h"
#include "../core/forwarding.h"
#include "../core/gso.h"
#include "../core/tun_read.h"
#include "../core/virtio_net.h"
#include "packet_builder.h"
#include "test_harness.h"

using namespace flannel;
using namespace testpkt;

namespace {

uint16_t be16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }
uint32_t be32(const uint8_t* p) { return (static_cast<uint32_t>(be16(p)) << 16) | be16(p + 2); }

std::vector<uint8_t> assemble(const SegmentSlice& s, const uint8_t* arena, const std::vector<uint8_t>& pkt) {
  std::vector<uint8_t> out(arena + s.header_off, arena + s.header_off + s.header_len);
  out.insert(out.end(), pkt.begin() + s.payload_off, pkt.begin() + s.payload_off + s.payload_len);
  return out;
}

VirtioNetHdr tso(uint16_t mss, size_t csum_start) {
  VirtioNetHdr h;
  h.flags = kVirtioFlagNeedsCsum;
  h.gso_type = kVirtioGsoTcpv4;
  h.gso_size = mss;
  h.csum_start = static_cast<uint16_t>(csum_start);
  h.csum_offset = 16;
  return h;
}

}  // namespace

TEST(checksum_fast_path_matches_reference_at_any_length_and_alignment) {
  std::vector<uint8_t> buf = pattern(600, 9);
  for (size_t off = 0; off < 8; ++off) {
    for (size_t len = 0; len + off <= 400; ++len) {
      CHECK_EQ(internet_checksum(buf.data() + off, len), reference_checksum(buf.data() + off, len));
    }
  }
  // Every word all ones: the end-around carries of the wide accumulators.
  for (uint8_t fill : {uint8_t{0xff}, uint8_t{0xfe}, uint8_t{0x80}}) {
    std::vector<uint8_t> ones(70000, fill);
    for (size_t len : {size_t{1}, size_t{31}, size_t{64}, size_t{1501}, size_t{65535}, size_t{70000}}) {
      CHECK_EQ(internet_checksum(ones.data(), len), reference_checksum(ones.data(), len));
    }
  }
  // Chaining with even-length pieces equals one pass.
  const uint32_t a = csum_add_bytes(csum_add_bytes(0, buf.data(), 12), buf.data() + 12, 101);
  CHECK_EQ(csum_fold(a), reference_checksum(buf.data(), 113));
}

TEST(virtio_header_round_trip_little_endian) {
  VirtioNetHdr h;
  h.flags = 1;
  h.gso_type = kVirtioGsoTcpv4 | kVirtioGsoEcn;
  h.hdr_len = 0x0134;
  h.gso_size = 1400;
  h.csum_start = 20;
  h.csum_offset = 16;
  uint8_t b[kVirtioNetHdrLen];
  encode_virtio_hdr(h, b);
  CHECK_EQ(b[4], 1400 & 0xff);
  CHECK_EQ(b[5], 1400 >> 8);
  const VirtioNetHdr d = decode_virtio_hdr(b);
  CHECK_EQ(d.gso_type, h.gso_type);
  CHECK_EQ(d.hdr_len, 0x0134);
  CHECK_EQ(d.gso_size, 1400);
  CHECK_EQ(d.csum_start, 20);
  CHECK_EQ(d.csum_offset, 16);
}

TEST(split_tso_every_segment_has_valid_headers_and_the_right_bytes) {
  for (size_t payload_len : {1u, 1399u, 1400u, 1401u, 2800u, 5000u, 64000u}) {
    for (size_t ip_opts : {0u, 8u}) {
      TcpSpec s;
      s.payload = pattern(payload_len, static_cast<uint8_t>(payload_len));
      s.tcp_options = {1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2};  // NOP NOP timestamp
      s.ip_options_len = ip_opts;
      s.flags = 0x10 | 0x08 | 0x01 | 0x80;  // ACK PSH FIN CWR
      s.seq = 0xfffffff0u;                   // wraps during the split
      s.id = 0xfffe;
      s.ttl = 63;
      std::vector<uint8_t> pkt = build_tcp4(s);
      const size_t iphl = 20 + ip_opts, hl = iphl + 32;
      std::vector<uint8_t> arena(64 * hl);
      SegmentSlice segs[64];
      size_t n = 0;
      const VirtioNetHdr vh = tso(1400, iphl);
      CHECK(split_tun_packet(vh, pkt.data(), pkt.size(), arena.data(), arena.size(), segs, 64, &n) == SplitResult::kOk);
      CHECK_EQ(n, (payload_len + 1399) / 1400);
      size_t seen = 0;
      for (size_t i = 0; i < n; ++i) {
        std::vector<uint8_t> seg = assemble(segs[i], arena.data(), pkt);
        const size_t want = i + 1 < n ? 1400 : payload_len - 1400 * (n - 1);
        CHECK_EQ(segs[i].payload_len, want);
        CHECK_EQ(be16(seg.data() + 2), seg.size());
        CHECK_EQ(be16(seg.data() + 4), static_cast<uint16_t>(0xfffe + i));
        CHECK_EQ(seg[8], 63);
        CHECK(header_checksum_ok(seg.data()));
        CHECK_EQ(l4_check_reference(seg.data(), seg.size()), 0);
        const uint8_t* t = seg.data() + iphl;
        CHECK_EQ(be32(t + 4), static_cast<uint32_t>(0xfffffff0u + 1400 * i));
        const bool last = i + 1 == n;
        CHECK_EQ((t[13] & 0x09) != 0, last);  // PSH/FIN only on the last
        CHECK_EQ((t[13] & 0x80) != 0, i == 0);  // CWR only on the first
        CHECK((t[13] & 0x10) != 0);
        CHECK(std::memcmp(seg.data() + hl, s.payload.data() + seen, want) == 0);
        CHECK(std::memcmp(seg.data() + 12, pkt.data() + 12, 8) == 0);
        seen += want;
      }
      CHECK_EQ(seen, payload_len);
    }
  }
}

TEST(split_uso_segments_are_udp_datagrams_with_valid_checksums) {
  Ipv4Spec s;
  s.protocol = 17;
  std::vector<uint8_t> body(8 + 3001);
  std::vector<uint8_t> data = pattern(3001, 4);
  body[0] = 0x12;
  body[1] = 0x34;
  body[2] = 0x1f;
  body[3] = 0x90;
  for (size_t i = 0; i < data.size(); ++i) body[8 + i] = data[i];
  s.payload = body;
  std::vector<uint8_t> pkt = build_ipv4(s);
  VirtioNetHdr vh;
  vh.flags = kVirtioFlagNeedsCsum;
  vh.gso_type = kVirtioGsoUdpL4;
  vh.gso_size = 1000;
  vh.csum_start = 20;
  vh.csum_offset = 6;
  std::vector<uint8_t> arena(10 * 28);
  SegmentSlice segs[10];
  size_t n = 0;
  CHECK(split_tun_packet(vh, pkt.data(), pkt.size(), arena.data(), arena.size(), segs, 10, &n) == SplitResult::kOk);
  CHECK_EQ(n, 4u);
  for (size_t i = 0; i < n; ++i) {
    std::vector<uint8_t> seg = assemble(segs[i], arena.data(), pkt);
    CHECK(header_checksum_ok(seg.data()));
    CHECK_EQ(be16(seg.data() + 20 + 4), seg.size() - 20);
    CHECK_EQ(be16(seg.data() + 20), 0x1234);
    CHECK_EQ(l4_check_reference(seg.data(), seg.size()), 0);
  }
  CHECK_EQ(segs[3].payload_len, 1);
}

TEST(split_no_gso_completes_a_partial_checksum) {
  TcpSpec s;
  s.payload = pattern(333, 2);
  std::vector<uint8_t> pkt = build_tcp4(s);
  // What the kernel hands over with CHECKSUM_PARTIAL: the pseudo-header sum in the field.
  std::vector<uint8_t> pseudo(12);
  for (int i = 0; i < 8; ++i) pseudo[i] = pkt[12 + i];
  pseudo[9] = 6;
  pseudo[10] = static_cast<uint8_t>((pkt.size() - 20) >> 8);
  pseudo[11] = static_cast<uint8_t>(pkt.size() - 20);
  const uint16_t partial = static_cast<uint16_t>(~reference_checksum(pseudo.data(), 12));
  pkt[36] = static_cast<uint8_t>(partial >> 8);
  pkt[37] = static_cast<uint8_t>(partial);
  VirtioNetHdr vh;
  vh.flags = kVirtioFlagNeedsCsum;
  vh.csum_start = 20;
  vh.csum_offset = 16;
  SegmentSlice seg[1];
  size_t n = 0;
  CHECK(split_tun_packet(vh, pkt.data(), pkt.size(), nullptr, 0, seg, 1, &n) == SplitResult::kOk);
  CHECK_EQ(n, 1u);
  CHECK_EQ(seg[0].header_len, 0);
  CHECK_EQ(seg[0].payload_len, pkt.size());
  CHECK_EQ(l4_check_reference(pkt.data(), pkt.size()), 0);
}

TEST(split_rejects_what_it_cannot_split) {
  TcpSpec s;
  s.payload = pattern(3000);
  std::vector<uint8_t> pkt = build_tcp4(s);
  std::vector<uint8_t> arena(64 * 40);
  SegmentSlice segs[64];
  size_t n = 0;
  VirtioNetHdr vh = tso(0, 20);
  CHECK(split_tun_packet(vh, pkt.data(), pkt.size(), arena.data(), arena.size(), segs, 64, &n) == SplitResult::kBadVirtioHdr);
  vh = tso(1000, 20);
  vh.gso_type = kVirtioGsoTcpv6;  // says IPv6, is IPv4
  CHECK(split_tun_packet(vh, pkt.data(), pkt.size(), arena.data(), arena.size(), segs, 64, &n) == SplitResult::kBadPacket);
  vh.gso_type = kVirtioGsoUdp;  // UFO
  CHECK(split_tun_packet(vh, pkt.data(), pkt.size(), arena.data(), arena.size(), segs, 64, &n) == SplitResult::kUnsupportedGso);
  vh = tso(1000, 20);
  vh.gso_type = kVirtioGsoUdpL4;  // says UDP, is TCP
  CHECK(split_tun_packet(vh, pkt.data(), pkt.size(), arena.data(), arena.size(), segs, 64, &n) == SplitResult::kBadPacket);
  vh = tso(10, 20);
  CHECK(split_tun_packet(vh, pkt.data(), pkt.size(), arena.data(), arena.size(), segs, 64, &n) == SplitResult::kTooManySegments);
  vh = tso(1000, 20);
  CHECK(split_tun_packet(vh, pkt.data(), pkt.size(), arena.data(), 100, segs, 64, &n) == SplitResult::kArenaFull);
  CHECK(split_tun_packet(vh, pkt.data(), 30, arena.data(), arena.size(), segs, 64, &n) == SplitResult::kBadPacket);
  VirtioNetHdr none;
  none.flags = kVirtioFlagNeedsCsum;
  none.csum_start = 20;
  none.csum_offset = 5000;  // outside the packet
  CHECK(split_tun_packet(none, pkt.data(), pkt.size(), nullptr, 0, segs, 1, &n) == SplitResult::kBadVirtioHdr);
  CHECK_EQ(n, 0u);
}

// ------------------------------------------------------------- coalescing

namespace {

struct Batch {
  std::vector<std::vector<uint8_t>> bufs;
  std::vector<InnerPacket> pkts;
  void add(std::vector<uint8_t> p) { bufs.push_back(std::move(p)); }
  void finish() {
    pkts.clear();
    for (auto& b : bufs) pkts.push_back(InnerPacket{b.data(), static_cast<uint16_t>(b.size())});
  }
};

struct Result {
  std::vector<CoalescedItem> items;
  std::vector<uint16_t> next;
  std::vector<uint8_t> arena;
};

Result coalesce(Batch& b, size_t arena_cap = 0, bool udp = false) {
  b.finish();
  Result r;
  r.items.resize(b.pkts.size());
  r.next.resize(b.pkts.size());
  r.arena.resize(arena_cap ? arena_cap : kCoalesceArenaPerPacket * b.pkts.size());
  const size_t n = flannel::coalesce(b.pkts.data(), b.pkts.size(), r.next.data(), r.arena.data(), r.arena.size(), r.items.data(), udp);
  r.items.resize(n);
  return r;
}

// The flow's segments: `count` segments of `mss` bytes (the last `last` bytes).
void add_flow(Batch& b, TcpSpec base, size_t count, size_t mss, size_t last) {
  for (size_t i = 0; i < count; ++i) {
    TcpSpec s = base;
    s.payload = pattern(i + 1 < count ? mss : last, static_cast<uint8_t>(i + 3));
    s.seq = base.seq + static_cast<uint32_t>(mss * i);
    s.id = static_cast<uint16_t>(base.id + i);
    b.add(build_tcp4(s));
  }
}

std::vector<uint16_t> members(const Result& r, const CoalescedItem& it) {
  std::vector<uint16_t> out;
  for (uint16_t m = it.first; m != 0xffff; m = r.next[m]) out.push_back(m);
  return out;
}

// What the kernel does with the merged packet: rebuild it from the header and
// the members' payloads, then complete the partial checksum.
std::vector<uint8_t> rebuild(const Result& r, const CoalescedItem& it, Batch& b) {
  std::vector<uint8_t> p(r.arena.begin() + it.header_off + kVirtioNetHdrLen, r.arena.begin() + it.header_off + it.header_len);
  for (uint16_t m : members(r, it)) p.insert(p.end(), b.bufs[m].begin() + it.l34_len, b.bufs[m].end());
  const VirtioNetHdr vh = decode_virtio_hdr(r.arena.data() + it.header_off);
  std::vector<uint8_t> l4(p.begin() + vh.csum_start, p.end());
  const uint16_t c = reference_checksum(l4.data(), l4.size());  // includes the pseudo sum in the field
  p[vh.csum_start + vh.csum_offset] = static_cast<uint8_t>(c >> 8);
  p[vh.csum_start + vh.csum_offset + 1] = static_cast<uint8_t>(c);
  return p;
}

}  // namespace

TEST(coalesce_one_flow_into_one_valid_gso_packet) {
  Batch b;
  TcpSpec base;
  base.tcp_options = {1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2};
  add_flow(b, base, 10, 1400, 333);
  TcpSpec last = base;  // a PSH segment ends the flow's group
  Result r = coalesce(b);
  CHECK_EQ(r.items.size(), 1u);
  const CoalescedItem& it = r.items[0];
  CHECK_EQ(it.count, 10);
  CHECK_EQ(it.header_len, 10 + 20 + 32);
  const VirtioNetHdr vh = decode_virtio_hdr(r.arena.data() + it.header_off);
  CHECK_EQ(vh.flags, kVirtioFlagNeedsCsum);
  CHECK_EQ(vh.gso_type, kVirtioGsoTcpv4);
  CHECK_EQ(vh.gso_size, 1400);
  CHECK_EQ(vh.hdr_len, 52);
  CHECK_EQ(vh.csum_start, 20);
  CHECK_EQ(vh.csum_offset, 16);
  std::vector<uint8_t> p = rebuild(r, it, b);
  CHECK_EQ(p.size(), 52u + 1400 * 9 + 333);
  CHECK_EQ(be16(p.data() + 2), p.size());
  CHECK(header_checksum_ok(p.data()));
  CHECK_EQ(l4_check_reference(p.data(), p.size()), 0);
  CHECK_EQ(be32(p.data() + 24), base.seq);
  (void)last;
}

TEST(coalesce_psh_only_on_the_last_member_and_it_closes_the_group) {
  Batch b;
  TcpSpec base;
  add_flow(b, base, 3, 1000, 1000);
  TcpSpec psh = base;
  psh.seq = base.seq + 3000;
  psh.id = static_cast<uint16_t>(base.id + 3);
  psh.flags = 0x18;
  psh.payload = pattern(1000, 7);
  b.add(build_tcp4(psh));
  TcpSpec after = base;
  after.seq = base.seq + 4000;
  after.id = static_cast<uint16_t>(base.id + 4);
  after.payload = pattern(1000, 8);
  b.add(build_tcp4(after));
  Result r = coalesce(b);
  CHECK_EQ(r.items.size(), 2u);
  CHECK_EQ(r.items[0].count, 4);
  CHECK_EQ(r.items[1].count, 1);
  std::vector<uint8_t> p = rebuild(r, r.items[0], b);
  CHECK((p[33] & 0x08) != 0);
  CHECK_EQ(l4_check_reference(p.data(), p.size()), 0);
}

TEST(coalesce_two_interleaved_flows_keep_their_own_groups) {
  Batch b;
  TcpSpec a;
  TcpSpec c;
  c.sport = 40001;
  c.seq = 5;
  for (int i = 0; i < 4; ++i) {
    TcpSpec x = a, y = c;
    x.seq = a.seq + 1000 * i;
    x.id = static_cast<uint16_t>(a.id + i);
    x.payload = pattern(1000, static_cast<uint8_t>(i));
    y.seq = c.seq + 900 * i;
    y.id = static_cast<uint16_t>(c.id + i);
    y.payload = pattern(900, static_cast<uint8_t>(i + 50));
    b.add(build_tcp4(x));
    b.add(build_tcp4(y));
  }
  Result r = coalesce(b);
  CHECK_EQ(r.items.size(), 2u);
  CHECK_EQ(r.items[0].first, 0);
  CHECK_EQ(r.items[1].first, 1);
  CHECK(members(r, r.items[0]) == (std::vector<uint16_t>{0, 2, 4, 6}));
  CHECK(members(r, r.items[1]) == (std::vector<uint16_t>{1, 3, 5, 7}));
  for (const auto& it : r.items) {
    std::vector<uint8_t> p = rebuild(r, it, b);
    CHECK_EQ(l4_check_reference(p.data(), p.size()), 0);
  }
}

TEST(coalesce_refuses_what_gro_refuses) {
  struct Case {
    const char* what;
    void (*mutate)(TcpSpec&);
  };
  const Case cases[] = {
      {"SYN", [](TcpSpec& s) { s.flags = 0x12; }},
      {"RST", [](TcpSpec& s) { s.flags = 0x14; }},
      {"URG", [](TcpSpec& s) { s.flags = 0x30; }},
      {"CWR", [](TcpSpec& s) { s.flags = 0x90; }},
      {"gap in sequence", [](TcpSpec& s) { s.seq += 1; }},
      {"other ack", [](TcpSpec& s) { s.ack += 1; }},
      {"other TTL", [](TcpSpec& s) { s.ttl = 10; }},
      {"other TOS", [](TcpSpec& s) { s.tos = 4; }},
      {"other options", [](TcpSpec& s) { s.tcp_options = {1, 1, 8, 10, 0, 0, 0, 9, 0, 0, 0, 2}; }},
      {"IP options", [](TcpSpec& s) { s.ip_options_len = 4; }},
      {"fragment", [](TcpSpec& s) { s.frag_field = 0x2000; }},
      {"id jump without DF", [](TcpSpec& s) {
         s.frag_field = 0;
         s.id += 5;
       }},
  };
  for (const Case& c : cases) {
    Batch b;
    TcpSpec first;
    first.tcp_options = {1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2};
    first.frag_field = 0x4000;
    first.payload = pattern(1000, 1);
    b.add(build_tcp4(first));
    TcpSpec second = first;
    second.seq = first.seq + 1000;
    second.id = static_cast<uint16_t>(first.id + 1);
    second.payload = pattern(1000, 2);
    c.mutate(second);
    b.add(build_tcp4(second));
    Result r = coalesce(b);
    if (r.items.size() != 2u) std::fprintf(stderr, "  case: %s\n", c.what);
    CHECK_EQ(r.items.size(), 2u);
  }
}

TEST(coalesce_refuses_bad_checksums_longer_segments_and_pure_acks) {
  Batch b;
  TcpSpec s;
  s.payload = pattern(1000, 1);
  b.add(build_tcp4(s));
  TcpSpec bad = s;
  bad.seq += 1000;
  bad.id++;
  bad.payload = pattern(1000, 2);
  std::vector<uint8_t> p = build_tcp4(bad);
  p[100] ^= 0xff;  // corrupt the payload: the checksum no longer verifies
  b.add(p);
  CHECK_EQ(coalesce(b).items.size(), 2u);

  // A bad IP header checksum (found by the coalescer fuzzer): the merged
  // packet's fresh header would hide it, so it is not merged.
  Batch bh;
  bh.add(build_tcp4(s));
  std::vector<uint8_t> q = build_tcp4(bad);
  q[10] ^= 0x01;
  bh.add(q);
  CHECK_EQ(coalesce(bh).items.size(), 2u);

  Batch b2;
  b2.add(build_tcp4(s));
  TcpSpec longer = s;
  longer.seq += 1000;
  longer.id++;
  longer.payload = pattern(1200, 3);
  b2.add(build_tcp4(longer));
  CHECK_EQ(coalesce(b2).items.size(), 2u);

  Batch b3;
  TcpSpec ack = s;
  ack.payload.clear();
  b3.add(build_tcp4(ack));
  TcpSpec ack2 = ack;
  ack2.id++;
  b3.add(build_tcp4(ack2));
  CHECK_EQ(coalesce(b3).items.size(), 2u);
}

TEST(coalesce_keeps_order_within_a_flow_around_an_unmergeable_packet) {
  Batch b;
  TcpSpec s;
  add_flow(b, s, 2, 1000, 1000);
  TcpSpec ack = s;  // a pure ACK of the same flow in between
  ack.payload.clear();
  ack.seq = s.seq + 2000;
  ack.id = static_cast<uint16_t>(s.id + 2);
  b.add(build_tcp4(ack));
  TcpSpec more = s;
  more.seq = s.seq + 2000;
  more.id = static_cast<uint16_t>(s.id + 3);
  more.payload = pattern(1000, 4);
  b.add(build_tcp4(more));
  Result r = coalesce(b);
  CHECK_EQ(r.items.size(), 3u);
  CHECK(members(r, r.items[0]) == (std::vector<uint16_t>{0, 1}));
  CHECK_EQ(r.items[1].first, 2);
  CHECK_EQ(r.items[2].first, 3);
}

TEST(coalesce_limits_and_arena_exhaustion) {
  Batch b;
  TcpSpec s;
  add_flow(b, s, 70, 100, 100);
  Result r = coalesce(b);
  CHECK_EQ(r.items.size(), 2u);
  CHECK_EQ(r.items[0].count, kMaxCoalescedSegments);
  CHECK_EQ(r.items[1].count, 6);
  Result small = coalesce(b, 10);
  CHECK_EQ(small.items.size(), 2u);
  CHECK_EQ(small.items[0].count, kMaxCoalescedSegments);
  CHECK_EQ(small.items[0].header_len, 0);  // written member by member
  // Fixed IP ids are fine with DF.
  Batch f;
  for (int i = 0; i < 3; ++i) {
    TcpSpec x = s;
    x.seq = s.seq + 500 * i;
    x.payload = pattern(500, static_cast<uint8_t>(i));
    f.add(build_tcp4(x));
  }
  CHECK_EQ(coalesce(f).items.size(), 1u);
}

// ---------------------------------------------------------------- partial checksums

namespace {

constexpr uint32_t kPartialPeer = 0xc0a83202;  // 192.168.50.2, takes partial checksums
constexpr uint32_t kPlainPeer = 0xc0a83203;    // 192.168.50.3, does not

// Node 10.5.1.0/24; 10.5.2.0/24 behind the partial peer, 10.5.3.0/24 behind the plain one.
ForwardingState partial_state() {
  ForwardingState st;
  st.routes = LpmTable({{ip(10, 5, 2, 0), 24, NextHop{kPartialPeer, 8285, kPeerPartialChecksums}},
                        {ip(10, 5, 3, 0), 24, NextHop{kPlainPeer, 8285, 0}}});
  st.peers = AddrSet(std::vector<Peer>{{kPartialPeer, kPeerPartialChecksums}, {kPlainPeer, 0}});
  st.policy.configured = true;
  st.policy.own_subnet = {ip(10, 5, 1, 0), 24};
  st.policy.network = {ip(10, 5, 0, 0), 16};
  st.policy.partial_checksums = true;
  return st;
}

// A TCP packet as the kernel hands it to the TUN: the checksum field holding
// the pseudo-header sum, behind a virtio header saying NEEDS_CSUM.
std::vector<uint8_t> partial_tun_read(uint32_t dst, size_t payload) {
  TcpSpec s;
  s.dst = dst;
  s.payload = pattern(payload, 5);
  std::vector<uint8_t> p = build_tcp4(s);
  store_be16(p.data() + 20 + 16, pseudo_header_sum_ipv4(p.data(), 6, p.size() - 20));
  VirtioNetHdr vh;
  vh.flags = kVirtioFlagNeedsCsum;
  vh.csum_start = 20;
  vh.csum_offset = 16;
  std::vector<uint8_t> buf(kVirtioNetHdrLen);
  encode_virtio_hdr(vh, buf.data());
  buf.insert(buf.end(), p.begin(), p.end());
  return buf;
}

std::vector<uint8_t> plain_tun_read(const std::vector<uint8_t>& pkt, uint8_t flags) {
  std::vector<uint8_t> buf(kVirtioNetHdrLen, 0);
  buf[0] = flags;
  buf.insert(buf.end(), pkt.begin(), pkt.end());
  return buf;
}

}  // namespace

TEST(egress_leaves_a_pending_checksum_partial_only_toward_a_peer_that_takes_it) {
  const ForwardingState st = partial_state();
  auto to_partial = partial_tun_read(ip(10, 5, 2, 9), 500);
  const uint16_t pseudo = be16(to_partial.data() + kVirtioNetHdrLen + 36);
  TunRead r = classify_tun_read(to_partial.data(), to_partial.size(), true, st, 64);
  CHECK(r.decision.forward);
  CHECK(r.leave_partial);
  CHECK_EQ(be16(r.pkt + 36), pseudo);  // untouched
  uint8_t arena[256];
  SegmentSlice slices[4];
  size_t n = 0;
  CHECK(split_tun_packet(r.vh, r.pkt, r.decision.length, arena, sizeof(arena), slices, 4, &n, true) == SplitResult::kOk);
  CHECK_EQ(be16(r.pkt + 36), pseudo);  // still partial after the split

  auto to_plain = partial_tun_read(ip(10, 5, 3, 9), 500);
  r = classify_tun_read(to_plain.data(), to_plain.size(), true, st, 64);
  CHECK(r.decision.forward);
  CHECK(!r.leave_partial);
  CHECK_EQ(l4_check_reference(r.pkt, r.decision.length), 0);  // completed for the wire
}

TEST(egress_verifies_unvouched_checksums_toward_a_partial_peer) {
  const ForwardingState st = partial_state();
  TcpSpec s;
  s.dst = ip(10, 5, 2, 9);
  s.payload = pattern(300, 2);
  std::vector<uint8_t> good = build_tcp4(s);
  std::vector<uint8_t> bad = good;
  bad[bad.size() - 1] ^= 0x40;
  auto g = plain_tun_read(good, 0);
  TunRead r = classify_tun_read(g.data(), g.size(), true, st, 64);
  CHECK(r.decision.forward && !r.leave_partial);
  auto b = plain_tun_read(bad, 0);
  r = classify_tun_read(b.data(), b.size(), true, st, 64);
  CHECK(!r.decision.forward);
  CHECK_EQ(r.decision.drop, kEgressDropBadChecksum);
  // DATA_VALID: the kernel vouched for it; a plain peer verifies it itself.
  auto v = plain_tun_read(bad, kVirtioFlagDataValid);
  CHECK(classify_tun_read(v.data(), v.size(), true, st, 64).decision.forward);
  s.dst = ip(10, 5, 3, 9);
  std::vector<uint8_t> bad_plain = build_tcp4(s);
  bad_plain[bad_plain.size() - 1] ^= 0x40;
  auto bp = plain_tun_read(bad_plain, 0);
  CHECK(classify_tun_read(bp.data(), bp.size(), true, st, 64).decision.forward);
}

TEST(gso_segments_toward_a_partial_peer_carry_pseudo_header_sums) {
  TcpSpec s;
  s.payload = pattern(4000, 3);
  std::vector<uint8_t> pkt = build_tcp4(s);
  std::vector<uint8_t> arena(8 * 120);
  SegmentSlice slices[8];
  size_t n = 0;
  CHECK(split_tun_packet(tso(1000, 20), pkt.data(), pkt.size(), arena.data(), arena.size(), slices, 8, &n, true) ==
        SplitResult::kOk);
  CHECK_EQ(n, 4u);
  for (size_t i = 0; i < n; ++i) {
    std::vector<uint8_t> seg = assemble(slices[i], arena.data(), pkt);
    CHECK_EQ(be16(seg.data() + 36), pseudo_header_sum_ipv4(seg.data(), 6, seg.size() - 20));
    CHECK(complete_partial_checksum(seg.data(), seg.size(), 20, 16));
    CHECK_EQ(l4_check_reference(seg.data(), seg.size()), 0);
  }
}

TEST(ingress_from_a_partial_peer_writes_the_pseudo_header_sum) {
  const ForwardingState st = partial_state();
  TcpSpec s;
  s.src = ip(10, 5, 2, 9);
  s.dst = ip(10, 5, 1, 7);
  s.payload = pattern(200, 8);
  const std::vector<uint8_t> original = build_tcp4(s);
  std::vector<uint8_t> p = original;
  Decision d = decide_ingress(p.data(), p.size(), kPartialPeer, st);
  CHECK(d.forward && d.partial);
  CHECK_EQ(d.partial_spot.start, 20);
  CHECK_EQ(d.partial_spot.offset, 16);
  CHECK_EQ(be16(p.data() + 36), pseudo_header_sum_ipv4(p.data(), 6, p.size() - 20));
  CHECK(complete_partial_checksum(p.data(), p.size(), 20, 16));
  CHECK_EQ(be16(p.data() + 36), be16(original.data() + 36));  // what the kernel will compute
  // A peer without the capability, and a node without it: untouched.
  s.src = ip(10, 5, 3, 9);
  std::vector<uint8_t> q = build_tcp4(s);
  d = decide_ingress(q.data(), q.size(), kPlainPeer, st);
  CHECK(d.forward && !d.partial);
  CHECK_EQ(l4_check_reference(q.data(), q.size()), 0);
  ForwardingState off = partial_state();
  off.policy.partial_checksums = false;
  std::vector<uint8_t> r = original;
  CHECK(!decide_ingress(r.data(), r.size(), kPartialPeer, off).partial);
  // A fragment keeps its checksum: it covers bytes in other fragments.
  s.src = ip(10, 5, 2, 9);
  s.frag_field = 0x2000;
  std::vector<uint8_t> f = build_tcp4(s);
  CHECK(!decide_ingress(f.data(), f.size(), kPartialPeer, st).partial);
}

TEST(coalesce_merges_partial_segments_without_verifying_them) {
  std::vector<std::vector<uint8_t>> pkts;
  uint32_t seq = 1000;
  for (int i = 0; i < 4; ++i) {
    TcpSpec s;
    s.seq = seq;
    s.id = static_cast<uint16_t>(100 + i);
    s.payload = pattern(1000, static_cast<uint8_t>(i));
    seq += 1000;
    std::vector<uint8_t> p = build_tcp4(s);
    store_be16(p.data() + 36, pseudo_header_sum_ipv4(p.data(), 6, p.size() - 20));  // partial
    pkts.push_back(p);
  }
  std::vector<InnerPacket> in;
  for (auto& p : pkts) in.push_back(InnerPacket{p.data(), static_cast<uint16_t>(p.size()), true});
  uint16_t next[4];
  uint8_t arena[4 * kCoalesceArenaPerPacket];
  CoalescedItem items[4];
  CHECK_EQ(coalesce(in.data(), 4, next, arena, sizeof(arena), items, false), 1u);
  CHECK_EQ(items[0].count, 4);
  // The same packets marked complete do not verify, so none merge.
  for (auto& p : in) p.partial = false;
  CHECK_EQ(coalesce(in.data(), 4, next, arena, sizeof(arena), items, false), 4u);
}

// ------------------------------------------------------- coalescing UDP

namespace {

// `count` datagrams of `size` bytes of one flow (the last `last` bytes), IP ids following on.
void add_udp_flow(Batch& b, TcpSpec base, size_t count, size_t size, size_t last) {
  for (size_t i = 0; i < count; ++i) {
    TcpSpec s = base;
    s.payload = pattern(i + 1 < count ? size : last, static_cast<uint8_t>(i + 9));
    s.id = static_cast<uint16_t>(base.id + i);
    b.add(build_udp4(s));
  }
}

}  // namespace

TEST(coalesce_udp_run_into_one_uso_packet) {
  Batch b;
  TcpSpec base;
  base.dport = 5001;
  add_udp_flow(b, base, 10, 1000, 300);
  Result r = coalesce(b, 0, true);
  CHECK_EQ(r.items.size(), 1u);
  const CoalescedItem& it = r.items[0];
  CHECK_EQ(it.count, 10);
  CHECK_EQ(it.header_len, 10 + 20 + 8);
  CHECK_EQ(it.l34_len, 28);
  const VirtioNetHdr vh = decode_virtio_hdr(r.arena.data() + it.header_off);
  CHECK_EQ(vh.flags, kVirtioFlagNeedsCsum);
  CHECK_EQ(vh.gso_type, kVirtioGsoUdpL4);
  CHECK_EQ(vh.gso_size, 1000);
  CHECK_EQ(vh.hdr_len, 28);
  CHECK_EQ(vh.csum_start, 20);
  CHECK_EQ(vh.csum_offset, 6);
  std::vector<uint8_t> p = rebuild(r, it, b);
  CHECK_EQ(p.size(), 28u + 1000 * 9 + 300);
  CHECK_EQ(be16(p.data() + 2), p.size());
  CHECK_EQ(be16(p.data() + 24), p.size() - 20);  // the UDP length of the whole, as udp_gro_complete leaves it
  CHECK(header_checksum_ok(p.data()));
  CHECK_EQ(l4_check_reference(p.data(), p.size()), 0);
  // The payloads in order: what the pod's kernel cuts back into the same datagrams.
  size_t at = 28;
  for (size_t i = 0; i < 10; ++i) {
    const std::vector<uint8_t> want = pattern(i + 1 < 10 ? 1000 : 300, static_cast<uint8_t>(i + 9));
    CHECK(std::equal(want.begin(), want.end(), p.begin() + static_cast<std::ptrdiff_t>(at)));
    at += want.size();
  }
}

TEST(coalesce_udp_only_when_asked) {
  Batch b;
  add_udp_flow(b, TcpSpec{}, 8, 64, 64);
  CHECK_EQ(coalesce(b).items.size(), 8u);
  CHECK_EQ(coalesce(b, 0, true).items.size(), 1u);
}

TEST(coalesce_udp_what_never_merges) {
  // A shorter datagram ends its group; a longer one cannot join it.
  {
    Batch b;
    add_udp_flow(b, TcpSpec{}, 3, 500, 200);
    TcpSpec more;
    more.id = 0x103;
    more.payload = pattern(500, 1);
    b.add(build_udp4(more));
    more.id = 0x104;
    more.payload = pattern(600, 2);
    b.add(build_udp4(more));
    Result r = coalesce(b, 0, true);
    CHECK_EQ(r.items.size(), 3u);
    CHECK_EQ(r.items[0].count, 3);
    CHECK_EQ(r.items[1].count, 1);
    CHECK_EQ(r.items[2].count, 1);
  }
  // No checksum (0): merging would give the datagrams one.
  {
    Batch b;
    add_udp_flow(b, TcpSpec{}, 4, 100, 100);
    for (auto& p : b.bufs) put16(p, 26, 0);
    CHECK_EQ(coalesce(b, 0, true).items.size(), 4u);
  }
  // A bad checksum, a UDP length that is not the packet's: written as they are.
  {
    Batch b;
    add_udp_flow(b, TcpSpec{}, 4, 100, 100);
    b.bufs[1][40] ^= 1;
    put16(b.bufs[2], 24, 50);
    Result r = coalesce(b, 0, true);
    CHECK_EQ(r.items.size(), 4u);
  }
  // Another port is another flow; TCP with the same ports is another flow too.
  {
    Batch b;
    TcpSpec a, c;
    c.dport = 5002;
    for (int i = 0; i < 3; ++i) {
      a.id = static_cast<uint16_t>(0x100 + i);
      c.id = static_cast<uint16_t>(0x200 + i);
      a.payload = pattern(300, static_cast<uint8_t>(i));
      c.payload = pattern(300, static_cast<uint8_t>(i));
      b.add(build_udp4(a));
      b.add(build_udp4(c));
      TcpSpec t = a;
      t.seq = 1000 + 300 * static_cast<uint32_t>(i);
      b.add(build_tcp4(t));
    }
    Result r = coalesce(b, 0, true);
    CHECK_EQ(r.items.size(), 3u);
    for (const CoalescedItem& it : r.items) CHECK_EQ(it.count, 3);
    CHECK_EQ(decode_virtio_hdr(r.arena.data() + r.items[0].header_off).gso_type, kVirtioGsoUdpL4);
    CHECK_EQ(decode_virtio_hdr(r.arena.data() + r.items[2].header_off).gso_type, kVirtioGsoTcpv4);
  }
}

TEST(coalesce_udp_partial_checksums_merge) {
  Batch b;
  add_udp_flow(b, TcpSpec{}, 5, 400, 400);
  // As a peer that sends partial checksums leaves them: the pseudo-header sum.
  for (auto& p : b.bufs) put16(p, 26, pseudo_header_sum_ipv4(p.data(), 17, p.size() - 20));
  b.finish();
  for (auto& pk : b.pkts) pk.partial = true;
  Result r;
  r.items.resize(5);
  r.next.resize(5);
  r.arena.resize(kCoalesceArenaPerPacket * 5);
  CHECK_EQ(flannel::coalesce(b.pkts.data(), 5, r.next.data(), r.arena.data(), r.arena.size(), r.items.data(), true), 1u);
  std::vector<uint8_t> p = rebuild(r, r.items[0], b);
  CHECK_EQ(l4_check_reference(p.data(), p.size()), 0);
}

TEST(coalesce_udp_ipv6_run) {
  Batch b;
  Ipv6Spec ip;
  for (int i = 0; i < 6; ++i) b.add(build_udp6(ip, 40000, 5001, pattern(i < 5 ? 800 : 100, static_cast<uint8_t>(i))));
  Result r = coalesce(b, 0, true);
  CHECK_EQ(r.items.size(), 1u);
  const VirtioNetHdr vh = decode_virtio_hdr(r.arena.data() + r.items[0].header_off);
  CHECK_EQ(vh.gso_type, kVirtioGsoUdpL4);
  CHECK_EQ(vh.csum_start, 40);
  CHECK_EQ(vh.gso_size, 800);
  std::vector<uint8_t> p = rebuild(r, r.items[0], b);
  CHECK_EQ(be16(p.data() + 4), p.size() - 40);
  CHECK_EQ(be16(p.data() + 44), p.size() - 40);
  CHECK_EQ(l4_check_reference6(p.data(), p.size()), 0);
}
