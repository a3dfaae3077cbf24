#include "forwarder_linux.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <new>

namespace flannel {

namespace {

uint64_t monotonic_ns() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

// How long a thread waits for a full socket or TUN queue to drain before it
// drops what it holds (counted), so a wedged peer path cannot stall the other
// traffic forever.
constexpr int kBlockedWaitMs = 200;

}  // namespace

// ---------------------------------------------------------------------------
// UnknownSourceLog

bool UnknownSourceLog::note(uint32_t addr) {
  constexpr size_t mask = kCapacity - 1;
  static_assert((kCapacity & mask) == 0, "capacity must be a power of two");
  size_t i = static_cast<size_t>((addr * 2654435769u) >> 22) & mask;
  for (;; i = (i + 1) & mask) {
    if (!seen_used_[i]) break;
    if (seen_[i] == addr) return false;
  }
  // Keep the table at most 3/4 full so probing terminates quickly.
  if (seen_count_ >= kCapacity / 4 * 3) return false;
  const size_t head = head_.load(std::memory_order_relaxed);
  if (head - tail_.load(std::memory_order_acquire) >= kRing) return false;  // report later
  seen_used_[i] = true;
  seen_[i] = addr;
  ++seen_count_;
  ring_[head % kRing] = addr;
  head_.store(head + 1, std::memory_order_release);
  return true;
}

size_t UnknownSourceLog::drain(uint32_t* out, size_t max) {
  size_t tail = tail_.load(std::memory_order_relaxed);
  const size_t head = head_.load(std::memory_order_acquire);
  size_t n = 0;
  while (tail != head && n < max) out[n++] = ring_[tail++ % kRing];
  tail_.store(tail, std::memory_order_release);
  return n;
}

// ---------------------------------------------------------------------------
// Forwarder

bool Forwarder::Arena::allocate(size_t batch, size_t buffer_size) {
  bytes.reset(new (std::nothrow) uint8_t[batch * buffer_size]);
  iov.reset(new (std::nothrow) struct iovec[batch]);
  msgs.reset(new (std::nothrow) struct mmsghdr[batch]);
  addrs.reset(new (std::nothrow) struct sockaddr_in[batch]);
  if (!bytes || !iov || !msgs || !addrs) return false;
  memset(msgs.get(), 0, sizeof(struct mmsghdr) * batch);
  memset(addrs.get(), 0, sizeof(struct sockaddr_in) * batch);
  for (size_t i = 0; i < batch; ++i) {
    iov[i].iov_base = buffer(i, buffer_size);
    iov[i].iov_len = buffer_size;
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
    msgs[i].msg_hdr.msg_name = &addrs[i];
    msgs[i].msg_hdr.msg_namelen = sizeof(struct sockaddr_in);
    addrs[i].sin_family = AF_INET;
  }
  return true;
}

Forwarder::Forwarder(const ForwarderConfig& config, StatePublisher<ForwardingState>* publisher)
    : config_(config), publisher_(publisher) {}

Forwarder::~Forwarder() { stop(); }

SysResult Forwarder::start() {
  if (!egress_arena_.allocate(config_.batch_size, config_.buffer_size) ||
      !ingress_arena_.allocate(config_.batch_size, config_.buffer_size)) {
    return SysResult::failure(ENOMEM, "allocate buffers");
  }
  stop_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (stop_fd_ < 0) return SysResult::failure(errno, "eventfd");
  egress_slot_ = publisher_->register_reader();
  ingress_slot_ = publisher_->register_reader();
  if (egress_slot_ < 0 || ingress_slot_ < 0) {
    if (egress_slot_ >= 0) publisher_->unregister_reader(egress_slot_);
    if (ingress_slot_ >= 0) publisher_->unregister_reader(ingress_slot_);
    egress_slot_ = ingress_slot_ = -1;
    close(stop_fd_);
    stop_fd_ = -1;
    return SysResult::failure(EMFILE, "register reader");
  }
  egress_thread_ = std::thread([this] { egress_loop(); });
  ingress_thread_ = std::thread([this] { ingress_loop(); });
  pthread_setname_np(egress_thread_.native_handle(), "flannel-egress");
  pthread_setname_np(ingress_thread_.native_handle(), "flannel-ingress");
  return SysResult::success();
}

void Forwarder::stop() {
  if (stop_fd_ < 0) return;
  stopping_.store(true);
  const uint64_t one = 1;
  ssize_t ignored = write(stop_fd_, &one, sizeof(one));
  (void)ignored;
  if (egress_thread_.joinable()) egress_thread_.join();
  if (ingress_thread_.joinable()) ingress_thread_.join();
  publisher_->unregister_reader(egress_slot_);
  publisher_->unregister_reader(ingress_slot_);
  egress_slot_ = ingress_slot_ = -1;
  close(stop_fd_);
  stop_fd_ = -1;
}

void Forwarder::snapshot(uint64_t out[kCounterCount]) const {
  for (size_t i = 0; i < kCounterCount; ++i) {
    out[i] = egress_counters_.value[i].load(std::memory_order_relaxed) +
             ingress_counters_.value[i].load(std::memory_order_relaxed);
  }
}

bool Forwarder::wait_for(int fd, short events, int timeout_ms) {
  struct pollfd fds[2] = {{fd, events, 0}, {stop_fd_, POLLIN, 0}};
  for (;;) {
    const int r = poll(fds, 2, timeout_ms);
    if (r < 0 && errno == EINTR) continue;
    if (fds[1].revents != 0 || stopping_.load(std::memory_order_relaxed)) return false;
    return r > 0;
  }
}

void Forwarder::handle_icmp(const Decision& d, const uint8_t* pkt, TokenBucket& bucket,
                            Arena& arena, CounterBlock& counters) {
  switch (d.icmp) {
    case IcmpAction::kNone:
      return;
    case IcmpAction::kSuppressed:
      counters.add(kIcmpSuppressed);
      return;
    case IcmpAction::kSend:
      break;
  }
  if (!bucket.allow(monotonic_ns())) {
    counters.add(kIcmpRateLimited);
    return;
  }
  const size_t n =
      build_icmp_error(d.icmp_kind, pkt, d.header, config_.icmp_source, arena.icmp, sizeof(arena.icmp));
  // The error goes into the TUN: the kernel routes it to the offender's
  // source, locally or back out through flannel0 (compat §5.6).
  if (n == 0 || write(config_.tun_fd, arena.icmp, n) != static_cast<ssize_t>(n)) {
    counters.add(kIcmpWriteError);
    return;
  }
  counters.add(d.icmp_kind == IcmpError::kNetUnreachable ? kIcmpNetUnreachableSent
                                                         : kIcmpTimeExceededSent);
}

void Forwarder::egress_loop() {
  Arena& arena = egress_arena_;
  CounterBlock& counters = egress_counters_;
  TokenBucket icmp_bucket(config_.icmp_rate_per_sec, config_.icmp_burst);
  const size_t buffer_size = config_.buffer_size;

  while (!stopping_.load(std::memory_order_relaxed)) {
    publisher_->idle(egress_slot_);
    if (!wait_for(config_.tun_fd, POLLIN, -1)) break;
    for (int round = 0; round < kMaxBatchesPerWake; ++round) {
      const ForwardingState* state = publisher_->read(egress_slot_);
      size_t queued = 0;
      bool drained = false;
      while (queued < config_.batch_size) {
        uint8_t* pkt = arena.buffer(queued, buffer_size);
        const ssize_t len = read(config_.tun_fd, pkt, buffer_size);
        if (len < 0) {
          if (errno == EINTR) continue;
          if (errno != EAGAIN) counters.add(kTunReadErrors);
          drained = true;
          break;
        }
        counters.add(kTunReadPackets);
        counters.add(kTunReadBytes, static_cast<uint64_t>(len));
        const Decision d = decide_egress(pkt, static_cast<size_t>(len), *state);
        if (!d.forward) {
          counters.add(d.drop);
          handle_icmp(d, pkt, icmp_bucket, arena, counters);
          continue;  // the buffer is reused for the next read
        }
        arena.iov[queued].iov_len = d.length;
        struct sockaddr_in& to = arena.addrs[queued];
        to.sin_addr.s_addr = htonl(d.next_hop.addr);
        to.sin_port = htons(d.next_hop.port);
        ++queued;
      }
      send_batch(queued);
      if (drained) break;
    }
  }
}

void Forwarder::send_batch(size_t n) {
  Arena& arena = egress_arena_;
  CounterBlock& counters = egress_counters_;
  size_t i = 0;
  while (i < n) {
    const int sent = sendmmsg(config_.udp_fd, &arena.msgs[i], static_cast<unsigned>(n - i), 0);
    if (sent > 0) {
      for (size_t k = i; k < i + static_cast<size_t>(sent); ++k) {
        counters.add(kUdpSentPackets);
        counters.add(kUdpSentBytes, arena.iov[k].iov_len);
      }
      i += static_cast<size_t>(sent);
      continue;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN) {
      counters.add(kUdpSendBlocked);
      if (wait_for(config_.udp_fd, POLLOUT, kBlockedWaitMs)) continue;
      // Stopping, or still full after the wait: drop what is left.
      counters.add(kEgressDropSendError, n - i);
      return;
    }
    // The kernel refused message i (EHOSTUNREACH, ENETUNREACH, EMSGSIZE, ...).
    counters.add(kEgressDropSendError);
    ++i;
  }
}

bool Forwarder::write_tun(const uint8_t* pkt, size_t len, CounterBlock& counters) {
  for (;;) {
    const ssize_t w = write(config_.tun_fd, pkt, len);
    if (w == static_cast<ssize_t>(len)) return true;
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && errno == EAGAIN) {
      counters.add(kTunWriteBlocked);
      if (wait_for(config_.tun_fd, POLLOUT, kBlockedWaitMs)) continue;
    }
    return false;
  }
}

void Forwarder::ingress_loop() {
  Arena& arena = ingress_arena_;
  CounterBlock& counters = ingress_counters_;
  TokenBucket icmp_bucket(config_.icmp_rate_per_sec, config_.icmp_burst);
  const size_t batch = config_.batch_size;

  while (!stopping_.load(std::memory_order_relaxed)) {
    publisher_->idle(ingress_slot_);
    if (!wait_for(config_.udp_fd, POLLIN, -1)) break;
    for (int round = 0; round < kMaxBatchesPerWake; ++round) {
      const ForwardingState* state = publisher_->read(ingress_slot_);
      for (size_t k = 0; k < batch; ++k) {
        arena.msgs[k].msg_hdr.msg_namelen = sizeof(struct sockaddr_in);
        arena.msgs[k].msg_hdr.msg_flags = 0;
      }
      const int got = recvmmsg(config_.udp_fd, arena.msgs.get(), static_cast<unsigned>(batch),
                               MSG_DONTWAIT, nullptr);
      if (got < 0) {
        if (errno == EINTR) continue;
        if (errno != EAGAIN) counters.add(kUdpReceiveErrors);
        break;
      }
      for (int k = 0; k < got; ++k) {
        const struct mmsghdr& m = arena.msgs[k];
        uint8_t* pkt = static_cast<uint8_t*>(arena.iov[k].iov_base);
        const size_t len = m.msg_len;
        counters.add(kUdpReceivedPackets);
        counters.add(kUdpReceivedBytes, len);
        if (m.msg_hdr.msg_flags & MSG_TRUNC) {
          counters.add(kIngressDropOversize);
          continue;
        }
        const uint32_t source = ntohl(arena.addrs[k].sin_addr.s_addr);
        const Decision d = decide_ingress(pkt, len, source, *state);
        if (!d.forward) {
          counters.add(d.drop);
          if (d.drop == kIngressDropUnknownSource) unknown_.note(source);
          handle_icmp(d, pkt, icmp_bucket, arena, counters);
          continue;
        }
        if (write_tun(pkt, d.length, counters)) {
          counters.add(kTunWrittenPackets);
          counters.add(kTunWrittenBytes, d.length);
        } else {
          counters.add(kIngressDropTunWriteError);
        }
      }
      if (static_cast<size_t>(got) < batch) break;
    }
  }
}

}  // namespace flannel
