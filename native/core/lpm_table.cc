#include "lpm_table.h"

#include <algorithm>
#include <array>
#include <stdexcept>

namespace flannel {

namespace {

// Fibonacci hashing (Knuth, TAOCP vol. 3 docs/compatibility.md §6.4): multiply by 2^32/phi and keep
// the top bits. It spreads consecutive integers evenly over the table.
inline uint32_t hash_slot(uint32_t key, uint32_t shift) {
  return static_cast<uint32_t>((key * 2654435769u) >> shift);
}

// The slot of a masked network: hash only its prefix bits. Flannel's subnets
// are consecutive network numbers (10.5.1.0/24, 10.5.2.0/24, ...); with the
// zero host bits shifted out they are consecutive integers, which Fibonacci
// hashing places without collisions. Hashing the raw masked key (low bits
// all zero) clusters them and lengthens probe chains.
inline uint32_t network_slot(uint32_t key, uint8_t prefix_len, uint32_t shift) {
  return prefix_len == 0 ? 0 : hash_slot(key >> (32 - prefix_len), shift);
}

// A power-of-two capacity that keeps the load factor at or below 1/2, and
// its shift for hash_slot. Below ~0.6 load, Fibonacci hashing places
// consecutive keys (flannel's subnets) with no collision at all (the
// three-distance theorem), so every lookup hits on its first probe.
inline void table_geometry(size_t entries, size_t* capacity, uint32_t* shift) {
  uint32_t bits = 1;
  while ((size_t{1} << bits) < entries * 2) ++bits;
  *capacity = size_t{1} << bits;
  *shift = 32 - bits;
}

}  // namespace

LpmTable::LpmTable(const std::vector<Ipv4Route>& routes) {
  std::array<std::vector<const Ipv4Route*>, 33> by_len;
  for (const Ipv4Route& r : routes) {
    if (r.prefix_len > 32) throw std::invalid_argument("prefix length above 32");
    by_len[r.prefix_len].push_back(&r);
  }
  for (int len = 32; len >= 0; --len) {
    const auto& entries = by_len[static_cast<size_t>(len)];
    if (entries.empty()) continue;
    Level level;
    level.prefix_len = static_cast<uint8_t>(len);
    level.mask = prefix_mask(level.prefix_len);
    size_t capacity;
    table_geometry(entries.size(), &capacity, &level.shift);
    level.slots.assign(capacity, Slot{0, NextHop{0, 0}});
    const size_t slot_mask = capacity - 1;
    for (const Ipv4Route* r : entries) {
      if (r->next_hop.port == 0) throw std::invalid_argument("route port 0");
      const uint32_t key = r->network & level.mask;
      size_t i = network_slot(key, level.prefix_len, level.shift);
      while (level.slots[i].hop.port != 0 && level.slots[i].key != key) i = (i + 1) & slot_mask;
      if (level.slots[i].hop.port == 0) ++size_;
      level.slots[i] = Slot{key, r->next_hop};
    }
    levels_.push_back(std::move(level));
  }
}

const NextHop* LpmTable::lookup(uint32_t dst) const {
  for (const Level& level : levels_) {
    const uint32_t key = dst & level.mask;
    const size_t slot_mask = level.slots.size() - 1;
    for (size_t i = network_slot(key, level.prefix_len, level.shift);; i = (i + 1) & slot_mask) {
      const Slot& s = level.slots[i];
      if (s.hop.port == 0) break;
      if (s.key == key) return &s.hop;
    }
  }
  return nullptr;
}

AddrSet::AddrSet(const std::vector<Peer>& peers) {
  if (peers.empty()) return;
  size_t capacity;
  table_geometry(peers.size(), &capacity, &shift_);
  slots_.assign(capacity, Slot{0, false, 0});
  const size_t slot_mask = capacity - 1;
  for (const Peer& p : peers) {
    size_t i = hash_slot(p.addr, shift_);
    while (slots_[i].used && slots_[i].addr != p.addr) i = (i + 1) & slot_mask;
    if (!slots_[i].used) ++size_;
    slots_[i] = Slot{p.addr, true, p.flags};
  }
}

const uint8_t* AddrSet::find(uint32_t addr) const {
  if (slots_.empty()) return nullptr;
  const size_t slot_mask = slots_.size() - 1;
  for (size_t i = hash_slot(addr, shift_);; i = (i + 1) & slot_mask) {
    if (!slots_[i].used) return nullptr;
    if (slots_[i].addr == addr) return &slots_[i].flags;
  }
}

}  // namespace flannel
