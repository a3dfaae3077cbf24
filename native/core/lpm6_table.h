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

}  // namespace flannel
