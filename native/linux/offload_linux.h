// Which segmentation offloads a running datapath uses, and why one is off.
//
// Four switches, matching the udp backend's "Offload" option:
//  - TSO: the TUN hands us TCP super-packets (TUNSETOFFLOAD TSO4/TSO6/ECN,
//    with CSUM); we split them (core/gso.h).
//  - USO: the same for UDP (TUN_F_USO4|USO6, Linux 6.2).
//  - GSO: we send runs of equal-size wire packets to one peer with one
//    UDP_SEGMENT send.
//  - GRO: UDP_GRO on the sockets, and received TCP segments coalesced into
//    one virtio-net GSO write to the TUN (core/gro.h).
// Each is probed at start. At runtime only GRO's coalesced TUN writes can be
// switched off, for good and for every worker (EINVAL from a TUN GSO write
// after kernel regressions: tailscale/tailscale#13041). A refused UDP GSO
// send (EIO when the egress device lacks checksum offload, wireguard-go
// conn/errors_linux.go; EINVAL or EMSGSIZE below the path MTU) never turns
// GSO off: it is handled per peer (core/peer_backoff.h). TypeScript reads
// the state with the stats and logs each change once.
#pragma once

#include <atomic>
#include <cstdint>

namespace flannel {

enum class OffloadStatus : uint8_t {
  kOn = 0,
  kOffByConfig = 1,      // not requested
  kRefusedAtStart = 2,   // the probe failed; `err` says how
  kFailedAtRuntime = 3,  // switched off for good after the kernel refused it; `err` says how
};

class OffloadSwitch {
 public:
  bool on() const { return status_.load(std::memory_order_relaxed) == static_cast<uint8_t>(OffloadStatus::kOn); }
  OffloadStatus status() const { return static_cast<OffloadStatus>(status_.load(std::memory_order_relaxed)); }
  int err() const { return err_.load(std::memory_order_relaxed); }
  void set(OffloadStatus s, int err = 0) {
    err_.store(err, std::memory_order_relaxed);
    status_.store(static_cast<uint8_t>(s), std::memory_order_relaxed);
  }
  // Runtime failure: true only for the caller that switched it off (so the
  // event is counted once however many threads hit it).
  bool fail_at_runtime(int err) {
    uint8_t expected = static_cast<uint8_t>(OffloadStatus::kOn);
    if (!status_.compare_exchange_strong(expected, static_cast<uint8_t>(OffloadStatus::kFailedAtRuntime))) {
      return false;
    }
    err_.store(err, std::memory_order_relaxed);
    return true;
  }

 private:
  std::atomic<uint8_t> status_{static_cast<uint8_t>(OffloadStatus::kOffByConfig)};
  std::atomic<int> err_{0};
};

struct OffloadRequest {
  bool tso = false;
  bool uso = false;
  bool gso = false;
  bool gro = false;
};

struct OffloadState {
  bool vnet_hdr = false;  // the TUN was opened with IFF_VNET_HDR
  OffloadSwitch tso;
  OffloadSwitch uso;
  OffloadSwitch gso;
  OffloadSwitch udp_gro;  // UDP_GRO on the sockets (part of "GRO")
  OffloadSwitch gro;      // coalesced TUN writes (part of "GRO")
};

}  // namespace flannel
