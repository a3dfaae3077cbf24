// The udp backend's kernel fast path: two tc programs that do what the
// user-space datapath does (docs/datapath.md, "The kernel fast path") for the
// common case, and hand everything else to it unchanged (TC_ACT_OK):
//  - flannel_egress, tc egress on flannel0: a packet to a peer's subnet is
//    wrapped in the datagram the user-space path sends (outer IPv4 and UDP to
//    the peer's PublicIP:Port, from the underlay address and the per-flow
//    source port, the inner TTL decremented) and redirected to the underlay;
//    large packets keep their GSO as UDP-tunnel GSO (cut at the last moment);
//  - flannel_ingress, tc ingress on the external interface: a datagram to
//    this node's address and Port whose inner packet passes the source check
//    (its source in a subnet routed to the sender, its destination in this
//    node's subnet, not from a local address) is unwrapped and received on
//    flannel0, as if the user-space path had written it there.
// Maps and counters: udp_fastpath.h. Kernel interfaces: include/uapi/linux/bpf.h
// (bpf_skb_adjust_room, bpf_skb_change_head, bpf_fib_lookup, bpf_check_mtu,
// bpf_redirect_neigh, bpf_csum_level).
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "../core/flow_mix.h"
#include "udp_fastpath.h"

// Newer than the build machine's uapi headers (Linux 6.1), present in the kernels that run it.
#ifndef BPF_F_ADJ_ROOM_NO_CSUM_RESET
#define BPF_F_ADJ_ROOM_NO_CSUM_RESET (1ULL << 5)
#endif

#define IP_DF 0x4000
#define IP_FRAG_BITS 0x3fff
#define OUTER_LEN (sizeof(struct iphdr) + sizeof(struct udphdr))
#define AF_INET 2
// The outer TTL: what the user-space path's sockets send with (net.ipv4.ip_default_ttl's default).
#define OUTER_TTL 64

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct fp_config);
} fp_config SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_LPM_TRIE);
  __uint(max_entries, FP_MAX_ROUTES);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, struct fp_route_key);
  __type(value, struct fp_route);
} fp_routes SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, FP_MAX_LOCAL_ADDRS);
  __type(key, __u32);
  __type(value, __u8);
} fp_local SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, FP_COUNTER_COUNT);
  __type(key, __u32);
  __type(value, __u64);
} fp_counters SEC(".maps");

static __always_inline void count(__u32 which, __u64 n) {
  __u64 *c = bpf_map_lookup_elem(&fp_counters, &which);
  if (c) *c += n;
}

// Hands the packet to the user-space datapath, counting why.
static __always_inline int pass(__u32 why) {
  count(why, 1);
  return TC_ACT_OK;
}


static __always_inline __u16 csum_fold(__u64 sum) {
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  return (__u16)~sum;
}

// Decrements the TTL of the IPv4 header at `off`, patching its checksum
// (RFC 1812 §5.3.1; the callers checked it is 2 or more). Nonzero on failure.
static __always_inline int decrement_ttl(struct __sk_buff *skb, __u32 off) {
  __u16 ttl_proto;
  if (bpf_skb_load_bytes(skb, off + 8, &ttl_proto, 2)) return -1;
  __u16 next = bpf_htons(bpf_ntohs(ttl_proto) - 0x100);
  bpf_l3_csum_replace(skb, off + 10, ttl_proto, next, 2);
  return bpf_skb_store_bytes(skb, off + 8, &next, 2, 0) ? -1 : 0;
}

// The segments a packet stands for (a GSO packet is cut into gso_segs).
static __always_inline __u32 segments(struct __sk_buff *skb) {
  return skb->gso_segs > 1 ? skb->gso_segs : 1;
}

// The egress program's body. `l2`: the packet starts with an Ethernet header
// (BPF_PROG_TEST_RUN always gives tc programs one); on flannel0, a layer-3
// device, it starts with the IPv4 header and gets an Ethernet header pushed
// once it is wrapped. Everything else is the same code.
static __always_inline int egress(struct __sk_buff *skb, const __u32 l2) {
  __u32 zero = 0;
  struct fp_config *cfg = bpf_map_lookup_elem(&fp_config, &zero);
  if (!cfg || !cfg->enabled) return TC_ACT_OK;
  if (skb->protocol != bpf_htons(ETH_P_IP)) return pass(FP_EGRESS_PASS_NOT_IPV4);
  if (bpf_skb_pull_data(skb, l2 + sizeof(struct iphdr) + 4)) bpf_skb_pull_data(skb, l2 + sizeof(struct iphdr));
  void *data = (void *)(long)skb->data;
  void *end = (void *)(long)skb->data_end;
  struct iphdr *ip = data + l2;
  if ((void *)(ip + 1) > end) return pass(FP_EGRESS_PASS_NOT_IPV4);
  if (ip->version != 4 || ip->ihl != 5) return pass(FP_EGRESS_PASS_NOT_IPV4);
  if (ip->ttl <= 1) return pass(FP_EGRESS_PASS_TTL);

  struct fp_route_key key = {32, ip->daddr};
  struct fp_route *route = bpf_map_lookup_elem(&fp_routes, &key);
  if (!route) return pass(FP_EGRESS_PASS_NO_ROUTE);
  if (!(route->flags & FP_ROUTE_FAST)) return pass(FP_EGRESS_PASS_PEER);
  __u32 peer = route->peer_addr;
  __u16 peer_port = route->peer_port;

  // The per-flow source port, as the user-space path picks it.
  __u8 protocol = ip->protocol;
  __u32 ports = 0;
  int fragment = (bpf_ntohs(ip->frag_off) & IP_FRAG_BITS) != 0;
  if (!fragment && (protocol == 6 || protocol == 17 || protocol == 33 || protocol == 132 || protocol == 136)) {
    __u32 *p = (void *)(ip + 1);
    if ((void *)(p + 1) <= end) ports = bpf_ntohl(*p);
  }
  __u64 addrs = ((__u64)bpf_ntohl(ip->saddr) << 32) | bpf_ntohl(ip->daddr);
  // native/core/flow_hash.h's flow_hash: the same source port as the user-space path.
  __u32 hash = flannel_flow_mix(addrs, ((__u64)ports << 8) | protocol);
  __u16 sport = cfg->port;
  __u32 n = cfg->source_ports;
  if (n > 0 && n <= FP_MAX_SOURCE_PORTS) {
    // hash % n < n <= 64; the mask tells the verifier so (its view of the
    // division loses the bound), and the barrier keeps the compiler from
    // dropping the mask it can prove redundant.
    __u32 i = hash % n;
    asm volatile("" : "+r"(i));
    i &= FP_MAX_SOURCE_PORTS - 1;
    sport = cfg->source_port[i];
  }

  // Where the datagram leaves: the kernel's route to the peer (redirect_neigh
  // drops a packet whose route is not through the device it is given).
  struct bpf_fib_lookup fib = {};
  fib.family = AF_INET;
  fib.ipv4_src = cfg->local_addr;
  fib.ipv4_dst = peer;
  fib.ifindex = cfg->ext_ifindex;
  long rc = bpf_fib_lookup(skb, &fib, sizeof(fib), BPF_FIB_LOOKUP_OUTPUT);
  if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH) return pass(FP_EGRESS_PASS_FIB);
  // The wrapped packet must fit the underlay (GSO packets: their segments do, by the TUN's MTU).
  __u32 mtu_len = 0;
  if (bpf_check_mtu(skb, fib.ifindex, &mtu_len, OUTER_LEN + ETH_HLEN - l2, 0) != BPF_MTU_CHK_RET_SUCCESS) return pass(FP_EGRESS_PASS_MTU);

  // Counted now: growing the headers resets a GSO packet's segment count.
  const __u32 segs = segments(skb);
  // Room for the outer IPv4 and UDP headers, as a UDP tunnel (GSO kept, cut per segment).
  if (bpf_skb_adjust_room(skb, OUTER_LEN, BPF_ADJ_ROOM_MAC,
                          BPF_F_ADJ_ROOM_FIXED_GSO | BPF_F_ADJ_ROOM_ENCAP_L3_IPV4 | BPF_F_ADJ_ROOM_ENCAP_L4_UDP))
    return pass(FP_EGRESS_PASS_ENCAP);
  // An Ethernet header for the underlay (bpf_redirect_neigh fills in the addresses).
  if (!l2 && bpf_skb_change_head(skb, ETH_HLEN, 0)) {
    count(FP_EGRESS_PASS_ENCAP, 1);
    return TC_ACT_SHOT;  // wrapped already: it cannot go to flannel0 any more
  }
  __u32 len = skb->len;
  __be16 eth_proto = bpf_htons(ETH_P_IP);
  struct iphdr outer = {};
  outer.version = 4;
  outer.ihl = 5;
  outer.tot_len = bpf_htons(len - ETH_HLEN);
  outer.frag_off = bpf_htons(IP_DF);
  outer.ttl = OUTER_TTL;
  outer.protocol = IPPROTO_UDP;
  outer.saddr = cfg->local_addr;
  outer.daddr = peer;
  outer.check = csum_fold(bpf_csum_diff(0, 0, (__be32 *)&outer, sizeof(outer), 0));
  // The outer UDP checksum is 0 (RFC 768: none), which a tunnel GSO packet's segments get anyway.
  struct udphdr udp = {};
  udp.source = sport;
  udp.dest = peer_port;
  udp.len = bpf_htons(len - ETH_HLEN - sizeof(struct iphdr));
  if (bpf_skb_store_bytes(skb, 12, &eth_proto, sizeof(eth_proto), 0) ||
      bpf_skb_store_bytes(skb, ETH_HLEN, &outer, sizeof(outer), 0) ||
      bpf_skb_store_bytes(skb, ETH_HLEN + sizeof(outer), &udp, sizeof(udp), 0)) {
    count(FP_EGRESS_PASS_ENCAP, 1);
    return TC_ACT_SHOT;
  }
  // The inner TTL, decremented as a router does.
  if (decrement_ttl(skb, ETH_HLEN + OUTER_LEN)) return TC_ACT_SHOT;

  count(FP_EGRESS_PACKETS, segs);
  count(FP_EGRESS_BYTES, len - ETH_HLEN - OUTER_LEN);
  struct bpf_redir_neigh nh = {};
  nh.nh_family = AF_INET;
  nh.ipv4_nh = fib.ipv4_dst;
  return bpf_redirect_neigh(fib.ifindex, &nh, sizeof(nh), 0);
}

// tc egress on flannel0.
SEC("tc")
int flannel_egress(struct __sk_buff *skb) { return egress(skb, 0); }

// The same on an Ethernet frame: for BPF_PROG_TEST_RUN only (test/udp-fastpath.netns.test.ts).
SEC("tc")
int flannel_egress_l2(struct __sk_buff *skb) { return egress(skb, ETH_HLEN); }

SEC("tc")
int flannel_ingress(struct __sk_buff *skb) {
  __u32 zero = 0;
  struct fp_config *cfg = bpf_map_lookup_elem(&fp_config, &zero);
  if (!cfg || !cfg->enabled) return TC_ACT_OK;
  if (skb->protocol != bpf_htons(ETH_P_IP)) return TC_ACT_OK;
  const __u32 headers = ETH_HLEN + OUTER_LEN + sizeof(struct iphdr);
  if (bpf_skb_pull_data(skb, headers)) return TC_ACT_OK;
  void *data = (void *)(long)skb->data;
  void *end = (void *)(long)skb->data_end;
  struct iphdr *ip = data + ETH_HLEN;
  struct udphdr *udp = (void *)(ip + 1);
  struct iphdr *in = (void *)(udp + 1);
  if ((void *)(in + 1) > end) return TC_ACT_OK;
  if (ip->version != 4 || ip->ihl != 5 || ip->protocol != IPPROTO_UDP || ip->daddr != cfg->local_addr) return TC_ACT_OK;
  if (bpf_ntohs(ip->frag_off) & IP_FRAG_BITS) return TC_ACT_OK;
  if (udp->dest != cfg->port) return TC_ACT_OK;
  // A datagram for the udp backend: the fast path takes it, or the user-space path does.
  if (in->version != 4 || in->ihl != 5) return pass(FP_INGRESS_PASS_NOT_IPV4);
  if (bpf_ntohs(in->tot_len) + sizeof(struct udphdr) != bpf_ntohs(udp->len)) {
    // One UDP header over several datagrams: a UDP GSO send that a veth
    // delivered whole (a NIC would have cut it). Not one packet to unwrap.
    if (skb->gso_segs > 1 || skb->gso_size > 0) return pass(FP_INGRESS_PASS_TRAIN);
    return pass(FP_INGRESS_PASS_MALFORMED);
  }
  if (in->ttl <= 1) return pass(FP_INGRESS_PASS_TTL);
  // The source check (native/core/forwarding.h, IngressPolicy): the inner
  // source in a subnet routed to the sender, the destination in this node's
  // subnet, not from one of this node's addresses. Anything else is the
  // user-space path's to judge and count.
  if ((in->daddr & cfg->own_mask) != cfg->own_net) return pass(FP_INGRESS_PASS_POLICY);
  struct fp_route_key key = {32, in->saddr};
  struct fp_route *route = bpf_map_lookup_elem(&fp_routes, &key);
  if (!route || route->peer_addr != ip->saddr) return pass(FP_INGRESS_PASS_POLICY);
  __u32 src = in->saddr;
  if (bpf_map_lookup_elem(&fp_local, &src)) return pass(FP_INGRESS_PASS_POLICY);

  __u32 segs = segments(skb);
  __u32 inner_len = skb->len - ETH_HLEN - OUTER_LEN;
  // A checksum the receiving NIC verified for the outer datagram says nothing of the inner packet.
  long level = bpf_csum_level(skb, BPF_CSUM_LEVEL_QUERY);
  if (bpf_skb_adjust_room(skb, -(__s32)OUTER_LEN, BPF_ADJ_ROOM_MAC, BPF_F_ADJ_ROOM_FIXED_GSO | BPF_F_ADJ_ROOM_NO_CSUM_RESET))
    return pass(FP_INGRESS_PASS_DECAP);
  if (level == 0) bpf_csum_level(skb, BPF_CSUM_LEVEL_RESET);
  else if (level > 0) bpf_csum_level(skb, BPF_CSUM_LEVEL_DEC);
  // The inner TTL, decremented.
  if (decrement_ttl(skb, ETH_HLEN)) return TC_ACT_SHOT;

  count(FP_INGRESS_PACKETS, segs);
  count(FP_INGRESS_BYTES, inner_len);
  return bpf_redirect(cfg->tun_ifindex, BPF_F_INGRESS);
}

char LICENSE[] SEC("license") = "GPL";
