#include "datapath_thread_linux.h"

#include <errno.h>
#include <poll.h>
#include <time.h>
#include <unistd.h>

#include "forwarder_linux.h"

namespace flannel {

uint64_t monotonic_coarse_ns() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

uint64_t monotonic_ns() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

namespace {

// A virtio header asking nothing of the kernel: a complete packet whose
// checksums are already right (flags 0, GSO_NONE).
const uint8_t kZeroVirtioHdr[kVirtioNetHdrLen] = {};

}  // namespace

DatapathThread::DatapathThread(SharedContext* shared, int tun_fd, CounterBlock* counters)
    : shared_(shared),
      config_(*shared->config),
      tun_fd_(tun_fd),
      vnet_hdr_(shared->config->vnet_hdr),
      counters_(*counters),
      icmp_bucket_(shared->config->icmp_rate_per_sec, shared->config->icmp_burst) {}

bool DatapathThread::wait_for(int fd, short events, int timeout_ms) {
  struct pollfd fds[2] = {{fd, events, 0}, {shared_->stop_fd, POLLIN, 0}};
  for (;;) {
    const int r = poll(fds, 2, timeout_ms);
    if (r < 0 && errno == EINTR) continue;
    if (fds[1].revents != 0 || stopping()) return false;
    return r > 0;
  }
}

int DatapathThread::write_tun(const struct iovec* iov, int iovcnt, size_t total) {
  for (;;) {
    counters_.add(kTunWriteCalls);
    const ssize_t w = writev(tun_fd_, iov, iovcnt);
    if (w == static_cast<ssize_t>(total)) return 0;
    if (w >= 0) return EIO;  // a TUN write is never partial; treat one as a failure
    const int err = errno;
    if (err == EINTR) continue;
    if (err == EAGAIN) {
      counters_.add(kTunWriteBlocked);
      if (wait_for(tun_fd_, POLLOUT, kBlockedWaitMs)) continue;
    }
    return err;
  }
}

int DatapathThread::write_tun_packet(const uint8_t* pkt, size_t len) {
  struct iovec iov[2];
  int n = 0;
  if (vnet_hdr_) iov[n++] = {const_cast<uint8_t*>(kZeroVirtioHdr), kVirtioNetHdrLen};
  iov[n++] = {const_cast<uint8_t*>(pkt), len};
  return write_tun(iov, n, len + (vnet_hdr_ ? kVirtioNetHdrLen : 0));
}

void DatapathThread::handle_icmp(const Decision& d, const uint8_t* pkt, const ForwardingState& state) {
  switch (d.icmp) {
    case IcmpAction::kNone:
      return;
    case IcmpAction::kSuppressed:
      counters_.add(kIcmpSuppressed);
      return;
    case IcmpAction::kSend:
      break;
  }
  if (!icmp_bucket_.allow(monotonic_coarse_ns())) {
    counters_.add(kIcmpRateLimited);
    return;
  }
  // ICMPv6 errors come from the TUN's IPv6 address, the own v6 subnet's network address.
  const size_t n = d.version == 6 ? build_icmpv6_error(d.icmp6_kind, pkt, d.header6, state.policy.own_subnet6.network, icmp_, sizeof(icmp_))
                                  : build_icmp_error(d.icmp_kind, pkt, d.header, config_.icmp_source, icmp_, sizeof(icmp_));
  // The error goes into the TUN: the kernel routes it to the offender's
  // source, locally or back out through flannel0 (docs/compatibility.md §5.6).
  if (n == 0 || write_tun_packet(icmp_, n) != 0) {
    counters_.add(kIcmpWriteError);
    return;
  }
  const bool expired = d.version == 6 ? d.icmp6_kind == Icmpv6Error::kHopLimitExceeded : d.icmp_kind == IcmpError::kTimeExceeded;
  counters_.add(expired ? kIcmpTimeExceededSent : kIcmpNetUnreachableSent);
}

}  // namespace flannel
