// What every path of the udp datapath shares (Linux): the counters it owns,
// the wait on its fd or the stop signal, TUN writes with or without a
// virtio-net header, and ICMP error generation. A worker's paths run in its
// one loop (forwarder_linux.h), each with its own counters.
#pragma once

#include <sys/uio.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "../core/counters.h"
#include "../core/forwarding.h"
#include "../core/icmp.h"
#include "../core/icmpv6.h"
#include "../core/state_publisher.h"
#include "../core/token_bucket.h"
#include "../core/virtio_net.h"
#include "offload_linux.h"
#include "test_faults_linux.h"

namespace flannel {

struct ForwarderConfig;

// CLOCK_MONOTONIC_COARSE in ns (cheap: no syscall through the vDSO).
uint64_t monotonic_coarse_ns();
// CLOCK_MONOTONIC in ns (through the vDSO; finer than the coarse clock, whose
// tick is a jiffy: busy polling measures microseconds).
uint64_t monotonic_ns();

// Counters owned by one thread: written only by it (relaxed stores), read by
// any thread (relaxed loads) for a snapshot.
struct alignas(64) CounterBlock {
  std::atomic<uint64_t> value[kCounterCount];
  // CLOCK_MONOTONIC_COARSE ns of the owning thread's last loop iteration
  // (at least every kIdleWakeMs while idle): its liveness, for /healthz.
  std::atomic<uint64_t> heartbeat_ns{0};
  CounterBlock() {
    for (auto& v : value) v.store(0, std::memory_order_relaxed);
  }
  void add(Counter c, uint64_t n = 1) {
    value[c].store(value[c].load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
};

// One Forwarder's state that all its threads see.
struct SharedContext {
  const ForwarderConfig* config = nullptr;
  StatePublisher<ForwardingState>* publisher = nullptr;
  int stop_fd = -1;
  std::atomic<bool> stopping{false};
  OffloadState offload;
  // A TUN write marked NEEDS_CSUM was refused: partial checksums from peers
  // are completed in software from then on.
  std::atomic<bool> partial_writes_failed{false};
  // Test build only (test_faults_linux.h); constant false in the release addon.
  TestFaults faults;
};

class DatapathThread {
 public:
  static constexpr int kMaxBatchesPerWake = 16;

  DatapathThread(SharedContext* shared, int tun_fd, CounterBlock* counters);
  DatapathThread(const DatapathThread&) = delete;
  DatapathThread& operator=(const DatapathThread&) = delete;

  // Records that this path is making progress (see CounterBlock::heartbeat_ns);
  // the worker's loop calls it on every iteration.
  void beat() { counters_.heartbeat_ns.store(monotonic_coarse_ns(), std::memory_order_relaxed); }

 protected:
  // Waits until `fd` has `events` or stop is requested. Returns false on stop
  // or timeout.
  bool wait_for(int fd, short events, int timeout_ms);
  // Writes `iovcnt` iovecs (`total` bytes, virtio header included when the
  // TUN has them) as one packet; waits (bounded) while the TUN queue is full.
  // Returns 0 or the errno. A TUN write is all or nothing.
  int write_tun(const struct iovec* iov, int iovcnt, size_t total);
  // One plain packet: prefixed with a zero virtio header when the TUN has
  // them (no offload requested for it).
  int write_tun_packet(const uint8_t* pkt, size_t len);
  // Writes the ICMP (or ICMPv6) error `d` asks for into the TUN, rate limited.
  void handle_icmp(const Decision& d, const uint8_t* pkt, const ForwardingState& state);
  bool stopping() const { return shared_->stopping.load(std::memory_order_relaxed); }

  SharedContext* shared_;
  const ForwarderConfig& config_;
  const int tun_fd_;
  const bool vnet_hdr_;
  CounterBlock& counters_;

 private:
  TokenBucket icmp_bucket_;
  uint8_t icmp_[kIcmpErrorMaxLen > kIcmpv6ErrorMaxLen ? kIcmpErrorMaxLen : kIcmpv6ErrorMaxLen];
};

// How long a thread waits for a full socket or TUN queue to drain before it
// drops what it holds (counted), so a wedged peer path cannot stall the other
// traffic forever.
constexpr int kBlockedWaitMs = 200;

// How long an idle thread sleeps before it wakes to beat(): a thread whose
// heartbeat is much older than this is stuck.
constexpr int kIdleWakeMs = 1000;

}  // namespace flannel
