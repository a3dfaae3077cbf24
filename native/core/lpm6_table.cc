#include "lpm6_table.h"

#include <algorithm>
#include <stdexcept>

namespace flannel {

Lpm6Table::Lpm6Table(const std::vector<Ipv6Route>& routes) {
  for (const Ipv6Route& r : routes) {
    if (r.prefix_len > 128) throw std::invalid_argument("IPv6 prefix length > 128");
  }
  for (const Ipv6Route& r : routes) {
    auto level = std::find_if(levels_.begin(), levels_.end(), [&](const Level& l) { return l.prefix_len == r.prefix_len; });
    if (level == levels_.end()) {
      levels_.push_back(Level{r.prefix_len, {}});
      level = levels_.end() - 1;
    }
    level->entries.push_back(Entry{mask_ipv6(r.network, r.prefix_len), r.next_hop});
  }
  for (Level& l : levels_) {
    // A stable sort keeps insertion order among equal keys; the last one wins.
    std::stable_sort(l.entries.begin(), l.entries.end(), [](const Entry& a, const Entry& b) { return a.key < b.key; });
    std::vector<Entry> unique;
    unique.reserve(l.entries.size());
    for (const Entry& e : l.entries) {
      if (!unique.empty() && unique.back().key == e.key) {
        unique.back() = e;
      } else {
        unique.push_back(e);
      }
    }
    l.entries.swap(unique);
    size_ += l.entries.size();
  }
  std::sort(levels_.begin(), levels_.end(), [](const Level& a, const Level& b) { return a.prefix_len > b.prefix_len; });
}

const NextHop* Lpm6Table::lookup(const Ipv6Addr& dst) const {
  for (const Level& l : levels_) {
    const Ipv6Addr key = mask_ipv6(dst, l.prefix_len);
    auto it = std::lower_bound(l.entries.begin(), l.entries.end(), key, [](const Entry& e, const Ipv6Addr& k) { return e.key < k; });
    if (it != l.entries.end() && it->key == key) return &it->hop;
  }
  return nullptr;
}

Endpoint6Table::Endpoint6Table(const std::vector<std::pair<Ipv6Addr, uint8_t>>& peers, size_t known)
    : known_(known < peers.size() ? known : peers.size()) {
  addrs_.reserve(peers.size());
  flags_.reserve(peers.size());
  for (const auto& p : peers) {
    addrs_.push_back(p.first);
    flags_.push_back(p.second);
    sorted_.emplace_back(p.first, static_cast<uint32_t>(addrs_.size() - 1));
  }
  std::stable_sort(sorted_.begin(), sorted_.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
}

uint32_t Endpoint6Table::find(const Ipv6Addr& addr) const {
  auto it = std::lower_bound(sorted_.begin(), sorted_.end(), addr, [](const auto& e, const Ipv6Addr& k) { return e.first < k; });
  return it != sorted_.end() && it->first == addr ? it->second : kNone;
}

}  // namespace flannel
