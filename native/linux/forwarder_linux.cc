#include "forwarder_linux.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <new>

#include "egress_linux.h"
#include "ingress_linux.h"
#include "tun_linux.h"
#include "udp_socket_linux.h"

namespace flannel {

// ---------------------------------------------------------------------------
// Forwarder

Forwarder::Worker::Worker() = default;
Forwarder::Worker::~Worker() = default;

Forwarder::Forwarder(const ForwarderConfig& config, StatePublisher<ForwardingState>* publisher)
    : config_(config) {
  shared_.config = &config_;
  shared_.publisher = publisher;
}

Forwarder::~Forwarder() { stop(); }

void Forwarder::probe_offloads() {
  OffloadState& o = shared_.offload;
  const OffloadRequest& want = config_.offload;
  o.vnet_hdr = config_.vnet_hdr;
  const int tun = config_.tun_fds[0];

  // TUN offloads need the virtio header: they are what it describes.
  unsigned flags = 0;
  if (want.tso && config_.vnet_hdr) {
    const unsigned tso = kTunOffloadCsum | kTunOffloadTso4 | kTunOffloadTso6 | kTunOffloadTsoEcn;
    const int err = shared_.faults.take(kFaultTunTso) ? EINVAL : set_tun_offload(tun, tso);
    if (err == 0) {
      flags = tso;
      o.tso.set(OffloadStatus::kOn);
    } else {
      o.tso.set(OffloadStatus::kRefusedAtStart, err);
    }
  }
  if (want.uso && config_.vnet_hdr) {
    // The kernel accepts USO4 only together with USO6 (drivers/net/tun.c,
    // set_offload: TUN_F_USO4 and TUN_F_USO6 are checked as a pair).
    const unsigned with_uso = flags | kTunOffloadCsum | kTunOffloadUso4 | kTunOffloadUso6;
    const int err = shared_.faults.take(kFaultTunUso) ? EINVAL : set_tun_offload(tun, with_uso);
    if (err == 0) {
      flags = with_uso;
      o.uso.set(OffloadStatus::kOn);
    } else {
      o.uso.set(OffloadStatus::kRefusedAtStart, err);
    }
  }
  // Leave the device with exactly what was accepted (0: complete packets
  // with finished checksums, as without a virtio header).
  if (config_.vnet_hdr) set_tun_offload(tun, flags);

  if (want.gso) {
    int err = 0;
    for (int fd : config_.udp_fds) {
      if (err == 0) err = probe_udp_gso(fd);
    }
    for (int fd : config_.source_fds) {
      if (err == 0) err = probe_udp_gso(fd);
    }
    for (int fd : config_.udp6_fds) {
      if (err == 0) err = probe_udp_gso(fd);
    }
    for (int fd : config_.source6_fds) {
      if (err == 0) err = probe_udp_gso(fd);
    }
    o.gso.set(err == 0 ? OffloadStatus::kOn : OffloadStatus::kRefusedAtStart, err);
  }
  if (want.gro) {
    int err = shared_.faults.take(kFaultUdpGro) ? ENOPROTOOPT : 0;
    for (int fd : config_.udp_fds) {
      if (err == 0) err = enable_udp_gro(fd);
    }
    for (int fd : config_.udp6_fds) {
      if (err == 0) err = enable_udp_gro(fd);
    }
    o.udp_gro.set(err == 0 ? OffloadStatus::kOn : OffloadStatus::kRefusedAtStart, err);
    // Coalesced writes need the virtio header to say "this is a GSO packet".
    if (config_.vnet_hdr) o.gro.set(OffloadStatus::kOn);
  }
}

SysResult Forwarder::start() {
  const size_t n = config_.tun_fds.size();
  const bool underlay4 = !config_.udp_fds.empty();
  const bool underlay6 = !config_.udp6_fds.empty();
  if (n == 0 || (!underlay4 && !underlay6) || (underlay4 && config_.udp_fds.size() != n) ||
      (underlay6 && config_.udp6_fds.size() != n)) {
    return SysResult::failure(EINVAL, "check worker fds");
  }
  shared_.faults.arm(config_.test_faults);
  probe_offloads();
  for (size_t i = 0; i < n; ++i) {
    auto w = std::make_unique<Worker>();
    w->egress_counters.heartbeat_ns.store(monotonic_coarse_ns(), std::memory_order_relaxed);
    w->ingress_counters.heartbeat_ns.store(monotonic_coarse_ns(), std::memory_order_relaxed);
    w->ingress6_counters.heartbeat_ns.store(monotonic_coarse_ns(), std::memory_order_relaxed);
    w->egress = std::make_unique<EgressPath>(&shared_, config_.tun_fds[i], underlay4 ? config_.udp_fds[i] : -1,
                                             config_.source_fds, underlay6 ? config_.udp6_fds[i] : -1,
                                             config_.source6_fds, &w->egress_counters);
    if (underlay4) {
      w->ingress = std::make_unique<IngressPath>(&shared_, config_.tun_fds[i], config_.udp_fds[i], false,
                                                 &w->ingress_counters, &w->refusals);
    }
    if (underlay6) {
      w->ingress6 = std::make_unique<IngressPath>(&shared_, config_.tun_fds[i], config_.udp6_fds[i], true,
                                                  &w->ingress6_counters, &w->refusals6);
    }
    if (!w->egress->allocate() || (w->ingress && !w->ingress->allocate()) || (w->ingress6 && !w->ingress6->allocate())) {
      workers_.clear();
      return SysResult::failure(ENOMEM, "allocate buffers");
    }
    workers_.push_back(std::move(w));
  }
  shared_.stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (shared_.stop_fd < 0) {
    workers_.clear();
    return SysResult::failure(errno, "eventfd");
  }
  for (auto& w : workers_) {
    // One reader per worker: its paths run one after the other in its thread.
    w->reader_slot = shared_.publisher->register_reader();
    if (w->reader_slot < 0) {
      release_readers();
      workers_.clear();
      close(shared_.stop_fd);
      shared_.stop_fd = -1;
      return SysResult::failure(EMFILE, "register reader");
    }
  }
  for (size_t i = 0; i < n; ++i) {
    Worker& w = *workers_[i];
    w.thread = std::thread([this, &w] { run_worker_loop(w); });
    char name[16];
    snprintf(name, sizeof(name), "flannel-wrk%02u", static_cast<unsigned>(i % 100));
    pthread_setname_np(w.thread.native_handle(), name);
  }
  started_ = true;
  return SysResult::success();
}

void Forwarder::run_worker_loop(Worker& w) {
  StatePublisher<ForwardingState>& publisher = *shared_.publisher;
  enum { kTun, kUdp, kUdp6, kStop, kFds };
  struct pollfd fds[kFds] = {{w.egress->tun_fd(), POLLIN, 0},
                             {w.ingress ? w.ingress->udp_fd() : -1, POLLIN, 0},
                             {w.ingress6 ? w.ingress6->udp_fd() : -1, POLLIN, 0},
                             {shared_.stop_fd, POLLIN, 0}};
  bool worked = false;
  while (!shared_.stopping.load(std::memory_order_relaxed)) {
    publisher.idle(w.reader_slot);
    w.egress->beat();
    if (w.ingress) w.ingress->beat();
    if (w.ingress6) w.ingress6->beat();
    // Busy polling: while the last wakeup found work, poll with a zero
    // timeout (a syscall, never a sleep) for up to busy_poll_ns.
    int r = 0;
    bool spun = false;
    if (config_.busy_poll_ns > 0 && worked) {
      const uint64_t until = monotonic_ns() + config_.busy_poll_ns;
      do {
        r = poll(fds, kFds, 0);
      } while (r == 0 && monotonic_ns() < until);
      spun = r > 0;
    }
    if (r == 0) r = poll(fds, kFds, kIdleWakeMs);  // a negative fd is skipped
    if (r < 0 && errno == EINTR) continue;
    if (fds[kStop].revents != 0 || shared_.stopping.load(std::memory_order_relaxed)) break;
    worked = r > 0;
    if (r <= 0) continue;  // idle: wake to beat
    w.egress_counters.add(spun ? kWorkerBusyPollWakeups : kWorkerSleepWakeups);
    if (fds[kTun].revents != 0) w.egress->serve(w.reader_slot);
    if (fds[kUdp].revents != 0 && !w.ingress->serve(w.reader_slot)) break;
    if (fds[kUdp6].revents != 0 && !w.ingress6->serve(w.reader_slot)) break;
  }
}

void Forwarder::release_readers() {
  for (auto& w : workers_) {
    if (w->reader_slot >= 0) shared_.publisher->unregister_reader(w->reader_slot);
    w->reader_slot = -1;
  }
}

void Forwarder::stop() {
  if (!started_) return;
  started_ = false;
  shared_.stopping.store(true);
  const uint64_t one = 1;
  ssize_t ignored = write(shared_.stop_fd, &one, sizeof(one));
  (void)ignored;
  for (auto& w : workers_) {
    if (w->thread.joinable()) w->thread.join();
  }
  release_readers();
  close(shared_.stop_fd);
  shared_.stop_fd = -1;
}

void Forwarder::snapshot(uint64_t out[kCounterCount]) const {
  for (size_t i = 0; i < kCounterCount; ++i) {
    uint64_t sum = 0;
    for (const auto& w : workers_) {
      sum += w->egress_counters.value[i].load(std::memory_order_relaxed) +
             w->ingress_counters.value[i].load(std::memory_order_relaxed) +
             w->ingress6_counters.value[i].load(std::memory_order_relaxed);
    }
    out[i] = sum;
  }
  // Read from the sockets, not counted per packet: nothing reads them.
  uint64_t discarded = 0;
  for (const std::vector<int>* fds : {&config_.source_fds, &config_.source6_fds}) {
    for (int fd : *fds) discarded += socket_drops(fd);
  }
  out[kIngressDropSourcePort] += discarded;
}

double Forwarder::oldest_heartbeat_age_ms() const {
  const uint64_t now = monotonic_coarse_ns();
  uint64_t oldest = now;
  for (const auto& w : workers_) {
    for (const CounterBlock* c : {&w->egress_counters, &w->ingress_counters, &w->ingress6_counters}) {
      // A path that does not exist (no IPv4 or no IPv6 underlay) never beats.
      if ((c == &w->ingress_counters && !w->ingress) || (c == &w->ingress6_counters && !w->ingress6)) continue;
      const uint64_t t = c->heartbeat_ns.load(std::memory_order_relaxed);
      if (t < oldest) oldest = t;
    }
  }
  return static_cast<double>(now - oldest) / 1e6;
}

size_t Forwarder::drain_refusals(Refusal* out, size_t max) {
  size_t n = 0;
  for (auto& w : workers_) {
    for (RefusalLog* log : {&w->refusals, &w->refusals6}) {
      Refusal batch[RefusalLog::kRing];
      const size_t got = log->drain(batch, std::min(max - n, RefusalLog::kRing));
      for (size_t i = 0; i < got; ++i) {
        if (reported_.size() >= kMaxReported) reported_.clear();
        const uint64_t key = (static_cast<uint64_t>(batch[i].sender) << 32) | batch[i].reason;
        if (reported_.insert(key).second) out[n++] = batch[i];
      }
    }
  }
  return n;
}

}  // namespace flannel
