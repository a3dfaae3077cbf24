// libFuzzer target: the IPv4 and IPv6 header walks and everything the datapath does
// with bytes from the TUN or the network before forwarding them: parse,
// route, TTL or hop limit decrement, ICMP and ICMPv6 error generation
// (core/ipv4.h, ipv6.h, forwarding.h, icmp.h, icmpv6.h). Invariants beyond "no crash, no UB": a parsed header lies within
// the buffer; a forwarded packet keeps a valid header checksum if it had one;
// a generated ICMP error is a well-formed IPv4 packet (ICMPv6: IPv6 with a
// valid checksum, at most the minimum MTU); a forwarded ingress
// packet keeps the ingress policy of every variant (fuzz_state.h) and a
// refused one is never answered.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "../core/forwarding.h"
#include "../test/packet_builder.h"
#include "fuzz_check.h"
#include "fuzz_state.h"

using namespace flannel;

namespace {

void check_decision6(const Decision& d, const uint8_t* pkt, size_t len) {
  if (d.forward) FUZZ_CHECK(d.length >= kIpv6HeaderLen && d.length <= len);
  if (d.icmp == IcmpAction::kSend) {
    uint8_t out[kIcmpv6ErrorMaxLen];
    const Ipv6Addr from = load_ipv6(testpkt::ip6(0xfd00, 5, 1, 0, 0, 0, 0, 0).data());
    const size_t n = build_icmpv6_error(d.icmp6_kind, pkt, d.header6, from, out, sizeof(out));
    FUZZ_CHECK(n >= 48 && n <= kIpv6MinMtu);
    Ipv6Header h;
    FUZZ_CHECK(parse_ipv6(out, n, &h) == Ipv6Error::kNone);
    FUZZ_CHECK(h.total_len() == n && h.next_header == kIpProtoIcmpv6);
    FUZZ_CHECK(testpkt::l4_check_reference6(out, n) == 0);
  }
}

void check_decision(const Decision& d, const uint8_t* pkt, size_t len, bool header_was_valid) {
  if (d.version == 6) {
    check_decision6(d, pkt, len);
    return;
  }
  if (d.forward) {
    FUZZ_CHECK(d.length >= kIpv4MinHeaderLen && d.length <= len);
    FUZZ_CHECK(d.header.header_len <= d.length);
    if (header_was_valid) FUZZ_CHECK(testpkt::header_checksum_ok(pkt));
  }
  if (d.icmp == IcmpAction::kSend) {
    uint8_t out[kIcmpErrorMaxLen];
    const size_t n = build_icmp_error(d.icmp_kind, pkt, d.header, testpkt::ip(10, 5, 1, 0), out, sizeof(out));
    FUZZ_CHECK(n >= 28 && n <= sizeof(out));
    Ipv4Header h;
    FUZZ_CHECK(parse_ipv4(out, n, &h) == Ipv4Error::kNone);
    FUZZ_CHECK(h.total_len == n && h.protocol == kIpProtoIcmp);
    FUZZ_CHECK(testpkt::header_checksum_ok(out));
    FUZZ_CHECK(testpkt::reference_checksum(out + 20, n - 20) == 0);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // An exact-size heap copy, so ASan sees any read past the end.
  std::vector<uint8_t> buf(data, data + size);
  Ipv4Header h;
  if (parse_ipv4(buf.data(), buf.size(), &h) == Ipv4Error::kNone) {
    FUZZ_CHECK(h.header_len >= kIpv4MinHeaderLen && h.header_len <= kIpv4MaxHeaderLen);
    FUZZ_CHECK(h.header_len <= h.total_len && h.total_len <= size);
  }
  Ipv6Header h6;
  if (parse_ipv6(buf.data(), buf.size(), &h6) == Ipv6Error::kNone) {
    FUZZ_CHECK(h6.total_len() <= size);
    const Ipv6UpperLayer u = find_ipv6_upper_layer(buf.data(), h6);
    if (u.found) FUZZ_CHECK(u.offset >= kIpv6HeaderLen);
  }
  const bool valid_header = size >= 20 && (buf[0] & 0x0f) * 4u <= size && testpkt::header_checksum_ok(buf.data());

  std::vector<uint8_t> egress(buf);
  check_decision(decide_egress(egress.data(), egress.size(), fuzzstate::state(1)), egress.data(), egress.size(),
                 valid_header);
  // Every ingress policy, from a sender (either underlay) picked by the packet's last byte.
  const Sender sender = fuzzstate::interesting_sender(size > 0 ? data[size - 1] : 0);
  for (int k = 0; k < fuzzstate::kVariants; ++k) {
    std::vector<uint8_t> ingress(buf);
    const ForwardingState& st = fuzzstate::state(static_cast<uint8_t>(k));
    const Decision d = decide_ingress(ingress.data(), ingress.size(), sender, st);
    check_decision(d, ingress.data(), ingress.size(), valid_header);
    fuzzstate::check_ingress_policy(d, sender, st);
    if (!d.forward && (d.drop == kIngressDropSpoofedSource || d.drop == kIngressDropForeignDestination ||
                       d.drop == kIngressDropUnknownSource || d.drop == kIngressDropIpv6SenderIncapable ||
                       d.drop == kIngressDropMartianSource)) {
      FUZZ_CHECK(d.icmp == IcmpAction::kNone);  // a refusal is never answered
    }
  }
  return 0;
}
