// libFuzzer target: the ingress glue, from one received message (several
// datagrams when UDP GRO coalesced them) to the TUN writes
// (core/udp_message.h for_each_datagram, forwarding.h decide_ingress with the
// source check, gro.h coalesce, as native/linux/ingress_linux.cc runs
// them). Input: a state byte, a sender byte, a GRO segment size, then the
// message. The sender is on either underlay (an IPv4 address, or an IPv6
// endpoint index: known, route-only or unknown). Datagrams of 20 bytes or
// more get a well-formed IPv4 header, of 40 or more sometimes an IPv6 one,
// with addresses their own bytes pick (fuzz_state.h), and now and then a
// TCP or UDP header behind it, so the policy's branches and the partial
// checksums are reached rather than the parser's. Invariants: the datagrams
// tile the message, each is segment-size long but the last; every
// forwarded packet keeps the policy (partial checksums only when both ends
// take them); every forwarded packet is written exactly once.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "../core/checksum.h"
#include "../core/gro.h"
#include "../core/udp_message.h"
#include "fuzz_check.h"
#include "fuzz_state.h"

using namespace flannel;

namespace {

// Makes `p[0, len)` an option-less IPv4 header of a `len`-byte packet.
void shape_ipv4(uint8_t* p, size_t len) {
  p[0] = 0x45;
  store_be16(p + 2, static_cast<uint16_t>(len));
  store_be32(p + 12, fuzzstate::interesting_addr(p[12]));
  store_be32(p + 16, fuzzstate::interesting_addr(p[16]));
  p[8] = static_cast<uint8_t>(p[8] | 2);  // a TTL that survives the decrement
  if (p[1] & 1) p[9] = (p[1] & 2) ? 6 : 17;  // TCP or UDP: the partial checksum's spot
  p[6] &= 0x40;  // not a fragment (DF as it comes)
  store_be16(p + 10, 0);
  store_be16(p + 10, internet_checksum(p, 20));
}

// Makes `p[0, len)` start with an IPv6 header of a `len`-byte packet.
void shape_ipv6(uint8_t* p, size_t len) {
  p[0] = 0x60;
  store_be16(p + 4, static_cast<uint16_t>(len - 40));
  if (p[1] & 1) p[6] = (p[1] & 2) ? 6 : 17;
  p[7] = static_cast<uint8_t>(p[7] | 2);
  store_ipv6(p + 8, fuzzstate::interesting_addr6(p[8]));
  store_ipv6(p + 24, fuzzstate::interesting_addr6(p[24]));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 4) return 0;
  const ForwardingState& st = fuzzstate::state(data[0]);
  const Sender sender = fuzzstate::interesting_sender(data[1]);
  const size_t segment_size = load_be16(data + 2) % 1600;
  std::vector<uint8_t> message(data + 4, data + size);
  if (message.size() > 0xffff) return 0;

  std::vector<InnerPacket> held;
  size_t expect_off = 0, count = 0;
  const size_t total = message.size();
  for_each_datagram(message.data(), total, segment_size, [&](uint8_t* pkt, size_t len) {
    FUZZ_CHECK(pkt == message.data() + expect_off && expect_off + len <= total);
    if (segment_size > 0 && expect_off + len < total) FUZZ_CHECK(len == segment_size);
    expect_off += len;
    ++count;
    if (len >= 40 && len <= 0xffff && (pkt[0] & 3) == 2) {
      shape_ipv6(pkt, len);
    } else if (len >= 20 && len <= 0xffff && (pkt[0] & 1)) {
      shape_ipv4(pkt, len);
    }
    const Decision d = decide_ingress(pkt, len, sender, st);
    fuzzstate::check_ingress_policy(d, sender, st);
    if (d.partial) FUZZ_CHECK(static_cast<size_t>(d.partial_spot.start) + d.partial_spot.offset + 2 <= d.length);
    if (d.forward) held.push_back(InnerPacket{pkt, d.length, d.partial});
  });
  FUZZ_CHECK(expect_off == total && count >= 1);
  if (segment_size == 0 || segment_size >= total) FUZZ_CHECK(count == 1);
  if (held.empty()) return 0;

  const size_t n = held.size();
  std::vector<uint16_t> next(n);
  std::vector<uint8_t> arena(kCoalesceArenaPerPacket * n);
  std::vector<CoalescedItem> items(n);
  const size_t nitems = coalesce(held.data(), n, next.data(), arena.data(), arena.size(), items.data(), true);
  std::vector<int> written(n, 0);
  for (size_t k = 0; k < nitems; ++k) {
    uint16_t m = items[k].first;
    for (uint16_t c = 0; c < items[k].count; ++c) {
      FUZZ_CHECK(m < n);
      written[m]++;
      m = next[m];
    }
  }
  for (size_t i = 0; i < n; ++i) FUZZ_CHECK(written[i] == 1);
  return 0;
}
