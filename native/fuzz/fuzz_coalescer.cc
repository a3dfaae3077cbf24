// libFuzzer target: coalescing received TCP segments and UDP datagrams for
// one TUN write (core/gro.h coalesce). The input drives a structure-aware
// generator: a first byte says whether flows 2 and 3 are IPv6, whether flows
// 1 and 3 are UDP, and whether packets may arrive with partial checksums (from a peer that sends them, as
// decide_ingress leaves them); then every 6 bytes make one packet of one of
// four flows (mostly valid TCP data segments following on, sometimes with
// other flags, jumps, options, TTL/TOS changes, a corrupted byte, or not
// TCP at all), so the fuzzer explores merge decisions rather than header
// parsing. Invariants:
//  - every packet is written exactly once, and each flow's packets are
//    written in arrival order (no reordering);
//  - a merged item holds one flow's in-sequence segments, each with a valid
//    checksum or a partial one, all gso_size long but a shorter last one, at
//    most 64 and 65535 bytes; its virtio header says TCPV4 or TCPV6 (the
//    flow's family) + NEEDS_CSUM; and the merged packet, rebuilt here and
//    its checksum completed, verifies.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <vector>

#include "../core/checksum.h"
#include "../core/gro.h"
#include "../core/gso.h"
#include "../core/ipv4.h"
#include "../core/ipv6.h"
#include "../core/partial_checksum.h"
#include "../core/virtio_net.h"
#include "../test/packet_builder.h"
#include "fuzz_check.h"

using namespace flannel;

namespace {

struct Flow {
  testpkt::TcpSpec spec;
  bool v6 = false;
  bool udp = false;
  uint32_t next_seq;
  uint16_t next_id;
};

// Family, addresses and ports as the coalescer sees them (a corrupted byte
// may make another flow of a packet, and then it is one).
std::array<uint8_t, 37> flow_key(const uint8_t* p) {
  std::array<uint8_t, 37> k{};
  k[0] = static_cast<uint8_t>((p[0] >> 4) | (((p[0] >> 4) == 6 ? p[6] : p[9]) << 4));  // family and protocol
  if ((p[0] >> 4) == 6) {
    std::memcpy(k.data() + 1, p + 8, 32);
    std::memcpy(k.data() + 33, p + 40, 4);
    return k;
  }
  const size_t iphl = static_cast<size_t>(p[0] & 0x0f) * 4;
  std::memcpy(k.data() + 1, p + 12, 8);
  std::memcpy(k.data() + 9, p + iphl, 4);
  return k;
}

size_t l4_offset(const uint8_t* p) { return (p[0] >> 4) == 6 ? kIpv6HeaderLen : static_cast<size_t>(p[0] & 0x0f) * 4; }

// The TCP or UDP checksum field holds the pseudo-header sum, as a partial checksum leaves it.
void make_partial(std::vector<uint8_t>& p) {
  const size_t l4 = l4_offset(p.data());
  const uint8_t proto = (p[0] >> 4) == 6 ? p[6] : p[9];
  const uint16_t sum = (p[0] >> 4) == 6 ? pseudo_header_sum_ipv6(p.data(), proto, p.size() - l4)
                                        : pseudo_header_sum_ipv4(p.data(), proto, p.size() - l4);
  store_be16(p.data() + l4 + (proto == 6 ? 16 : 6), sum);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  constexpr size_t kRecord = 6;
  if (size < 1) return 0;
  const bool ipv6_flows = (data[0] & 1) != 0;
  const bool partials = (data[0] & 2) != 0;
  const bool udp_flows = (data[0] & 4) != 0;
  ++data;
  --size;
  const size_t records = std::min<size_t>(size / kRecord, 200);
  if (records == 0) return 0;
  Flow flows[4];
  for (int f = 0; f < 4; ++f) {
    flows[f].spec.sport = static_cast<uint16_t>(40000 + f);
    flows[f].spec.src = testpkt::ip(10, 5, 1, static_cast<int>(2 + (f & 1)));
    flows[f].v6 = ipv6_flows && f >= 2;
    flows[f].udp = udp_flows && (f & 1);
    flows[f].next_seq = 1000u * static_cast<uint32_t>(f + 1);
    flows[f].next_id = static_cast<uint16_t>(100 * f);
  }
  std::vector<std::vector<uint8_t>> storage;
  std::vector<bool> valid_csum;
  std::vector<bool> partial;
  for (size_t i = 0; i < records; ++i) {
    const uint8_t* r = data + i * kRecord;
    const int f = r[0] & 3;
    Flow& fl = flows[f];
    testpkt::TcpSpec s = fl.spec;
    static const uint8_t kFlags[8] = {0x10, 0x10, 0x10, 0x18, 0x11, 0x12, 0x90, 0x30};
    s.flags = kFlags[(r[0] >> 2) & 7];
    const size_t len = (r[1] & 3) == 0 ? 1 + r[1] * 5 : 1000;  // usually the "MSS"
    s.payload = testpkt::pattern(len, r[1]);
    s.seq = r[2] < 220 ? fl.next_seq : fl.next_seq + r[2];
    const int id_mode = (r[0] >> 5) & 3;
    s.id = id_mode == 0 ? fl.next_id : id_mode == 1 ? static_cast<uint16_t>(fl.next_id - 1) : r[5];
    if (r[3] >= 200) s.tcp_options = {1, 1, 8, 10, 0, 0, 0, static_cast<uint8_t>(r[3] & 7), 0, 0, 0, 1};
    if (r[4] >= 250) s.ttl = static_cast<uint8_t>(r[4]);
    if (r[4] >= 240 && r[4] < 245) s.tos = 4;
    if (r[4] >= 245 && r[4] < 248) s.ip_options_len = 4;
    if (r[4] == 248) s.frag_field = 0x2000;  // a fragment
    std::vector<uint8_t> p;
    if (fl.v6) {
      testpkt::Ipv6Spec s6;
      s6.src = testpkt::ip6(0xfd00, 5, 1, 0, 0, 0, 0, static_cast<uint16_t>(2 + (f & 1)));
      s6.dst = testpkt::ip6(0xfd00, 5, 2, 0, 0, 0, 0, 2);
      s6.hop_limit = s.ttl;
      if (fl.udp) {
        p = testpkt::build_udp6(s6, s.sport, s.dport, s.payload);
      } else {
        p = testpkt::build_tcp6(s6, s.seq, s.flags, s.payload);
        store_be16(p.data() + 40, s.sport);
        store_be16(p.data() + 56, 0);
        store_be16(p.data() + 56, static_cast<uint16_t>(testpkt::l4_check_reference6(p.data(), p.size())));
      }
      if (r[4] == 249) p[6] = fl.udp ? 6 : 17;
    } else {
      p = fl.udp ? testpkt::build_udp4(s) : testpkt::build_tcp4(s);
      if (r[4] == 249) p[9] = fl.udp ? 6 : 17;  // the other protocol (checksums then mean nothing)
    }
    const uint8_t proto = fl.v6 ? p[6] : p[9];
    const bool is_partial = partials && (r[5] & 1) && proto == (fl.udp ? 17 : 6);
    if (is_partial) make_partial(p);
    if (r[0] & 0x80) p[p.size() - 1 - (r[5] % p.size())] ^= 0x5a;  // corrupt one byte
    fl.next_seq = s.seq + static_cast<uint32_t>(len);
    fl.next_id = static_cast<uint16_t>(s.id + 1);
    // The datapath hands the coalescer only packets its parsers accepted (forwarding.h).
    if (fl.v6) {
      Ipv6Header h6;
      if ((p[0] >> 4) != 6 || parse_ipv6(p.data(), p.size(), &h6) != Ipv6Error::kNone) continue;
      p.resize(h6.total_len());
      valid_csum.push_back((p[6] == 6 || p[6] == 17) && testpkt::l4_check_reference6(p.data(), p.size()) == 0);
    } else {
      Ipv4Header h;
      if (parse_ipv4(p.data(), p.size(), &h) != Ipv4Error::kNone) continue;
      p.resize(h.total_len);
      valid_csum.push_back((p[9] == 6 || p[9] == 17) && testpkt::header_checksum_ok(p.data()) &&
                           testpkt::l4_check_reference(p.data(), p.size()) == 0);
    }
    partial.push_back(is_partial);
    storage.push_back(std::move(p));
  }
  const size_t n = storage.size();
  if (n == 0) return 0;
  std::vector<InnerPacket> packets(n);
  for (size_t i = 0; i < n; ++i) {
    packets[i] = InnerPacket{storage[i].data(), static_cast<uint16_t>(storage[i].size()), partial[i]};
  }
  std::vector<uint16_t> next(n);
  std::vector<uint8_t> arena(kCoalesceArenaPerPacket * n);
  std::vector<CoalescedItem> items(n);
  const size_t nitems = coalesce(packets.data(), n, next.data(), arena.data(), arena.size(), items.data(), true);
  FUZZ_CHECK(nitems >= 1 && nitems <= n);

  std::vector<int> written(n, 0);
  std::map<std::array<uint8_t, 37>, int> last_index_of_flow;
  size_t prev_first = 0;
  for (size_t k = 0; k < nitems; ++k) {
    const CoalescedItem& it = items[k];
    FUZZ_CHECK(it.count >= 1 && it.count <= kMaxCoalescedSegments);
    if (k > 0) FUZZ_CHECK(it.first > prev_first);
    prev_first = it.first;
    std::vector<uint16_t> members;
    for (uint16_t m = it.first, c = 0; c < it.count; ++c) {
      FUZZ_CHECK(m < n);
      members.push_back(m);
      m = next[m];
    }
    for (uint16_t m : members) {
      written[m]++;
      const auto key = flow_key(storage[m].data());
      const auto seen = last_index_of_flow.find(key);
      FUZZ_CHECK(seen == last_index_of_flow.end() || seen->second < static_cast<int>(m));  // never reordered in a flow
      last_index_of_flow[key] = m;
    }
    if (it.count < 2 || it.header_len == 0) continue;
    // A merged item.
    FUZZ_CHECK(static_cast<size_t>(it.header_off) + it.header_len <= arena.size());
    const VirtioNetHdr vh = decode_virtio_hdr(arena.data() + it.header_off);
    const bool v6 = (storage[members[0]][0] >> 4) == 6;
    const bool udp = storage[members[0]][v6 ? 6 : 9] == 17;
    FUZZ_CHECK(vh.gso_type == (udp ? kVirtioGsoUdpL4 : v6 ? kVirtioGsoTcpv6 : kVirtioGsoTcpv4) &&
               (vh.flags & kVirtioFlagNeedsCsum));
    FUZZ_CHECK(it.header_len == kVirtioNetHdrLen + it.l34_len && vh.hdr_len == it.l34_len);
    std::vector<uint8_t> merged(arena.begin() + it.header_off + kVirtioNetHdrLen, arena.begin() + it.header_off + it.header_len);
    const size_t seq_at = l4_offset(storage[members[0]].data()) + 4;
    uint32_t seq = load_be32(storage[members[0]].data() + seq_at);
    for (size_t j = 0; j < members.size(); ++j) {
      const std::vector<uint8_t>& p = storage[members[j]];
      // A partial checksum is not verified: the outer UDP checksum protected those bytes.
      FUZZ_CHECK(valid_csum[members[j]] || partial[members[j]]);
      FUZZ_CHECK(flow_key(p.data()) == flow_key(storage[members[0]].data()));
      if (!udp) FUZZ_CHECK(load_be32(p.data() + seq_at) == seq);
      const size_t payload = p.size() - it.l34_len;
      FUZZ_CHECK(payload <= vh.gso_size && (j + 1 == members.size() || payload == vh.gso_size));
      seq += static_cast<uint32_t>(payload);
      merged.insert(merged.end(), p.begin() + it.l34_len, p.end());
    }
    FUZZ_CHECK(merged.size() <= 0xffff);
    FUZZ_CHECK(complete_partial_checksum(merged.data(), merged.size(), vh.csum_start, vh.csum_offset));
    // UDP: the length of the whole, as udp_gro_complete leaves it (the checksum covers it either way).
    if (udp) FUZZ_CHECK(load_be16(merged.data() + vh.csum_start + 4) + vh.csum_start == merged.size());
    if (v6) {
      FUZZ_CHECK(load_be16(merged.data() + 4) + kIpv6HeaderLen == merged.size());
      FUZZ_CHECK(testpkt::l4_check_reference6(merged.data(), merged.size()) == 0);
    } else {
      FUZZ_CHECK(load_be16(merged.data() + 2) == merged.size());
      FUZZ_CHECK(testpkt::header_checksum_ok(merged.data()));
      FUZZ_CHECK(testpkt::l4_check_reference(merged.data(), merged.size()) == 0);
    }
  }
  for (size_t i = 0; i < n; ++i) FUZZ_CHECK(written[i] == 1);
  return 0;
}
