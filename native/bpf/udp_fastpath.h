// The udp backend's kernel fast path (udp_fastpath.bpf.c): the maps it
// reads, shared by the eBPF program and its loader
// (native/linux/bpf_fastpath_linux.cc). Fixed-size, C-compatible layouts;
// addresses and ports in network byte order, as the packets carry them.
#ifndef FLANNEL_UDP_FASTPATH_H
#define FLANNEL_UDP_FASTPATH_H

#ifdef __cplusplus
#include <cstdint>
typedef uint8_t fp_u8;
typedef uint16_t fp_u16;
typedef uint32_t fp_u32;
typedef uint64_t fp_u64;
#else
typedef __u8 fp_u8;
typedef __u16 fp_u16;
typedef __u32 fp_u32;
typedef __u64 fp_u64;
#endif

// At most this many per-flow source ports (the udp backend's SourcePorts).
#define FP_MAX_SOURCE_PORTS 64
// At most this many routes (remote subnets).
#define FP_MAX_ROUTES 65536
// At most this many local addresses (an inner packet from one is refused).
#define FP_MAX_LOCAL_ADDRS 1024

// fp_config, the one entry of the array map "fp_config".
struct fp_config {
  fp_u32 enabled;    // 0: every packet goes to the user-space datapath
  fp_u32 local_addr; // the IPv4 underlay address: the outer source, and the ingress destination
  fp_u32 own_net;    // this node's subnet: every inner destination on ingress must lie here
  fp_u32 own_mask;
  fp_u32 tun_ifindex; // flannel0: decapsulated packets are received on it
  fp_u32 ext_ifindex; // the external interface: the route to a peer is looked up as leaving through it
  fp_u16 port;        // the udp backend's Port
  fp_u16 source_ports; // how many entries of source_port are used (0: every datagram from port)
  fp_u16 source_port[FP_MAX_SOURCE_PORTS];
};

// Key of the LPM map "fp_routes": a remote subnet (struct bpf_lpm_trie_key layout).
struct fp_route_key {
  fp_u32 prefixlen;
  fp_u32 addr;
};

// Value of "fp_routes": the peer the subnet is routed to.
struct fp_route {
  fp_u32 peer_addr;  // its PublicIP
  fp_u16 peer_port;  // its Port
  fp_u8 flags;       // FP_ROUTE_*
  fp_u8 pad;
};

// The peer decapsulates in the kernel too (its lease advertises "kernel-decap"):
// only such peers get the fast path's packets, which may carry GSO and
// unfinished checksums across a veth (docs/datapath.md, "The kernel fast path").
#define FP_ROUTE_FAST 1

// Counters, the per-CPU array map "fp_counters". Names in bpf_fastpath_linux.cc.
enum fp_counter {
  FP_EGRESS_PACKETS,      // inner packets sent by the fast path (a GSO packet counts its segments)
  FP_EGRESS_BYTES,
  FP_EGRESS_PASS_NOT_IPV4, // not IPv4 without options: the user-space path takes it
  FP_EGRESS_PASS_TTL,      // TTL 1 or 0: the user-space path answers with time exceeded
  FP_EGRESS_PASS_NO_ROUTE, // no route: the user-space path answers with net unreachable
  FP_EGRESS_PASS_PEER,     // the peer takes the user-space path's datagrams only
  FP_EGRESS_PASS_FIB,      // no IPv4 route to the peer's PublicIP
  FP_EGRESS_PASS_MTU,      // too large for the underlay once wrapped
  FP_EGRESS_PASS_ENCAP,    // the kernel refused to add the headers (another GSO type, already wrapped)
  FP_INGRESS_PACKETS,     // inner packets delivered by the fast path (a GSO packet counts its segments)
  FP_INGRESS_BYTES,
  FP_INGRESS_PASS_NOT_IPV4, // the inner packet is not IPv4 without options
  FP_INGRESS_PASS_POLICY,   // not from a subnet of the sender, not to this node's subnet, or from a local address: the user-space path decides (and counts the drop)
  FP_INGRESS_PASS_TTL,
  FP_INGRESS_PASS_MALFORMED,
  FP_INGRESS_PASS_DECAP,    // the kernel refused to remove the headers
  FP_INGRESS_PASS_TRAIN,    // a train of datagrams the sender's UDP GSO kept whole (across a veth): the user-space path reads them one by one
  FP_COUNTER_COUNT,
};

#endif
