#include "egress_linux.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/udp.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include <new>

#include "../core/flow_hash.h"
#include "../core/tun_read.h"
#include "forwarder_linux.h"

namespace flannel {

EgressPath::EgressPath(SharedContext* shared, int tun_fd, int udp_fd, const std::vector<int>& source_fds, int udp6_fd,
                       const std::vector<int>& source6_fds, CounterBlock* counters)
    : DatapathThread(shared, tun_fd, counters),
      send_fds_(!source_fds.empty() ? source_fds : udp_fd >= 0 ? std::vector<int>{udp_fd} : std::vector<int>{}),
      v4_sockets_(send_fds_.size()),
      v6_first_(send_fds_.size()) {
  if (!source6_fds.empty()) {
    send_fds_.insert(send_fds_.end(), source6_fds.begin(), source6_fds.end());
  } else if (udp6_fd >= 0) {
    send_fds_.push_back(udp6_fd);
  }
  v6_sockets_ = send_fds_.size() - v6_first_;
}

bool EgressPath::allocate() {
  stride_ = config_.buffer_size + kVirtioNetHdrLen;
  reads_.reset(new (std::nothrow) uint8_t[config_.batch_size * stride_]);
  headers_.reset(new (std::nothrow) uint8_t[kMaxQueuedSegments * kMaxSegmentHeader]);
  slices_.reset(new (std::nothrow) SegmentSlice[kMaxSegmentsPerRead]);
  iov_.reset(new (std::nothrow) struct iovec[2 * kMaxQueuedSegments]);
  segment_starts_.reset(new (std::nothrow) bool[2 * kMaxQueuedSegments]);
  out_.reset(new (std::nothrow) OutMessage[kMaxQueuedSegments]);
  sorted_.reset(new (std::nothrow) OutMessage[kMaxQueuedSegments]);
  if (send_fds_.size() > kMaxSendSockets) return false;
  msgs_.reset(new (std::nothrow) struct mmsghdr[kMaxQueuedSegments]);
  addrs_.reset(new (std::nothrow) SockAddr[kMaxQueuedSegments]);
  control_.reset(new (std::nothrow) Control[kMaxQueuedSegments]);
  if (!reads_ || !headers_ || !slices_ || !iov_ || !segment_starts_ || !out_ || !sorted_ || !msgs_ || !addrs_ ||
      !control_) {
    return false;
  }
  memset(msgs_.get(), 0, sizeof(struct mmsghdr) * kMaxQueuedSegments);
  memset(addrs_.get(), 0, sizeof(SockAddr) * kMaxQueuedSegments);
  memset(control_.get(), 0, sizeof(Control) * kMaxQueuedSegments);
  return true;
}

void EgressPath::serve(int reader_slot) {
  StatePublisher<ForwardingState>& publisher = *shared_->publisher;
  const size_t batch = config_.batch_size;
  for (int round = 0; round < kMaxBatchesPerWake; ++round) {
    const ForwardingState& state = *publisher.read(reader_slot);
    now_ns_ = monotonic_coarse_ns();
    bool drained = false;
    size_t slot = 0;
    size_t round_bytes = 0;
    while (slot < batch && round_bytes < kRoundBytes) {
      uint8_t* buf = reads_.get() + slot * stride_;
      const ssize_t n = read(tun_fd_, buf, stride_);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno != EAGAIN) counters_.add(kTunReadErrors);
        drained = true;
        break;
      }
      if (static_cast<size_t>(n) >= stride_) {
        // A packet longer than the slot is cut to the slot's length
        // (drivers/net/tun.c: tun_put_user copies what fits,
        // tun_chr_read_iter returns at most the buffer's length), and a
        // read that fills the slot exactly cannot be told from one that
        // was cut; one longer than the slot would name bytes never read.
        // The slot is one byte longer than the largest packet the default
        // buffer takes, so only a packet larger than the buffer the
        // datapath was started with ends here: dropped, counted.
        counters_.add(kTunReadPackets);
        counters_.add(kEgressDropOversize);
        continue;
      }
      round_bytes += static_cast<size_t>(n);
      if (process(buf, static_cast<size_t>(n), state)) ++slot;  // else the buffer is reused
    }
    flush();
    if (drained) break;
  }
}

bool EgressPath::process(uint8_t* buf, size_t n, const ForwardingState& state) {
  const TunRead read = classify_tun_read(buf, n, vnet_hdr_, state, kMaxSegmentsPerRead);
  counters_.add(kTunReadPackets);
  counters_.add(kTunReadBytes, read.len);
  if (read.gso) counters_.add(kTunReadGsoPackets);
  const Decision& d = read.decision;
  uint8_t* pkt = read.pkt;
  if (!d.forward) {
    counters_.add(d.drop);
    handle_icmp(d, pkt, state);
    return false;
  }
  if (!has_room(read.segments)) flush();
  size_t nseg = 0;
  const SplitResult split = split_tun_packet(read.vh, pkt, d.length, headers_.get() + headers_used_,
                                             kMaxQueuedSegments * kMaxSegmentHeader - headers_used_, slices_.get(),
                                             kMaxSegmentsPerRead, &nseg, read.leave_partial);
  if (split != SplitResult::kOk || nseg == 0) {
    counters_.add(kEgressDropBadOffload);
    return false;
  }
  if (read.gso) counters_.add(kEgressSplitSegments, nseg);
  if (read.leave_partial) counters_.add(kEgressPartialChecksumPackets, nseg);
  const bool underlay6 = (d.next_hop.flags & kPeerUnderlay6) != 0;
  if (underlay6 ? (v6_sockets_ == 0 || d.next_hop.addr >= state.endpoints6.size()) : v4_sockets_ == 0) {
    counters_.add(kEgressDropSendError, nseg);  // no socket for that underlay: the control plane routed wrongly
    return false;
  }
  // The sockets of this underlay; with several (per-flow source ports), the one the inner flow hashes to.
  const size_t first = underlay6 ? v6_first_ : 0;
  const size_t count = underlay6 ? v6_sockets_ : v4_sockets_;
  uint8_t socket = static_cast<uint8_t>(first);
  if (count > 1) {
    const uint32_t hash = d.version == 6 ? flow_hash(pkt, d.length, d.header6) : flow_hash(pkt, d.length, d.header);
    socket = static_cast<uint8_t>(first + hash % count);
  }
  const Ipv6Addr addr6 = underlay6 ? state.endpoints6.addr(d.next_hop.addr) : Ipv6Addr{};
  uint8_t* headers = headers_.get() + headers_used_;
  for (size_t i = 0; i < nseg; ++i) {
    const SegmentSlice& s = slices_[i];
    queue_segment(d.next_hop, addr6, socket, s.header_len > 0 ? headers + s.header_off : nullptr, s.header_len,
                  pkt + s.payload_off, s.payload_len);
  }
  const SegmentSlice& last = slices_[nseg - 1];
  if (last.header_len > 0) headers_used_ += last.header_off + last.header_len;
  return true;
}

bool EgressPath::has_room(size_t segments) const {
  return segments_queued_ + segments <= kMaxQueuedSegments &&
         headers_used_ + segments * kMaxSegmentHeader <= kMaxQueuedSegments * kMaxSegmentHeader;
}

void EgressPath::queue_segment(const NextHop& hop, const Ipv6Addr& addr6, uint8_t socket, uint8_t* header,
                               uint16_t header_len, uint8_t* payload, uint16_t payload_len) {
  const uint32_t size = static_cast<uint32_t>(header_len) + payload_len;
  OutMessage* m = messages_ > 0 ? &out_[messages_ - 1] : nullptr;
  // Same socket and same address: an IPv4 address and an endpoint index
  // never meet on one socket.
  const bool joins = m != nullptr && shared_->offload.gso.on() && !m->closed && m->hop.addr == hop.addr &&
                     m->hop.port == hop.port && m->socket == socket && size <= m->segment_size &&
                     m->segments < kMaxGsoSegments && m->bytes + size <= kMaxGsoBytes;
  if (!joins) {
    m = &out_[messages_++];
    // A peer in GSO backoff gets one message per segment: nothing joins it.
    const bool alone = gso_backoff_.size() > 0 && gso_backoff_.suppressed(backoff_key(hop, addr6), now_ns_);
    *m = OutMessage{hop, addr6, socket, static_cast<uint32_t>(iov_used_), 0, 0, static_cast<uint16_t>(size), 0, alone};
  }
  segment_starts_[iov_used_] = true;
  if (header_len > 0) {
    iov_[iov_used_++] = {header, header_len};
    segment_starts_[iov_used_] = false;
  }
  iov_[iov_used_++] = {payload, payload_len};
  m->iov_count = static_cast<uint16_t>(iov_used_ - m->iov_first);
  m->segments++;
  m->bytes += size;
  if (size < m->segment_size) m->closed = true;
  ++segments_queued_;
}

void EgressPath::prepare_message(size_t i) {
  const OutMessage& m = out_[i];
  SockAddr& to = addrs_[i];
  struct msghdr& h = msgs_[i].msg_hdr;
  h.msg_name = &to;
  if (m.hop.flags & kPeerUnderlay6) {
    to.v6.sin6_family = AF_INET6;
    store_ipv6(to.v6.sin6_addr.s6_addr, m.addr6);
    to.v6.sin6_port = htons(m.hop.port);
    to.v6.sin6_flowinfo = 0;
    to.v6.sin6_scope_id = 0;
    h.msg_namelen = sizeof(to.v6);
  } else {
    to.v4.sin_family = AF_INET;
    to.v4.sin_addr.s_addr = htonl(m.hop.addr);
    to.v4.sin_port = htons(m.hop.port);
    h.msg_namelen = sizeof(to.v4);
  }
  h.msg_iov = &iov_[m.iov_first];
  h.msg_iovlen = m.iov_count;
  h.msg_flags = 0;
  if (m.segments > 1) {
    // One UDP_SEGMENT cmsg per call (never on a single segment: some kernels
    // refuse that: cloudflare/quiche#2552).
    h.msg_control = control_[i].bytes;
    h.msg_controllen = sizeof(control_[i].bytes);
    struct cmsghdr* c = CMSG_FIRSTHDR(&h);
    c->cmsg_level = SOL_UDP;
    c->cmsg_type = UDP_SEGMENT;
    c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
    const uint16_t size = m.segment_size;
    memcpy(CMSG_DATA(c), &size, sizeof(size));
  } else {
    h.msg_control = nullptr;
    h.msg_controllen = 0;
  }
}

void EgressPath::account_sent(const OutMessage& m) {
  counters_.add(kUdpSentPackets, m.segments);
  counters_.add(kUdpSentBytes, m.bytes);
  if (m.segments > 1) counters_.add(kUdpGsoMessages);
}

bool EgressPath::wait_writable(int fd) {
  counters_.add(kUdpSendBlocked);
  return wait_for(fd, POLLOUT, kBlockedWaitMs);
}

void EgressPath::group_by_socket() {
  const size_t n = messages_;
  size_t start[kMaxSendSockets + 1] = {};
  for (size_t i = 0; i < n; ++i) start[out_[i].socket + 1]++;
  for (size_t k = 1; k <= send_fds_.size(); ++k) start[k] += start[k - 1];
  for (size_t i = 0; i < n; ++i) sorted_[start[out_[i].socket]++] = out_[i];
  out_.swap(sorted_);
}

void EgressPath::flush() {
  const size_t n = messages_;
  if (send_fds_.size() > 1) group_by_socket();
  for (size_t i = 0; i < n; ++i) prepare_message(i);
  size_t i = 0;
  while (i < n) {
    const bool gso_message = out_[i].segments > 1;
    if (gso_message && gso_backoff_.suppressed(backoff_key(out_[i].hop, out_[i].addr6), now_ns_)) {  // refused earlier in this batch
      send_segments_singly(i++);
      continue;
    }
    int sent;
    int err = 0;
    if (gso_message && shared_->faults.take(kFaultUdpGsoSend)) {
      sent = -1;
      err = EIO;
    } else {
      // The run of messages from this one's socket; while a GSO fault is
      // pending, one message at a time so it can hit.
      size_t count = 1;
      if (!shared_->faults.armed(kFaultUdpGsoSend)) {
        while (i + count < n && out_[i + count].socket == out_[i].socket) ++count;
      }
      counters_.add(kUdpSendCalls);
      sent = sendmmsg(send_fds_[out_[i].socket], &msgs_[i], static_cast<unsigned>(count), 0);
      if (sent < 0) err = errno;
    }
    if (sent > 0) {
      for (size_t k = i; k < i + static_cast<size_t>(sent); ++k) account_sent(out_[k]);
      i += static_cast<size_t>(sent);
      continue;
    }
    if (err == EINTR) continue;
    if (err == EAGAIN) {
      if (wait_writable(send_fds_[out_[i].socket])) continue;
      // Stopping, or still full after the wait: drop what is left.
      for (size_t k = i; k < n; ++k) counters_.add(kEgressDropSendError, out_[k].segments);
      break;
    }
    if (gso_message && (err == EIO || err == EINVAL || err == EMSGSIZE)) {
      // The kernel would not segment this send: for this peer's path (its
      // MTU below the segment size) or for the device (no checksum offload
      // gives EIO). This peer goes unsegmented for a while; the message
      // goes out now, one datagram per segment.
      gso_backoff_.suppress(backoff_key(out_[i].hop, out_[i].addr6), now_ns_ + kGsoRetryNs, now_ns_);
      counters_.add(kOffloadGsoFailures);
      send_segments_singly(i++);
      continue;
    }
    // The kernel refused message i (EHOSTUNREACH, ENETUNREACH, EMSGSIZE, ...).
    counters_.add(kEgressDropSendError, out_[i].segments);
    ++i;
  }
  messages_ = 0;
  iov_used_ = 0;
  segments_queued_ = 0;
  headers_used_ = 0;
}

void EgressPath::send_segments_singly(size_t i) {
  const OutMessage& m = out_[i];
  const int fd = send_fds_[m.socket];
  struct msghdr h;
  memset(&h, 0, sizeof(h));
  h.msg_name = &addrs_[i];
  h.msg_namelen = msgs_[i].msg_hdr.msg_namelen;  // as prepare_message set it
  size_t v = m.iov_first;
  const size_t end = m.iov_first + m.iov_count;
  while (v < end) {
    size_t w = v + 1;
    while (w < end && !segment_starts_[w]) ++w;
    h.msg_iov = &iov_[v];
    h.msg_iovlen = w - v;
    size_t bytes = 0;
    for (size_t k = v; k < w; ++k) bytes += iov_[k].iov_len;
    for (;;) {
      counters_.add(kUdpSendCalls);
      if (sendmsg(fd, &h, 0) >= 0) {
        counters_.add(kUdpSentPackets);
        counters_.add(kUdpSentBytes, bytes);
        break;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN && wait_writable(fd)) continue;
      counters_.add(kEgressDropSendError);
      break;
    }
    v = w;
  }
}

}  // namespace flannel
