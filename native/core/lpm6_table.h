// Longest-prefix-match table `IPv6 subnet -> peer` for inner IPv6 over the
// udp backend (pure, no I/O). Immutable once built, like LpmTable.
//
// One sorted array of masked networks per distinct prefix length, searched
// from the longest length down: a lookup is one binary search per length
// present (flannel's v6 leases all have IPv6SubnetLen, so normally one) and
// allocates nothing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "ipv6.h"
#include "lpm_table.h"

namespace flannel {

struct Ipv6Route {
  Ipv6Addr network;  // bits beyond prefix_len are ignored (masked)
  uint8_t prefix_len;  // 0..128
  NextHop next_hop;
};

class Lpm6Table {
 public:
  Lpm6Table() = default;
  // Later entries for the same (masked network, prefix length) replace
  // earlier ones. Throws std::invalid_argument for prefix_len > 128.
  explicit Lpm6Table(const std::vector<Ipv6Route>& routes);

  // The next hop of the most specific route containing `dst`, or nullptr.
  const NextHop* lookup(const Ipv6Addr& dst) const;
  size_t size() const { return size_; }

 private:
  struct Entry {
    Ipv6Addr key;  // masked network
    NextHop hop;
  };
  struct Level {
    uint8_t prefix_len;
    std::vector<Entry> entries;  // sorted by key, unique
  };
  std::vector<Level> levels_;  // longest prefix first
  size_t size_ = 0;
};

// The peers reached over the IPv6 underlay, by index: a route's NextHop
// (kPeerUnderlay6) holds the index, the ingress path finds a datagram's
// source address here. Immutable once built.
class Endpoint6Table {
 public:
  static constexpr uint32_t kNone = 0xffffffffu;

  Endpoint6Table() = default;
  // Index i is peers[i]; a repeated address keeps its first index. The first
  // `known` entries are peers the source check knows; later ones only
  // routes' targets (datagrams from them are from an unknown sender).
  explicit Endpoint6Table(const std::vector<std::pair<Ipv6Addr, uint8_t>>& peers, size_t known = SIZE_MAX);

  // The index of `addr`, or kNone.
  uint32_t find(const Ipv6Addr& addr) const;
  const Ipv6Addr& addr(uint32_t index) const { return addrs_[index]; }
  const uint8_t& flags_at(uint32_t index) const { return flags_[index]; }
  size_t size() const { return addrs_.size(); }
  // Entries [0, known_size()) are known peers.
  size_t known_size() const { return known_; }

 private:
  size_t known_ = 0;
  std::vector<Ipv6Addr> addrs_;
  std::vector<uint8_t> flags_;
  std::vector<std::pair<Ipv6Addr, uint32_t>> sorted_;
};

}  // namespace flannel
