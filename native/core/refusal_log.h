// Refused datagrams, as the ingress threads report them to the control
// side (pure, fixed memory, no allocation).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "counters.h"
#include "ipv6.h"

namespace flannel {

// A datagram the source check refused: who sent it, why, and the inner
// packet's addresses (zero for an unknown sender: it is not parsed). Host order.
struct Refusal {
  // The sender's IPv4 address (host order), or for a sender on the IPv6
  // underlay a 32-bit fold of sender_addr6 (the key each sender is reported once by).
  uint32_t sender;
  // kIngressDropUnknownSource (no inner addresses: the datagram is not
  // parsed), kIngressDropSpoofedSource, kIngressDropForeignDestination,
  // kIngressDropMartianSource or kIngressDropIpv6SenderIncapable
  Counter reason;
  uint32_t inner_src = 0;
  uint32_t inner_dst = 0;
  uint8_t version = 4;  // the inner packet's; 6: the addresses are inner_src6 and inner_dst6
  Ipv6Addr inner_src6{};
  Ipv6Addr inner_dst6{};
  bool sender6 = false;
  Ipv6Addr sender_addr6{};
};

// Refusals to report, each (sender, reason) once while it is remembered.
// Memory is fixed: when the table of pairs seen is 3/4 full it is
// forgotten and starts again, so a flood of distinct senders keeps being
// reported (at most kRing per drain; the rest only counted) instead of
// going silent. The control side logs each pair once and summarizes the
// rest (src/backends/udp/source-check.ts). Single producer (one ingress
// thread), single consumer (drain).
class RefusalLog {
 public:
  static constexpr size_t kCapacity = 1024;  // distinct (sender, reason) pairs remembered
  static constexpr size_t kRing = 256;       // undrained reports kept

  // Producer: returns true when the refusal was newly queued for reporting.
  bool note(const Refusal& r);
  // Consumer: moves up to `max` queued refusals into `out`.
  size_t drain(Refusal* out, size_t max);

 private:
  struct Seen {
    uint32_t sender;
    Counter reason;
    bool used;
  };
  Seen seen_[kCapacity] = {};
  size_t seen_count_ = 0;
  Refusal ring_[kRing] = {};
  std::atomic<size_t> head_{0};  // next write (producer)
  std::atomic<size_t> tail_{0};  // next read (consumer)
};

}  // namespace flannel
