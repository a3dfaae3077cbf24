// The udp backend's forwarding workers (Linux). Each worker owns one TUN
// queue and one UDP socket (with the IPv6 underlay also an IPv6 socket) and
// runs one thread: a loop that polls them all and serves what is ready, TUN
// -> UDP ("egress", native/linux/egress_linux.h) and UDP -> TUN ("ingress",
// native/linux/ingress_linux.h). One thread rather than one per direction:
// a reply that enters and leaves through one worker meets a thread that
// just ran, and there are half as many threads to wake and schedule.
//
// Busy polling (busy_poll_ns > 0): after a wakeup that found work, the loop
// keeps polling without sleeping for that long before it blocks. On a
// virtual machine waking a halted vCPU costs tens of microseconds, and a
// round trip through two nodes takes four such wakeups; spinning trades CPU
// for that latency, as the kernel's SO_BUSY_POLL does (off by default).
//
// Contract:
//  - Every buffer, iovec, mmsghdr and address the loops use is allocated in
//    start(); nothing is allocated per packet, and no JavaScript runs.
//  - Routes and known peers come from a StatePublisher the control side owns;
//    the threads read it lock-free once per batch.
//  - Work per wakeup is bounded, so stop() is noticed promptly even under
//    full load.
//  - Every packet read ends in exactly one counter: sent/written, or a drop
//    reason (core/counters.h).
//  - Flows are never reordered: the kernel picks a TUN queue per flow for
//    what we read, and a socket per outer address pair (so per peer) for
//    what we receive; each queue and socket has exactly one reader.
//  - The fds are borrowed: the Forwarder never closes them.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <thread>
#include <unordered_set>
#include <vector>

#include "../core/counters.h"
#include "../core/forwarding.h"
#include "../core/refusal_log.h"
#include "../core/state_publisher.h"
#include "datapath_thread_linux.h"
#include "offload_linux.h"
#include "sys_result.h"

namespace flannel {

struct ForwarderConfig {
  std::vector<int> tun_fds;  // one TUN queue per worker
  std::vector<int> udp_fds;  // one socket per worker (same count), or none (IPv6 underlay only)
  // The IPv6 underlay: one AF_INET6 socket per worker, or none. Each gets
  // its own receiving thread; the egress thread sends IPv6-underlay
  // datagrams from it.
  std::vector<int> udp6_fds;
  std::vector<int> source6_fds;  // the per-flow source ports over IPv6 (empty: from Port)
  // The per-flow source port sockets, shared by every worker's sending
  // thread (empty: each worker sends from its own socket on Port).
  std::vector<int> source_fds;
  bool vnet_hdr = false;     // the TUN was opened with IFF_VNET_HDR
  OffloadRequest offload;    // what may be used; start() probes it
  uint32_t test_faults = 0;  // TestFault bits, armed at start (test build only: test_faults_linux.h)
  uint32_t icmp_source = 0;         // host order; the TUN address (docs/compatibility.md §5.6)
  uint32_t icmp_rate_per_sec = 100;  // generated ICMP errors per second, per worker and direction
  uint32_t icmp_burst = 50;
  // How long a worker's loop keeps polling without sleeping after work (0: never).
  uint64_t busy_poll_ns = 0;
  size_t batch_size = 64;      // TUN reads per send flush; messages per recvmmsg
  size_t buffer_size = 65536;  // bytes per packet buffer: any IPv4 packet fits
};

class EgressPath;
class IngressPath;

class Forwarder {
 public:
  Forwarder(const ForwarderConfig& config, StatePublisher<ForwardingState>* publisher);
  Forwarder(const Forwarder&) = delete;
  Forwarder& operator=(const Forwarder&) = delete;
  ~Forwarder();

  // Probes the offloads (TUNSETOFFLOAD, UDP_SEGMENT, UDP_GRO), allocates the
  // arenas and starts every worker's threads. Failing operations: "check
  // worker fds", "eventfd", "register reader", "allocate buffers". Offloads
  // the kernel refuses are switched off, not failures.
  SysResult start();
  // Signals every thread and joins them. Idempotent.
  void stop();

  // Sums of every thread's counters, indexed by Counter.
  void snapshot(uint64_t out[kCounterCount]) const;
  // Refusals from every worker's threads since the last call, each (sender,
  // reason) once while remembered: a pair several threads report comes once;
  // after kMaxReported pairs the memory starts again, so a pair may come
  // again (the control side logs each once: src/backends/udp/source-check.ts).
  size_t drain_refusals(Refusal* out, size_t max);
  const OffloadState& offload() const { return shared_.offload; }
  // Milliseconds since the least recent heartbeat of any worker's path (each
  // worker's loop beats for all its paths on every iteration).
  double oldest_heartbeat_age_ms() const;
  size_t workers() const { return workers_.size(); }

 private:
  struct Worker {
    Worker();
    ~Worker();
    CounterBlock egress_counters;
    CounterBlock ingress_counters;
    CounterBlock ingress6_counters;
    RefusalLog refusals;
    RefusalLog refusals6;
    std::unique_ptr<EgressPath> egress;
    std::unique_ptr<IngressPath> ingress;
    std::unique_ptr<IngressPath> ingress6;  // the IPv6 underlay's socket, when there is one
    std::thread thread;  // the worker's loop
    int reader_slot = -1;  // the worker's StatePublisher reader, shared by its paths
  };

  void probe_offloads();
  // The worker's thread: polls its TUN queue, sockets and the stop signal,
  // and serves whichever is ready.
  void run_worker_loop(Worker& w);
  void release_readers();

  ForwarderConfig config_;
  SharedContext shared_;
  std::vector<std::unique_ptr<Worker>> workers_;
  static constexpr size_t kMaxReported = 4096;
  std::unordered_set<uint64_t> reported_;  // (sender << 32 | reason), control thread only
  bool started_ = false;
};

}  // namespace flannel
