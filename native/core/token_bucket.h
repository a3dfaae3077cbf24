// A token bucket for rate-limiting generated ICMP errors (pure, no I/O; the
// caller passes the time). Not thread-safe: each forwarding thread owns one.
#pragma once

#include <cstdint>

namespace flannel {

class TokenBucket {
 public:
  // `rate_per_sec` tokens are added per second up to `burst`; the bucket
  // starts full. A rate of 0 allows nothing.
  TokenBucket(uint32_t rate_per_sec, uint32_t burst)
      : rate_per_sec_(rate_per_sec), burst_(burst), tokens_(burst) {}

  // Takes one token if available at monotonic time `now_ns`.
  bool allow(uint64_t now_ns) {
    if (rate_per_sec_ == 0) return false;
    if (last_ns_ != 0 && now_ns > last_ns_) {
      tokens_ += static_cast<double>(now_ns - last_ns_) * rate_per_sec_ / 1e9;
      if (tokens_ > burst_) tokens_ = burst_;
    }
    last_ns_ = now_ns;
    if (tokens_ < 1.0) return false;
    tokens_ -= 1.0;
    return true;
  }

 private:
  uint32_t rate_per_sec_;
  uint32_t burst_;
  double tokens_;
  uint64_t last_ns_ = 0;
};

}  // namespace flannel
