#include "gro.h"

#include <cstring>

#include "checksum.h"
#include "gso.h"
#include "ipv4.h"
#include "ipv6.h"
#include "virtio_net.h"

namespace flannel {

namespace {

constexpr uint16_t kEnd = 0xffff;
constexpr size_t kMaxOpenGroups = 16;
constexpr uint8_t kFin = 0x01, kSyn = 0x02, kRst = 0x04, kPsh = 0x08, kUrg = 0x20, kCwr = 0x80;
constexpr size_t kMaxIpv4Packet = 0xffff;
constexpr size_t kIpHl = 20;  // only option-less IPv4 headers are coalesced
constexpr size_t kUdpHeaderLen = 8;
// IPv6: only TCP or UDP right after the fixed header (no extension headers) is coalesced.

struct Seg {
  bool keyed = false;      // a TCP or UDP packet (the flow key is valid)
  bool mergeable = false;  // a TCP data segment or UDP datagram with a valid checksum and no IP options
  bool v6 = false;
  uint8_t proto = 0;          // kIpProtoTcp or kIpProtoUdp when keyed
  uint8_t iphl = 0;           // 20 (IPv4 without options) or 40 (IPv6)
  uint32_t src = 0, dst = 0;  // IPv4
  Ipv6Addr src6, dst6;        // IPv6
  uint16_t sport = 0, dport = 0;
  uint16_t tcphl = 0, payload = 0, id = 0;
  uint32_t seq = 0, ack = 0;
  uint8_t flags = 0, tos = 0, ttl = 0;
  bool df = false;
};

// TCP's own fields of a segment (`t`, `l4_len` bytes from the TCP header
// on): header length, payload, sequence, ack and flags. False for a header
// too short or one that leaves no payload: never merged.
bool inspect_tcp(const uint8_t* t, size_t l4_len, Seg& s) {
  s.tcphl = static_cast<uint16_t>((t[12] >> 4) * 4);
  if (s.tcphl < 20 || s.tcphl >= l4_len) return false;
  s.payload = static_cast<uint16_t>(l4_len - s.tcphl);
  s.seq = load_be32(t + 4);
  s.ack = load_be32(t + 8);
  s.flags = t[13];
  return true;
}

// UDP's own fields of a datagram (`u`, `l4_len` bytes from the UDP header
// on): it may join a USO packet only with a payload and a UDP length that is
// the packet's (the kernel's segmentation rewrites it per segment from the
// size alone). A datagram without a checksum (0, IPv4; not `partial`, whose
// field holds the pseudo-header sum) is never merged: the kernel would give
// each segment one, and what the pod receives must be what its peer sent.
bool inspect_udp(const uint8_t* u, size_t l4_len, bool partial, Seg& s) {
  if (l4_len <= kUdpHeaderLen || load_be16(u + 4) != l4_len) return false;
  s.payload = static_cast<uint16_t>(l4_len - kUdpHeaderLen);
  return partial || load_be16(u + 6) != 0;
}

// The TCP or UDP part of a packet whose IP header (s.iphl bytes) is checked:
// the flow's ports, the protocol's own fields, and whether it may be merged:
// a partial checksum is finished after merging (the virtio header asks for
// it), any other must verify (fold to zero) over the IPv4 or IPv6
// pseudo-header.
void inspect_l4(const InnerPacket& p, uint8_t proto, Seg& s) {
  const uint8_t* l4 = p.data + s.iphl;
  const size_t l4_len = p.len - s.iphl;
  s.keyed = true;
  s.proto = proto;
  s.sport = load_be16(l4);
  s.dport = load_be16(l4 + 2);
  const bool candidate = proto == kIpProtoTcp ? inspect_tcp(l4, l4_len, s) : inspect_udp(l4, l4_len, p.partial, s);
  if (!candidate) return;
  if (p.partial) {
    s.mergeable = true;
    return;
  }
  const uint16_t pseudo = s.v6 ? pseudo_header_sum_ipv6(p.data, proto, l4_len)
                               : pseudo_header_sum_ipv4(p.data, proto, l4_len);
  s.mergeable = l4_checksum_with_pseudo(pseudo, l4, l4_len) == 0;
}

// IPv6: TCP or UDP right after the fixed header only. The traffic class and the
// hop limit must match within a group (tos, ttl); there is no IP id, so
// members join as with a fixed id and DF.
Seg inspect6(const InnerPacket& p, bool udp) {
  Seg s;
  const uint8_t* d = p.data;
  const uint8_t proto = d[6];
  if (p.len < kIpv6HeaderLen + (proto == kIpProtoTcp ? 20 : kUdpHeaderLen)) return s;
  if (proto != kIpProtoTcp && !(udp && proto == kIpProtoUdp)) return s;
  s.v6 = true;
  s.iphl = static_cast<uint8_t>(kIpv6HeaderLen);
  s.src6 = load_ipv6(d + kIpv6SourceOffset);
  s.dst6 = load_ipv6(d + kIpv6DestinationOffset);
  s.tos = static_cast<uint8_t>(load_be16(d) >> 4);
  s.ttl = d[kIpv6HopLimitOffset];
  s.df = true;
  inspect_l4(p, proto, s);
  return s;
}

// `udp`: UDP datagrams are inspected for merging too (else only TCP is).
Seg inspect(const InnerPacket& p, bool udp) {
  if (p.len >= 1 && (p.data[0] >> 4) == 6) return inspect6(p, udp);
  Seg s;
  const uint8_t* d = p.data;
  if (p.len < kIpHl || (d[0] >> 4) != 4) return s;
  const uint8_t proto = d[9];
  if (proto != kIpProtoTcp && !(udp && proto == kIpProtoUdp)) return s;
  const size_t iphl = static_cast<size_t>(d[0] & 0x0f) * 4;
  if (iphl + (proto == kIpProtoTcp ? 20 : kUdpHeaderLen) > p.len) return s;
  s.iphl = static_cast<uint8_t>(iphl);
  s.src = load_be32(d + 12);
  s.dst = load_be32(d + 16);
  const uint16_t frag = load_be16(d + 6);
  s.id = load_be16(d + 4);
  s.df = (frag & 0x4000) != 0;
  s.tos = d[1];
  s.ttl = d[8];
  // IP options, a fragment, or a bad IP header checksum (inet_gro_receive
  // flushes: a merged packet gets a fresh header, which must not hide a bad
  // one): the flow is known, the packet is never merged.
  if (iphl != kIpHl || (frag & 0x3fff) != 0 || internet_checksum(d, kIpHl) != 0) {
    s.keyed = true;
    s.proto = proto;
    s.sport = load_be16(d + iphl);
    s.dport = load_be16(d + iphl + 2);
    return s;
  }
  inspect_l4(p, proto, s);
  return s;
}

// The TCP header's length (options included) or the UDP header's.
size_t l4_header_len(const Seg& s) { return s.proto == kIpProtoUdp ? kUdpHeaderLen : s.tcphl; }

bool same_flow(const Seg& a, const Seg& b) {
  return a.v6 == b.v6 && a.proto == b.proto && a.src == b.src && a.dst == b.dst && a.src6 == b.src6 &&
         a.dst6 == b.dst6 && a.sport == b.sport && a.dport == b.dport;
}

struct Group {
  bool open = false;
  uint16_t first = 0, last = 0, count = 0;
  uint16_t mss = 0, last_id = 0;
  uint32_t next_seq = 0;
  uint32_t payload = 0;  // the members' payload bytes
  int id_step = -1;      // 1 (incrementing) or 0 (fixed, with DF); -1 until a second member
  uint8_t extra_flags = 0;
  size_t item = 0;
  Seg head;
};

bool can_start(const Seg& s) {
  return s.mergeable && (s.proto == kIpProtoUdp || (s.flags & (kSyn | kRst | kUrg | kFin | kPsh | kCwr)) == 0);
}

bool can_append(const Group& g, const Seg& s, const InnerPacket& head_pkt, const InnerPacket& pkt) {
  const Seg& h = g.head;
  if (!s.mergeable || g.count >= kMaxCoalescedSegments) return false;
  if (s.tos != h.tos || s.ttl != h.ttl || s.df != h.df || s.payload > g.mss) return false;
  const uint16_t delta = static_cast<uint16_t>(s.id - g.last_id);
  const int step = delta == 1 ? 1 : (delta == 0 && s.df ? 0 : -2);
  if (step == -2 || (g.id_step >= 0 && step != g.id_step)) return false;
  // The merged packet's length field must hold it (IPv4 total length, IPv6 payload length).
  if ((h.v6 ? 0 : kIpHl) + l4_header_len(h) + g.payload + s.payload > kMaxIpv4Packet) return false;
  // UDP (udp_gro_receive_segment): equal-size datagrams, a shorter last.
  if (h.proto == kIpProtoUdp) return true;
  if (s.ack != h.ack || s.tcphl != h.tcphl) return false;
  if (((s.flags ^ h.flags) & static_cast<uint8_t>(~(kFin | kPsh))) != 0 || (s.flags & kCwr) != 0) return false;
  if (s.seq != g.next_seq) return false;
  // TCP options must be byte-identical (timestamps included), as in tcp_gro_receive.
  return std::memcmp(head_pkt.data + h.iphl + 20, pkt.data + h.iphl + 20, static_cast<size_t>(h.tcphl) - 20) == 0;
}

// Writes the item's virtio header and merged headers to the arena: the first
// member's headers with the lengths of the whole. TCP: GSO TCPV4/TCPV6 and
// the members' FIN/PSH, as tcp_gro_complete leaves a GRO packet. UDP: a USO
// packet (VIRTIO_NET_HDR_GSO_UDP_L4, include/uapi/linux/virtio_net.h, Linux
// 6.2) whose UDP length is the whole's, as udp_gro_complete leaves one.
void build_merged_header(const Group& g, const InnerPacket& head, uint8_t* out, CoalescedItem& item) {
  const bool v6 = g.head.v6;
  const bool udp = g.head.proto == kIpProtoUdp;
  const size_t iphl = g.head.iphl;
  const size_t hl = iphl + l4_header_len(g.head);
  const size_t check_at = iphl + (udp ? 6 : 16);  // the UDP or TCP checksum field
  VirtioNetHdr vh;
  vh.flags = kVirtioFlagNeedsCsum;
  vh.gso_type = udp ? kVirtioGsoUdpL4 : v6 ? kVirtioGsoTcpv6 : kVirtioGsoTcpv4;
  vh.hdr_len = static_cast<uint16_t>(hl);
  vh.gso_size = g.mss;
  vh.csum_start = static_cast<uint16_t>(iphl);
  vh.csum_offset = static_cast<uint16_t>(check_at - iphl);
  encode_virtio_hdr(vh, out);
  uint8_t* h = out + kVirtioNetHdrLen;
  std::memcpy(h, head.data, hl);
  const size_t l4_len = hl - iphl + g.payload;
  if (udp) {
    store_be16(h + iphl + 4, static_cast<uint16_t>(l4_len));
  } else {
    h[iphl + 13] = static_cast<uint8_t>(h[iphl + 13] | g.extra_flags);
  }
  if (v6) {
    store_be16(h + 4, static_cast<uint16_t>(l4_len));  // the payload length; IPv6 has no header checksum
  } else {
    store_be16(h + 2, static_cast<uint16_t>(hl + g.payload));
    store_be16(h + 10, 0);
    store_be16(h + 10, internet_checksum(h, kIpHl));
  }
  // CHECKSUM_PARTIAL: the field holds the (uncomplemented) pseudo-header sum;
  // the kernel completes it.
  store_be16(h + check_at, v6 ? pseudo_header_sum_ipv6(h, g.head.proto, l4_len) : pseudo_header_sum_ipv4(h, g.head.proto, l4_len));
  item.header_len = static_cast<uint16_t>(kVirtioNetHdrLen + hl);
  item.l34_len = static_cast<uint16_t>(hl);
}

}  // namespace

size_t coalesce(const InnerPacket* packets, size_t n, uint16_t* next, uint8_t* arena, size_t arena_cap,
                CoalescedItem* items, bool udp) {
  Group groups[kMaxOpenGroups];
  size_t nitems = 0;
  size_t victim = 0;  // round-robin slot to evict when every slot holds an open group
  size_t used = 0;    // arena bytes

  // A closing group gets its merged header now, from what was accumulated.
  auto close = [&](Group& g) {
    if (!g.open) return;
    g.open = false;
    CoalescedItem& it = items[g.item];
    it.count = g.count;
    if (g.count < 2) return;
    const size_t need = kVirtioNetHdrLen + g.head.iphl + l4_header_len(g.head);
    if (used + need > arena_cap) return;  // header_len stays 0: written member by member
    it.header_off = static_cast<uint32_t>(used);
    build_merged_header(g, packets[g.first], arena + used, it);
    used += need;
  };

  for (size_t i = 0; i < n; ++i) {
    next[i] = kEnd;
    const Seg s = inspect(packets[i], udp);
    Group* g = nullptr;
    if (s.keyed) {
      for (Group& c : groups) {
        if (c.open && same_flow(c.head, s)) {
          g = &c;
          break;
        }
      }
    }
    if (g != nullptr && can_append(*g, s, packets[g->first], packets[i])) {
      next[g->last] = static_cast<uint16_t>(i);
      g->last = static_cast<uint16_t>(i);
      g->count++;
      g->payload += s.payload;
      g->next_seq = s.seq + s.payload;
      if (g->id_step < 0) g->id_step = static_cast<uint16_t>(s.id - g->last_id) == 1 ? 1 : 0;
      g->last_id = s.id;
      g->extra_flags = static_cast<uint8_t>(g->extra_flags | (s.flags & (kFin | kPsh)));
      if (s.payload < g->mss || (s.proto == kIpProtoTcp && (s.flags & (kFin | kPsh)) != 0)) close(*g);
      continue;
    }
    // Whatever this packet is, its flow's group takes no later segments (order within a flow).
    if (g != nullptr) close(*g);
    const size_t item = nitems++;
    items[item] = CoalescedItem{static_cast<uint16_t>(i), 1, 0, 0, 0};
    if (!can_start(s)) continue;
    Group* slot = nullptr;
    for (Group& c : groups) {
      if (!c.open) {
        slot = &c;
        break;
      }
    }
    if (slot == nullptr) {
      slot = &groups[victim];
      victim = (victim + 1) % kMaxOpenGroups;
      close(*slot);
    }
    *slot = Group{};
    slot->open = true;
    slot->first = slot->last = static_cast<uint16_t>(i);
    slot->count = 1;
    slot->mss = s.payload;
    slot->last_id = s.id;
    slot->next_seq = s.seq + s.payload;
    slot->payload = s.payload;
    slot->item = item;
    slot->head = s;
  }
  for (Group& g : groups) close(g);
  return nitems;
}

}  // namespace flannel
