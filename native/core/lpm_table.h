// Longest-prefix-match table `subnet -> peer IPv4:port` and a set of peer
// addresses (pure, no I/O).
//
// Both are immutable once built: the datapath never mutates a table a
// forwarding thread may be reading. The control side builds a new one and
// publishes it (see state_publisher.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace flannel {

// What a peer can take, from its lease (TypeScript decides; the datapath obeys).
enum PeerFlags : uint8_t {
  // The peer is flannel-ts and accepts TCP/UDP packets whose checksum is
  // left to its kernel (CHECKSUM_PARTIAL): the outer UDP checksum covers the
  // bytes on the wire.
  kPeerPartialChecksums = 1u << 0,
  // The peer's udp datapath carries inner IPv6 (its lease says so); an
  // upstream peer does not, and would corrupt an IPv6 packet.
  kPeerIpv6 = 1u << 1,
  // The peer is reached over the IPv6 underlay: NextHop::addr is its index in
  // ForwardingState::endpoints6 (its PublicIPv6), not an IPv4 address.
  kPeerUnderlay6 = 1u << 2,
};

// A peer's underlay endpoint. Host byte order.
struct NextHop {
  uint32_t addr;
  uint16_t port;  // 1..65535; 0 only marks an empty table slot
  uint8_t flags = 0;  // PeerFlags
};

struct Ipv4Route {
  uint32_t network;  // host order; bits beyond prefix_len are ignored (masked)
  uint8_t prefix_len;  // 0..32
  NextHop next_hop;
};

inline uint32_t prefix_mask(uint8_t prefix_len) {
  return prefix_len == 0 ? 0u : ~0u << (32 - prefix_len);
}

// Longest-prefix match (docs/compatibility.md §5.5, §12: upstream does first-match in
// array order with move-to-front). One open-addressing hash table per
// distinct prefix length, probed from the longest length down, so a lookup
// costs one probe per distinct prefix length present (flannel leases all have
// the network's SubnetLen, so normally one) and does not grow with the number
// of routes.
class LpmTable {
 public:
  LpmTable() = default;
  // Later entries for the same (masked network, prefix length) replace
  // earlier ones. Throws std::invalid_argument for prefix_len > 32.
  explicit LpmTable(const std::vector<Ipv4Route>& routes);

  // The next hop of the most specific route containing `dst`, or nullptr.
  // The pointer is valid as long as this table is.
  const NextHop* lookup(uint32_t dst) const;

  size_t size() const { return size_; }

 private:
  // 12 bytes, so 10,000 routes take ~200 KiB and stay in L2. An empty slot
  // has hop.port == 0 (a route's port is 1..65535).
  struct Slot {
    uint32_t key;  // masked network
    NextHop hop;
  };
  static_assert(sizeof(NextHop) == 8, "NextHop is addr + port + flags + padding");
  struct Level {
    uint8_t prefix_len;
    uint32_t mask;
    uint32_t shift;  // 32 - log2(slots.size())
    std::vector<Slot> slots;
  };
  std::vector<Level> levels_;  // longest prefix first
  size_t size_ = 0;
};

// A known peer: its PublicIP and what it can take.
struct Peer {
  uint32_t addr;      // host order
  uint8_t flags = 0;  // PeerFlags
};

// The known peers with constant-time lookup, for the source check.
class AddrSet {
 public:
  AddrSet() = default;
  explicit AddrSet(const std::vector<Peer>& peers);
  bool contains(uint32_t addr) const { return find(addr) != nullptr; }
  // The peer's flags, or nullptr when `addr` is no peer's.
  const uint8_t* find(uint32_t addr) const;
  size_t size() const { return size_; }

 private:
  struct Slot {
    uint32_t addr;
    bool used;
    uint8_t flags;
  };
  std::vector<Slot> slots_;
  uint32_t shift_ = 32;
  size_t size_ = 0;
};

}  // namespace flannel
