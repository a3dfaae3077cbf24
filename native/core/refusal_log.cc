#include "refusal_log.h"

namespace flannel {

namespace {

constexpr size_t kMask = RefusalLog::kCapacity - 1;
static_assert((RefusalLog::kCapacity & kMask) == 0, "capacity must be a power of two");

size_t home_slot(const Refusal& r) {
  return static_cast<size_t>(((r.sender ^ (r.reason * 0x9e3779b9u)) * 2654435769u) >> 22) & kMask;
}

}  // namespace

bool RefusalLog::note(const Refusal& r) {
  size_t i = home_slot(r);
  for (;; i = (i + 1) & kMask) {
    if (!seen_[i].used) break;
    if (seen_[i].sender == r.sender && seen_[i].reason == r.reason) return false;
  }
  const size_t head = head_.load(std::memory_order_relaxed);
  if (head - tail_.load(std::memory_order_acquire) >= kRing) return false;  // the ring is full: only counted
  // Keep the table at most 3/4 full so probing terminates quickly: past
  // that, forget every pair (they may be reported once more).
  if (seen_count_ >= kCapacity / 4 * 3) {
    for (Seen& s : seen_) s.used = false;
    seen_count_ = 0;
    i = home_slot(r);
  }
  seen_[i] = Seen{r.sender, r.reason, true};
  ++seen_count_;
  ring_[head % kRing] = r;
  head_.store(head + 1, std::memory_order_release);
  return true;
}

size_t RefusalLog::drain(Refusal* out, size_t max) {
  size_t tail = tail_.load(std::memory_order_relaxed);
  const size_t head = head_.load(std::memory_order_acquire);
  size_t n = 0;
  while (tail != head && n < max) out[n++] = ring_[tail++ % kRing];
  tail_.store(tail, std::memory_order_release);
  return n;
}

}  // namespace flannel
