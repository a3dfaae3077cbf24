// Coalescing received TCP segments, and runs of UDP datagrams of one flow,
// into one large packet for the TUN (pure), so one write delivers what the
// wire carried as many datagrams.
//
// The rules follow the kernel's own TCP GRO (net/ipv4/tcp_offload.c
// tcp_gro_receive, net/ipv4/af_inet.c inet_gro_receive), as wireguard-go's
// tun/offload_linux.go does:
//  - IPv4 without options (IHL 5), not a fragment, same addresses, TOS, TTL
//    and DF; IP ids either consecutive or (with DF) all equal;
//  - TCP with payload, same ports, same ACK number, identical options;
//  - a group starts only with a segment whose flags are plain (no SYN, RST,
//    URG, FIN, PSH, CWR); a later segment may differ only in FIN/PSH, must
//    not carry CWR, must follow on in sequence and be no longer than the
//    first; a segment shorter than the first, or with FIN/PSH, is the last;
//  - every segment's IP header and TCP checksums must be valid (GRO never
//    hides a bad one), but a partial TCP checksum is not verified: the outer
//    UDP checksum protected those bytes;
//  - at most 64 segments and 65535 bytes of IPv4 packet.
// UDP, when asked for, as the kernel's UDP GRO (net/ipv4/udp_offload.c
// udp_gro_receive_segment) and wireguard-go's tun/offload_linux.go do: the
// same IP rules and flow (addresses, ports); datagrams with a payload, a UDP
// length that is the packet's and a valid checksum (or a partial one; never
// a missing one: IPv4's 0); all as long as the first but a shorter last one,
// which ends the group. The merged packet is a USO packet
// (VIRTIO_NET_HDR_GSO_UDP_L4, Linux 6.2): the pod's kernel cuts it back into
// the same datagrams (net/ipv4/udp_offload.c __udp_gso_segment).
// Anything else is written as it is. Order within a flow is kept: a segment
// that cannot join its flow's group closes it.
//
// The merged packet is described, not built: a virtio header (GSO TCPV4,
// TCPV6 or UDP_L4, NEEDS_CSUM) and the first packet's headers patched (total
// length, UDP length, FIN/PSH, pseudo-header checksum) are written to an
// arena, and the payloads stay in the receive buffers for a writev.
#pragma once

#include <cstddef>
#include <cstdint>

namespace flannel {

struct InnerPacket {
  uint8_t* data;  // a validated IPv4 or IPv6 packet (parsed, TTL or hop limit already handled)
  uint16_t len;   // its total length
  // Its TCP/UDP checksum field holds the pseudo-header sum (a partial
  // checksum from a peer that sends them, partial_checksum.h): it is not
  // verified, and written to the TUN marked NEEDS_CSUM.
  bool partial = false;
};

struct CoalescedItem {
  uint16_t first;       // index of the first packet
  uint16_t count;       // packets in the item, chained through next[] (1: packets[first] alone)
  uint32_t header_off;  // merged: virtio header + merged IP/TCP headers in the arena
  uint16_t header_len;  // merged: bytes at header_off (10 + IP + TCP/UDP header); 0 when
                        // count > 1 but the arena was full: write the members one by one
  uint16_t l34_len;     // merged: IP + TCP/UDP header length of each member (skip it in members 2..n)
};

constexpr size_t kMaxCoalescedSegments = 64;
// Virtio header + IPv6 header (the larger: IPv4's is 20 when coalesced) + the largest TCP header.
constexpr size_t kCoalesceArenaPerPacket = 10 + 40 + 60;

// Groups `packets` (arrival order) into items. `next` must hold n entries:
// next[i] is the index of the member after i in its item (or 0xffff). Items
// come out in the order of their first packet. Returns the number of items
// written to `items` (at most n). An arena of kCoalesceArenaPerPacket * n
// bytes is always enough. `udp`: runs of UDP datagrams are merged too (the
// TUN takes USO writes), else only TCP segments are.
size_t coalesce(const InnerPacket* packets, size_t n, uint16_t* next, uint8_t* arena, size_t arena_cap,
                CoalescedItem* items, bool udp);

}  // namespace flannel
