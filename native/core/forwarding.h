// The per-packet forwarding decisions of the udp backend (pure, no I/O).
//
// The threads in native/linux own the sockets; these functions only look at a
// packet and the published forwarding state and say what to do with it
// (after boringtun's sans-I/O TunnResult). Wire format: compat spec docs/compatibility.md §5.3-5.4:
// the UDP payload is the bare inner IPv4 packet, and the TTL is decremented
// on both paths with an incremental checksum fix.
#pragma once

#include <cstddef>
#include <cstdint>

#include "counters.h"
#include "icmp.h"
#include "icmpv6.h"
#include "ipv4.h"
#include "ipv6.h"
#include "lpm6_table.h"
#include "lpm_table.h"
#include "partial_checksum.h"

namespace flannel {

// An IPv4 network, host order.
struct Ipv4Prefix {
  uint32_t network = 0;
  uint8_t len = 0;
  bool contains(uint32_t addr) const { return (addr & prefix_mask(len)) == (network & prefix_mask(len)); }
};

// Which inner packets a datagram from a peer may carry (docs/datapath.md,
// "Source check"). Upstream's datapath writes whatever a datagram carries to
// its TUN: anyone who can send (or spoof) a datagram from a peer's address
// can inject packets from any pod's address to any destination, which the
// kernel then forwards, masquerades, and lets past pod-IP NetworkPolicy.
struct IngressPolicy {
  // False until the control plane sets the networks (the inner checks are then off).
  bool configured = false;
  // "SourceCheck" true: the outer source must be a peer's PublicIP, and the
  // inner source in a subnet routed to that peer (or that PublicIP itself).
  // False (NAT between nodes): the inner source must lie in the Network but
  // not in our subnet; the outer source is not checked.
  bool source_check = true;
  // "AllowExternalSources": an inner source outside the Network is accepted
  // from a peer (an unmasqueraded client routed in through it, with -ip-masq off).
  bool allow_external_sources = false;
  Ipv4Prefix own_subnet;  // every inner destination must lie here
  Ipv4Prefix network;     // the flannel Network
  // This node advertises partial checksums in its lease. Checksums are left
  // partial only when both ends advertise them: a TCP/UDP packet from a
  // lease with kPeerPartialChecksums gets the pseudo-header sum in its
  // checksum field and is written to the TUN marked NEEDS_CSUM, never
  // verified (partial_checksum.h); one toward such a lease leaves with its
  // checksum pending (tun_read.h). A node that does not advertise them
  // neither sends nor takes them, whatever its peers advertise.
  bool partial_checksums = false;
  // Inner IPv6 is carried (the network has IPv6): the same rules with the
  // v6 subnet and network, and only with peers flagged kPeerIpv6. The TUN's
  // IPv6 address, the source of ICMPv6 errors, is own_subnet6's network.
  bool ipv6 = false;
  Ipv6Prefix own_subnet6;
  Ipv6Prefix network6;
};

// This node's own addresses, on every interface (the control plane keeps
// them current from address events): no inner packet may come from one.
class LocalAddrs {
 public:
  LocalAddrs() = default;
  LocalAddrs(const std::vector<uint32_t>& v4, std::vector<Ipv6Addr> v6);
  bool contains(uint32_t addr) const { return v4_.contains(addr); }
  bool contains(const Ipv6Addr& addr) const;

 private:
  AddrSet v4_;
  std::vector<Ipv6Addr> v6_;  // sorted
};

// What the control plane publishes to the forwarding threads, all parts in
// one publication. Immutable once published.
//
// Capabilities are per lease: a route's NextHop::flags are those of the
// lease whose subnet it is. A datagram's inner packet is judged by the flags
// of the lease its inner source belongs to (the lease the source check
// finds), so a record can only change how its own subnet's packets are
// treated. `peers` holds, for each PublicIP, the flags of the newest lease
// with that address: they apply only to the peer host's own traffic (inner
// source = its PublicIP, in no lease's subnet).
struct ForwardingState {
  LpmTable routes;
  Lpm6Table routes6;  // inner IPv6 subnets, each to a peer's endpoint
  AddrSet peers;      // PublicIPs of known peers (the source check), see above
  // The IPv6 underlay's endpoints: its first known_size() entries are known
  // peers (their PublicIPv6, flags as in `peers`); routes to them carry
  // kPeerUnderlay6 and the index here.
  Endpoint6Table endpoints6;
  IngressPolicy policy;
  LocalAddrs local;
};

enum class IcmpAction : uint8_t {
  kNone,        // no ICMP error is due
  kSend,        // an ICMP error of `icmp_kind` is due and allowed (rate limit still applies)
  kSuppressed,  // one would be due, but RFC 1812 / upstream's rules forbid it
};

struct Decision {
  bool forward = false;
  Counter drop = kCounterCount;  // the drop reason when !forward
  NextHop next_hop{0, 0};        // egress only, when forward
  uint16_t length = 0;           // bytes to send or write, when forward (the IP total length)
  IcmpAction icmp = IcmpAction::kNone;
  IcmpError icmp_kind = IcmpError::kNetUnreachable;
  uint8_t version = 4;           // the inner packet's IP version (6 only while IngressPolicy::ipv6)
  Ipv4Header header{};           // version 4: valid unless the drop reason is a parse error
  Ipv6Header header6{};          // version 6: likewise
  Icmpv6Error icmp6_kind = Icmpv6Error::kNoRoute;  // version 6: the error due when icmp != kNone
  // Ingress, when forwarded: the checksum was left partial at this spot
  // (IngressPolicy::partial_checksums); the TUN write must say NEEDS_CSUM.
  bool partial = false;
  ChecksumSpot partial_spot;
};

// A packet read from the TUN (`len` bytes at `pkt`, modified in place when
// forwarded): validate, look up the destination, decrement the TTL. Inner
// IPv6 (when IngressPolicy::ipv6): link-scoped packets stay on the link,
// the route's peer must carry IPv6, the hop limit is decremented.
Decision decide_egress(uint8_t* pkt, size_t len, const ForwardingState& state);

// Who sent a datagram: its IPv4 address (host order), or, from the IPv6
// underlay, its index in ForwardingState::endpoints6 (Endpoint6Table::kNone
// when the address is no known peer's).
struct Sender {
  uint32_t key;
  bool underlay6 = false;
};

// A datagram received on a UDP socket from `sender`:
// source check (the outer source, then the inner source and destination,
// IngressPolicy), validate, decrement the TTL, and leave the TCP/UDP
// checksum partial when both ends take that. Inner sources that no overlay
// packet may carry (is_martian_source_ipv4/6, this node's addresses) are
// refused whatever the policy allows. Inner IPv6 is taken only when the
// lease its source belongs to is flagged kPeerIpv6 (with or without the
// source check). A refused datagram is never answered with ICMP. A datagram
// that did not fit the receive buffer must be dropped by the caller
// (kIngressDropOversize) before this is called: its bytes are incomplete.
Decision decide_ingress(uint8_t* pkt, size_t len, Sender sender, const ForwardingState& state);

// The same for a datagram from the IPv4 underlay.
inline Decision decide_ingress(uint8_t* pkt, size_t len, uint32_t source_addr, const ForwardingState& state) {
  return decide_ingress(pkt, len, Sender{source_addr, false}, state);
}

}  // namespace flannel
