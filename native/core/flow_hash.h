// The hash of an inner packet's flow, for choosing the outer source port
// (pure). Kernel vxlan does the same (RFC 7348 §5: the source port from a
// hash of the inner headers), so the receiver's SO_REUSEPORT group and a
// NIC's RSS, which see only the outer addresses and ports, spread flows over
// their queues, and a flow always leaves from the same port (no reordering).
#pragma once

#include <cstddef>
#include <cstdint>

#include "checksum.h"
#include "flow_mix.h"
#include "ipv4.h"
#include "ipv6.h"

namespace flannel {

// The mixing step (flow_mix.h, shared with the kernel fast path).
inline uint32_t mix_flow(uint64_t addrs, uint64_t ports_and_protocol) { return flannel_flow_mix(addrs, ports_and_protocol); }

// TCP and UDP (and UDP-Lite, SCTP, DCCP: ports in the same place) packets
// that are not fragments hash on addresses, protocol and ports; everything
// else, fragments included, on addresses and protocol only, so every
// fragment of a datagram hashes alike. `pkt` holds `len` bytes of which the
// parsed header `h` is valid.
inline uint32_t flow_hash(const uint8_t* pkt, size_t len, const Ipv4Header& h) {
  uint64_t ports = 0;
  const bool fragment = (h.frag_field & 0x3fff) != 0;  // MF or an offset
  const bool has_ports = h.protocol == 6 || h.protocol == 17 || h.protocol == 33 || h.protocol == 132 ||
                         h.protocol == 136;
  if (has_ports && !fragment && static_cast<size_t>(h.header_len) + 4 <= len) ports = load_be32(pkt + h.header_len);
  return mix_flow(static_cast<uint64_t>(h.src) << 32 | h.dst, ports << 8 | h.protocol);
}

// The same for inner IPv6: addresses folded, ports when TCP or UDP follows
// the fixed header directly (no extension headers).
inline uint32_t flow_hash(const uint8_t* pkt, size_t len, const Ipv6Header& h) {
  uint64_t ports = 0;
  if ((h.next_header == 6 || h.next_header == 17) && kIpv6HeaderLen + 4 <= len) ports = load_be32(pkt + kIpv6HeaderLen);
  const uint64_t addrs = (h.src.hi ^ h.src.lo) * 0x9e3779b97f4a7c15ull ^ (h.dst.hi ^ h.dst.lo);
  return mix_flow(addrs, ports << 8 | h.next_header);
}

}  // namespace flannel
