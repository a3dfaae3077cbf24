// One worker's UDP -> TUN path (Linux), served by the worker's loop
// (forwarder_linux.h).
//
// Per wakeup, recvmmsg batches from the worker's socket. With UDP_GRO a
// message may hold several datagrams of one sender, all gso_size long but
// the last; each datagram is one inner IPv4 packet (docs/compatibility.md §5.3), checked
// and TTL-decremented on its own (core/forwarding.h). The accepted packets
// of a batch are then coalesced (core/gro.h) when GRO is on: each run of one
// TCP flow's segments (and of one UDP flow's datagrams, where the TUN takes
// USO) goes to the TUN as one write of a virtio GSO header,
// the merged headers and the members' payloads in place (writev, no copy);
// anything else is written as it is.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <memory>

#include "../core/gro.h"
#include "datapath_thread_linux.h"

namespace flannel {

class RefusalLog;

class IngressPath : public DatapathThread {
 public:
  // Accepted packets held for one coalescing pass before they are written.
  static constexpr size_t kMaxHeldPackets = 2048;
  // After a round that received UDP GRO messages (up to 64 KiB each), the
  // next asks for at most this many, so what one round touches (received,
  // checksummed, copied into the TUN) stays in the L2 cache; rounds of small
  // datagrams still take batch_size.
  static constexpr size_t kLargeRoundMessages = 4;
  static constexpr size_t kLargeMessageBytes = 16 * 1024;

  // `underlay6`: `udp_fd` is an AF_INET6 socket; senders are found in
  // ForwardingState::endpoints6.
  IngressPath(SharedContext* shared, int tun_fd, int udp_fd, bool underlay6, CounterBlock* counters,
              RefusalLog* refusals);
  bool allocate();
  // One wakeup's work once the socket is readable: bounded rounds
  // (kMaxBatchesPerWake) of recvmmsg, each written to the TUN. The worker's
  // loop (forwarder_linux.h) calls it. False when the loop must end (the
  // test fault that stalls a worker until stop).
  bool serve(int reader_slot);
  int udp_fd() const { return udp_fd_; }

 private:
  union Control {
    struct cmsghdr align;
    uint8_t bytes[CMSG_SPACE(sizeof(int))];
  };
  union SockAddr {
    struct sockaddr_in v4;
    struct sockaddr_in6 v6;
  };

  // The UDP_GRO segment size of message k, or 0 for a single datagram.
  uint16_t gro_size(size_t k) const;
  void hold(uint8_t* pkt, uint16_t len, bool partial);
  // One inner packet to the TUN: marked NEEDS_CSUM when its checksum is
  // partial, completed in software instead once the TUN refused that.
  int write_inner(const InnerPacket& p);
  // Writes every held packet to the TUN and forgets them.
  void flush();
  void write_members(const CoalescedItem& item);
  void write_merged(const CoalescedItem& item);

  const int udp_fd_;
  const bool underlay6_;
  size_t batch_ = 0;  // messages the next recvmmsg asks for (see kLargeRoundMessages)
  RefusalLog& refusals_;
  std::unique_ptr<uint8_t[]> buffers_;
  std::unique_ptr<struct iovec[]> iov_;
  std::unique_ptr<struct mmsghdr[]> msgs_;
  std::unique_ptr<SockAddr[]> addrs_;
  std::unique_ptr<Control[]> control_;
  std::unique_ptr<InnerPacket[]> held_;
  size_t held_count_ = 0;
  std::unique_ptr<uint16_t[]> next_;
  std::unique_ptr<CoalescedItem[]> items_;
  std::unique_ptr<uint8_t[]> merged_headers_;
  struct iovec write_iov_[kMaxCoalescedSegments + 1];
};

}  // namespace flannel
