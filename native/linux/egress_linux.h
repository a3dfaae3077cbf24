// One worker's TUN -> UDP path (Linux), served by the worker's loop
// (forwarder_linux.h).
//
// Per wakeup, up to batch_size reads from the worker's TUN queue. Each packet
// is validated and routed (core/forwarding.h; TTL decremented once, on the
// header of a super-packet before it is cut), then split into wire packets
// (core/gso.h: headers built in an arena, payloads left in the read buffer).
// Consecutive wire packets to the same next hop that UDP GSO can carry
// together (equal sizes, a shorter one only last, at most kMaxGsoSegments and
// kMaxGsoBytes) become one message with a UDP_SEGMENT cmsg, whose iovecs
// interleave those headers with the payload slices: the payload is never
// copied. Each wire datagram is still exactly one inner IPv4 packet
// (docs/compatibility.md §5.3). With per-flow source ports each read's
// datagrams leave from the socket its inner flow hashes to
// (core/flow_hash.h); the messages of a batch are grouped by socket (order
// within a socket kept, so within a flow) and each group goes out with
// sendmmsg.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "../core/gso.h"
#include "../core/peer_backoff.h"
#include "datapath_thread_linux.h"

namespace flannel {

class EgressPath : public DatapathThread {
 public:
  // UDP GSO limits: the kernel accepts up to UDP_MAX_SEGMENTS (64 before
  // Linux 6.6, 128 since) segments, and the whole send must fit one IPv4
  // packet: 65535 - 20 (IP) - 8 (UDP) bytes of payload (udp_sendmsg).
  static constexpr size_t kMaxGsoSegments = 64;
  static constexpr size_t kMaxGsoBytes = 65535 - 20 - 8;
  // The most wire packets queued before a send flush, and the most one TUN
  // read may be cut into (TCP's smallest MSS is 88 bytes: 65535 / 88 < 745;
  // a USO read has at most UDP_MAX_SEGMENTS).
  static constexpr size_t kMaxQueuedSegments = 2048;
  static constexpr size_t kMaxSegmentsPerRead = 1024;
  // The longest IPv4 + TCP header a segment can need.
  static constexpr size_t kMaxSegmentHeader = 60 + 60;
  // A round of reads stops after this many bytes, so what one round touches
  // (read, checksummed, copied by sendmmsg) stays in the L2 cache: 64 reads
  // of 64 KiB TSO packets would be 4 MiB. Small packets still batch by count.
  static constexpr size_t kRoundBytes = 256 * 1024;
  // After a refused UDP GSO send, a peer's packets go out unsegmented for
  // this long before GSO is tried again (core/peer_backoff.h).
  static constexpr uint64_t kGsoRetryNs = 10ull * 1000 * 1000 * 1000;

  // `source_fds` empty: every datagram leaves from `udp_fd` (Port; -1: no
  // IPv4 underlay).
  // `udp6_fd` (-1: none) carries the datagrams to peers on the IPv6
  // underlay (routes flagged kPeerUnderlay6), from Port, or `source6_fds`
  // (the same per-flow source ports over IPv6) when there are any.
  EgressPath(SharedContext* shared, int tun_fd, int udp_fd, const std::vector<int>& source_fds, int udp6_fd,
             const std::vector<int>& source6_fds, CounterBlock* counters);
  bool allocate();
  // One wakeup's work once the TUN queue is readable: bounded rounds of
  // reads (kMaxBatchesPerWake), each flushed to the sockets. The worker's
  // loop (forwarder_linux.h) calls it.
  void serve(int reader_slot);
  int tun_fd() const { return tun_fd_; }

 private:
  struct OutMessage {
    NextHop hop;
    Ipv6Addr addr6;  // the peer's address when hop has kPeerUnderlay6
    uint8_t socket;  // index into send_fds_
    uint32_t iov_first;
    uint16_t iov_count;
    uint16_t segments;
    uint16_t segment_size;  // the size of every segment but a shorter last one
    uint32_t bytes;
    bool closed;  // a shorter segment ended it
  };
  union Control {
    struct cmsghdr align;
    uint8_t bytes[CMSG_SPACE(sizeof(uint16_t))];
  };
  union SockAddr {
    struct sockaddr_in v4;
    struct sockaddr_in6 v6;
  };

  // Routes, splits and queues one packet read into `buf` (`n` bytes with the
  // virtio header, if any). True when queued messages now point into `buf`.
  bool process(uint8_t* buf, size_t n, const ForwardingState& state);
  bool has_room(size_t segments) const;
  void queue_segment(const NextHop& hop, const Ipv6Addr& addr6, uint8_t socket, uint8_t* header, uint16_t header_len,
                     uint8_t* payload, uint16_t payload_len);
  // The GSO backoff's key of a next hop: its underlay address (`addr6` for
  // an IPv6 underlay endpoint), so a later publication that renumbers the
  // endpoints cannot move a backoff to another peer.
  static Ipv6Addr backoff_key(const NextHop& hop, const Ipv6Addr& addr6) {
    return (hop.flags & kPeerUnderlay6) ? addr6 : PeerBackoff::v4_key(hop.addr);
  }
  // Orders out_ by socket (stable), so each socket's messages are contiguous.
  void group_by_socket();
  // Sends everything queued and empties the queues.
  void flush();
  void prepare_message(size_t i);
  // Sends out_[i]'s segments one sendmsg each (UDP GSO was refused).
  void send_segments_singly(size_t i);
  // After sendmmsg/sendmsg returned EAGAIN on `fd`: true when it drained.
  bool wait_writable(int fd);
  void account_sent(const OutMessage& m);

  // The sockets datagrams leave from: the worker's own socket on Port, or
  // the shared per-flow source port sockets (the first v4_sockets_), then
  // the IPv6 underlay's (v6_sockets_ from index v6_first_).
  std::vector<int> send_fds_;
  size_t v4_sockets_ = 0;
  size_t v6_first_ = 0;
  size_t v6_sockets_ = 0;
  static constexpr size_t kMaxSendSockets = 256;
  size_t stride_ = 0;  // bytes per read buffer: virtio header + buffer_size
  std::unique_ptr<uint8_t[]> reads_;
  std::unique_ptr<uint8_t[]> headers_;
  size_t headers_used_ = 0;
  std::unique_ptr<SegmentSlice[]> slices_;
  std::unique_ptr<struct iovec[]> iov_;
  std::unique_ptr<bool[]> segment_starts_;  // per iovec: the first iovec of a segment
  size_t iov_used_ = 0;
  size_t segments_queued_ = 0;
  std::unique_ptr<OutMessage[]> out_;
  std::unique_ptr<OutMessage[]> sorted_;  // group_by_socket's scratch
  std::unique_ptr<struct mmsghdr[]> msgs_;
  std::unique_ptr<SockAddr[]> addrs_;
  std::unique_ptr<Control[]> control_;
  size_t messages_ = 0;
  PeerBackoff gso_backoff_;  // peers whose GSO sends the kernel refused lately
  uint64_t now_ns_ = 0;      // the clock at the start of the round
};

}  // namespace flannel
