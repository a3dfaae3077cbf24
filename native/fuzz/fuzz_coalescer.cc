// libFuzzer target: coalescing received TCP segments for one TUN write
// (core/gro.h coalesce_tcp). The input drives a structure-aware generator:
// every 6 bytes make one IPv4 packet of one of four flows (mostly valid TCP
// data segments following on, sometimes with other flags, jumps, options,
// TTL/TOS changes, a corrupted byte, or not TCP at all), so the fuzzer
// explores merge decisions rather than header parsing. Invariants:
//  - every packet is written exactly once, and each flow's packets are
//    written in arrival order (no reordering);
//  - a merged item holds one flow's in-sequence segments, each with a valid
//    checksum, all gso_size long but a shorter last one, at most 64 and
//    65535 bytes; its virtio header says TCPV4 + NEEDS_CSUM; and the merged
//    packet, rebuilt here and its checksum completed, verifies.
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
#include "../core/virtio_net.h"
#include "../test/packet_builder.h"
#include "fuzz_check.h"

using namespace flannel;

namespace {

struct Flow {
  testpkt::TcpSpec spec;
  uint32_t next_seq;
  uint16_t next_id;
};

// Addresses and ports as the coalescer sees them (a corrupted byte may make
// another flow of a packet, and then it is one).
std::array<uint8_t, 12> flow_key(const uint8_t* p) {
  std::array<uint8_t, 12> k;
  const size_t iphl = static_cast<size_t>(p[0] & 0x0f) * 4;
  std::memcpy(k.data(), p + 12, 8);
  std::memcpy(k.data() + 8, p + iphl, 4);
  return k;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  constexpr size_t kRecord = 6;
  const size_t records = std::min<size_t>(size / kRecord, 200);
  if (records == 0) return 0;
  Flow flows[4];
  for (int f = 0; f < 4; ++f) {
    flows[f].spec.sport = static_cast<uint16_t>(40000 + f);
    flows[f].spec.src = testpkt::ip(10, 5, 1, static_cast<int>(2 + (f & 1)));
    flows[f].next_seq = 1000u * static_cast<uint32_t>(f + 1);
    flows[f].next_id = static_cast<uint16_t>(100 * f);
  }
  std::vector<std::vector<uint8_t>> storage;
  std::vector<bool> valid_csum;
  for (size_t i = 0; i < records; ++i) {
    const uint8_t* r = data + i * kRecord;
    Flow& fl = flows[r[0] & 3];
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
    std::vector<uint8_t> p = testpkt::build_tcp4(s);
    if (r[4] == 249) p[9] = 17;  // not TCP any more (checksums then mean nothing)
    if (r[0] & 0x80) p[p.size() - 1 - (r[5] % p.size())] ^= 0x5a;  // corrupt one byte
    fl.next_seq = s.seq + static_cast<uint32_t>(len);
    fl.next_id = static_cast<uint16_t>(s.id + 1);
    // The datapath hands the coalescer only packets parse_ipv4 accepted (forwarding.h).
    Ipv4Header h;
    if (parse_ipv4(p.data(), p.size(), &h) != Ipv4Error::kNone) continue;
    p.resize(h.total_len);
    valid_csum.push_back(p[9] == 6 && testpkt::header_checksum_ok(p.data()) &&
                         testpkt::l4_check_reference(p.data(), p.size()) == 0);
    storage.push_back(std::move(p));
  }
  const size_t n = storage.size();
  if (n == 0) return 0;
  std::vector<InnerPacket> packets(n);
  for (size_t i = 0; i < n; ++i) packets[i] = InnerPacket{storage[i].data(), static_cast<uint16_t>(storage[i].size())};
  std::vector<uint16_t> next(n);
  std::vector<uint8_t> arena(kCoalesceArenaPerPacket * n);
  std::vector<CoalescedItem> items(n);
  const size_t nitems = coalesce_tcp(packets.data(), n, next.data(), arena.data(), arena.size(), items.data());
  FUZZ_CHECK(nitems >= 1 && nitems <= n);

  std::vector<int> written(n, 0);
  std::map<std::array<uint8_t, 12>, int> last_index_of_flow;
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
    FUZZ_CHECK(vh.gso_type == kVirtioGsoTcpv4 && (vh.flags & kVirtioFlagNeedsCsum));
    FUZZ_CHECK(it.header_len == kVirtioNetHdrLen + it.l34_len && vh.hdr_len == it.l34_len);
    std::vector<uint8_t> merged(arena.begin() + it.header_off + kVirtioNetHdrLen, arena.begin() + it.header_off + it.header_len);
    uint32_t seq = load_be32(storage[members[0]].data() + 24);
    for (size_t j = 0; j < members.size(); ++j) {
      const std::vector<uint8_t>& p = storage[members[j]];
      FUZZ_CHECK(valid_csum[members[j]]);
      FUZZ_CHECK(flow_key(p.data()) == flow_key(storage[members[0]].data()));
      FUZZ_CHECK(load_be32(p.data() + 24) == seq);
      const size_t payload = p.size() - it.l34_len;
      FUZZ_CHECK(payload <= vh.gso_size && (j + 1 == members.size() || payload == vh.gso_size));
      seq += static_cast<uint32_t>(payload);
      merged.insert(merged.end(), p.begin() + it.l34_len, p.end());
    }
    FUZZ_CHECK(merged.size() <= 0xffff && load_be16(merged.data() + 2) == merged.size());
    FUZZ_CHECK(testpkt::header_checksum_ok(merged.data()));
    FUZZ_CHECK(complete_partial_checksum(merged.data(), merged.size(), vh.csum_start, vh.csum_offset));
    FUZZ_CHECK(testpkt::l4_check_reference(merged.data(), merged.size()) == 0);
  }
  for (size_t i = 0; i < n; ++i) FUZZ_CHECK(written[i] == 1);
  return 0;
}
