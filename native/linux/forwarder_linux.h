// The udp backend's forwarding threads (Linux): TUN -> UDP ("egress") and
// UDP -> TUN ("ingress"), batched with sendmmsg/recvmmsg.
//
// Contract:
//  - Every buffer, iovec, mmsghdr and address the loops use is allocated in
//    start(); nothing is allocated per packet, and no JavaScript runs.
//  - Routes and known peers come from a StatePublisher the control side owns;
//    the threads read it lock-free once per batch.
//  - Work per wakeup is bounded (kMaxBatchesPerWake), so stop() is noticed
//    promptly even under full load.
//  - Every packet read ends in exactly one counter: sent/written, or a drop
//    reason (core/counters.h).
//  - The fds are borrowed: the Forwarder never closes them.
#pragma once

#include <sys/socket.h>
#include <netinet/in.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <thread>

#include "../core/counters.h"
#include "../core/forwarding.h"
#include "../core/state_publisher.h"
#include "../core/token_bucket.h"
#include "sys_result.h"

namespace flannel {

struct ForwarderConfig {
  int tun_fd = -1;
  int udp_fd = -1;
  uint32_t icmp_source = 0;         // host order; the TUN address (compat §5.6)
  uint32_t icmp_rate_per_sec = 100;  // generated ICMP errors per second and thread
  uint32_t icmp_burst = 50;
  size_t batch_size = 64;      // packets per sendmmsg/recvmmsg
  size_t buffer_size = 65536;  // bytes per packet buffer: any IPv4 packet fits
};

// Counters owned by one thread: written only by it (relaxed stores), read by
// any thread (relaxed loads) for a snapshot.
struct alignas(64) CounterBlock {
  std::atomic<uint64_t> value[kCounterCount];
  CounterBlock() {
    for (auto& v : value) v.store(0, std::memory_order_relaxed);
  }
  void add(Counter c, uint64_t n = 1) {
    value[c].store(value[c].load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
};

// Source addresses that sent a datagram rejected by the source check, each
// reported once (up to kCapacity distinct addresses; later new ones are only
// counted). Single producer (the ingress thread), single consumer (drain).
class UnknownSourceLog {
 public:
  static constexpr size_t kCapacity = 1024;  // distinct addresses remembered
  static constexpr size_t kRing = 256;       // undrained reports kept

  // Producer: returns true when `addr` was newly queued for reporting.
  bool note(uint32_t addr);
  // Consumer: moves up to `max` queued addresses into `out`.
  size_t drain(uint32_t* out, size_t max);

 private:
  uint32_t seen_[kCapacity] = {};
  bool seen_used_[kCapacity] = {};
  size_t seen_count_ = 0;
  uint32_t ring_[kRing] = {};
  std::atomic<size_t> head_{0};  // next write (producer)
  std::atomic<size_t> tail_{0};  // next read (consumer)
};

class Forwarder {
 public:
  static constexpr int kMaxBatchesPerWake = 16;

  Forwarder(const ForwarderConfig& config, StatePublisher<ForwardingState>* publisher);
  Forwarder(const Forwarder&) = delete;
  Forwarder& operator=(const Forwarder&) = delete;
  ~Forwarder();

  // Allocates the arenas and starts both threads. Failing operations:
  // "eventfd", "register reader", "allocate buffers".
  SysResult start();
  // Signals both threads and joins them. Idempotent.
  void stop();

  // Sums of both threads' counters, indexed by Counter.
  void snapshot(uint64_t out[kCounterCount]) const;
  size_t drain_unknown_sources(uint32_t* out, size_t max) { return unknown_.drain(out, max); }

 private:
  // One direction's preallocated batch: buffers, iovecs, headers, addresses.
  struct Arena {
    std::unique_ptr<uint8_t[]> bytes;
    std::unique_ptr<struct iovec[]> iov;
    std::unique_ptr<struct mmsghdr[]> msgs;
    std::unique_ptr<struct sockaddr_in[]> addrs;
    uint8_t icmp[128];  // one generated ICMP error (kIcmpErrorMaxLen fits)
    bool allocate(size_t batch, size_t buffer_size);
    uint8_t* buffer(size_t i, size_t buffer_size) { return bytes.get() + i * buffer_size; }
  };

  void egress_loop();
  void ingress_loop();
  // Sends msgs[0..n) of the egress arena; waits (bounded) when the socket
  // buffer is full, and counts a drop for each message the kernel refuses.
  void send_batch(size_t n);
  // Writes one packet to the TUN; false when it was dropped (counted by caller).
  bool write_tun(const uint8_t* pkt, size_t len, CounterBlock& counters);
  void handle_icmp(const Decision& d, const uint8_t* pkt, TokenBucket& bucket, Arena& arena,
                   CounterBlock& counters);
  // Waits until `fd` has `events` or stop is requested. Returns false on stop.
  bool wait_for(int fd, short events, int timeout_ms);

  ForwarderConfig config_;
  StatePublisher<ForwardingState>* publisher_;
  int stop_fd_ = -1;
  std::atomic<bool> stopping_{false};
  std::thread egress_thread_;
  std::thread ingress_thread_;
  Arena egress_arena_;
  Arena ingress_arena_;
  CounterBlock egress_counters_;
  CounterBlock ingress_counters_;
  UnknownSourceLog unknown_;
  int egress_slot_ = -1;
  int ingress_slot_ = -1;
};

}  // namespace flannel
