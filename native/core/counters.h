// The datapath's counters: one fixed list, shared by the packet core (which
// names the reason for every drop) and the threads (which own the storage).
//
// "egress" is TUN -> UDP (packets leaving this node for a peer); "ingress" is
// UDP -> TUN. ICMP errors are counted separately (they are generated, not
// forwarded). The units, with offloads:
//  - egress_read_packets counts TUN reads; a TSO/USO super-packet is one read
//    (also in egress_read_gso_packets) and is cut into egress_split_segments
//    wire packets. Every read is forwarded or ends in one egress_drop_*
//    counter, except send errors, which count wire packets.
//  - egress_sent_packets counts wire datagrams; egress_send_calls the
//    syscalls that carried them; egress_gso_messages the UDP_SEGMENT sends.
//  - ingress_received_packets counts wire datagrams (a UDP GRO read holding
//    several is also one ingress_gro_messages); each is written or ends in
//    one ingress_drop_* counter. ingress_written_packets counts inner packets
//    written, ingress_tun_write_calls the writes (ICMP errors included), and
//    ingress_coalesced_writes/_packets the merged ones.
//  - ingress_drop_unknown_source, _spoofed_source and _foreign_destination
//    are the ingress policy's refusals (forwarding.h IngressPolicy).
//  - egress_partial_checksum_packets counts wire packets sent with their
//    TCP/UDP checksum left partial (to peers that take it),
//    ingress_partial_checksum_packets packets written to the TUN marked
//    NEEDS_CSUM instead of verified; egress_drop_bad_checksum packets that
//    were to go partial but failed verification; and
//    offload_partial_checksum_failures the NEEDS_CSUM writes the TUN refused
//    (checksums are then completed in software for good).
//  - inner IPv6 (forwarding.h Ipv6 fields): egress_drop_ipv6_link_scoped
//    counts what the kernel sends on flannel0 that must stay on the link
//    (router solicitations, MLD reports, anything link-local or multicast);
//    egress_drop_ipv6_peer_incapable packets toward a peer whose lease does
//    not say it carries IPv6 (answered with ICMPv6 unreachable);
//    ingress_drop_ipv6_sender_incapable inner IPv6 from such a sender.
//    Parse errors, missing routes and hop limits share the IPv4 counters
//    (egress_drop_not_ipv4 then counts IPv6 only while IPv6 is off).
//  - ingress_drop_martian_source counts inner packets whose source no
//    overlay packet may carry, refused whatever the policy allows
//    (ipv4.h is_martian_source_ipv4, ipv6.h is_martian_source_ipv6, and
//    this node's own addresses); egress_drop_oversize TUN reads longer than
//    the read buffer (the kernel reports the packet's length, not what it
//    copied); ingress_drop_source_port datagrams sent to the per-flow source
//    ports, which are never read (their socket filter discards them; the
//    count is the sockets' own drop count, read when stats are taken).
//  - offload_gso_failures counts UDP GSO sends the kernel refused (that
//    peer then gets unsegmented sends for a while); offload_gro_failures the
//    coalesced TUN writes it refused (coalescing is then off for good).
//
// The names are the stats keys TypeScript sees; append new counters at the
// end of a group, never rename one (dashboards depend on them).
#pragma once

#include <cstddef>
#include <cstdint>

namespace flannel {

#define FLANNEL_COUNTERS(X)                                                            \
  X(kTunReadPackets, "egress_read_packets")                                            \
  X(kTunReadBytes, "egress_read_bytes")                                                \
  X(kUdpSentPackets, "egress_sent_packets")                                            \
  X(kUdpSentBytes, "egress_sent_bytes")                                                \
  X(kEgressDropNotIpv4, "egress_drop_not_ipv4")                                        \
  X(kEgressDropTooShort, "egress_drop_too_short")                                      \
  X(kEgressDropBadHeader, "egress_drop_bad_header")                                    \
  X(kEgressDropNoRoute, "egress_drop_no_route")                                        \
  X(kEgressDropTtlExpired, "egress_drop_ttl_expired")                                  \
  X(kEgressDropSendError, "egress_drop_send_error")                                    \
  X(kUdpReceivedPackets, "ingress_received_packets")                                   \
  X(kUdpReceivedBytes, "ingress_received_bytes")                                       \
  X(kTunWrittenPackets, "ingress_written_packets")                                     \
  X(kTunWrittenBytes, "ingress_written_bytes")                                         \
  X(kIngressDropOversize, "ingress_drop_oversize")                                     \
  X(kIngressDropUnknownSource, "ingress_drop_unknown_source")                          \
  X(kIngressDropNotIpv4, "ingress_drop_not_ipv4")                                      \
  X(kIngressDropTooShort, "ingress_drop_too_short")                                    \
  X(kIngressDropBadHeader, "ingress_drop_bad_header")                                  \
  X(kIngressDropTtlExpired, "ingress_drop_ttl_expired")                                \
  X(kIngressDropTunWriteError, "ingress_drop_tun_write_error")                         \
  X(kIcmpNetUnreachableSent, "icmp_net_unreachable_sent")                              \
  X(kIcmpTimeExceededSent, "icmp_time_exceeded_sent")                                  \
  X(kIcmpSuppressed, "icmp_suppressed")                                                \
  X(kIcmpRateLimited, "icmp_rate_limited")                                             \
  X(kIcmpWriteError, "icmp_write_error")                                               \
  X(kTunReadErrors, "tun_read_errors")                                                 \
  X(kUdpReceiveErrors, "udp_receive_errors")                                           \
  X(kUdpSendBlocked, "udp_send_blocked")                                               \
  X(kTunWriteBlocked, "tun_write_blocked")                                            \
  X(kTunReadGsoPackets, "egress_read_gso_packets")                                     \
  X(kEgressSplitSegments, "egress_split_segments")                                     \
  X(kEgressDropBadOffload, "egress_drop_bad_offload")                                  \
  X(kUdpSendCalls, "egress_send_calls")                                                \
  X(kUdpGsoMessages, "egress_gso_messages")                                            \
  X(kUdpReceiveCalls, "ingress_receive_calls")                                         \
  X(kUdpGroMessages, "ingress_gro_messages")                                           \
  X(kTunWriteCalls, "ingress_tun_write_calls")                                         \
  X(kTunCoalescedWrites, "ingress_coalesced_writes")                                   \
  X(kTunCoalescedPackets, "ingress_coalesced_packets")                                 \
  X(kOffloadGsoFailures, "offload_gso_failures")                                       \
  X(kOffloadGroFailures, "offload_gro_failures")                                       \
  X(kIngressDropSpoofedSource, "ingress_drop_spoofed_source")                          \
  X(kIngressDropForeignDestination, "ingress_drop_foreign_destination")               \
  X(kEgressDropBadChecksum, "egress_drop_bad_checksum")                                \
  X(kEgressPartialChecksumPackets, "egress_partial_checksum_packets")                  \
  X(kIngressPartialChecksumPackets, "ingress_partial_checksum_packets")                \
  X(kOffloadPartialChecksumFailures, "offload_partial_checksum_failures")                \
  X(kEgressDropIpv6LinkScoped, "egress_drop_ipv6_link_scoped")                        \
  X(kEgressDropIpv6PeerIncapable, "egress_drop_ipv6_peer_incapable")                  \
  X(kIngressDropIpv6SenderIncapable, "ingress_drop_ipv6_sender_incapable")            \
  X(kIngressDropMartianSource, "ingress_drop_martian_source")                          \
  X(kEgressDropOversize, "egress_drop_oversize")                                       \
  X(kIngressDropSourcePort, "ingress_drop_source_port")                                \
  X(kWorkerSleepWakeups, "worker_sleep_wakeups")                                       \
  X(kWorkerBusyPollWakeups, "worker_busy_poll_wakeups")

enum Counter : uint32_t {
#define FLANNEL_COUNTER_ENUM(id, name) id,
  FLANNEL_COUNTERS(FLANNEL_COUNTER_ENUM)
#undef FLANNEL_COUNTER_ENUM
      kCounterCount
};

// Name of each counter, indexed by Counter.
extern const char* const kCounterNames[kCounterCount];

}  // namespace flannel
