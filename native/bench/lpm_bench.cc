// Route lookup micro-benchmark: lookups per second of LpmTable with N routes
// (default: 10 and 10,000), each a /24 as flannel leases are, queried with
// destinations spread uniformly over the routes. Prints one JSON line per N:
// {"routes":N,"lookups_per_sec":median,"runs":[...]}. Run by `npm run bench`.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "../core/lpm_table.h"

using flannel::Ipv4Route;
using flannel::LpmTable;
using flannel::NextHop;

namespace {

constexpr size_t kDestinations = 1 << 20;
constexpr int kRuns = 7;
constexpr double kRunSeconds = 0.25;

double run_once(const LpmTable& table, const std::vector<uint32_t>& dsts, uint64_t* sink) {
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  uint64_t lookups = 0;
  uint64_t acc = 0;
  double elapsed = 0;
  do {
    for (uint32_t d : dsts) {
      const NextHop* h = table.lookup(d);
      acc += h != nullptr ? h->addr : 0;
    }
    lookups += dsts.size();
    elapsed = std::chrono::duration<double>(clock::now() - start).count();
  } while (elapsed < kRunSeconds);
  *sink += acc;
  return static_cast<double>(lookups) / elapsed;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int> sizes;
  for (int i = 1; i < argc; ++i) sizes.push_back(std::atoi(argv[i]));
  if (sizes.empty()) sizes = {10, 10000};
  uint64_t sink = 0;
  for (int n : sizes) {
    std::vector<Ipv4Route> routes;
    for (int i = 0; i < n; ++i) {
      routes.push_back(Ipv4Route{0x0a000000u + (static_cast<uint32_t>(i) << 8), 24,
                                 NextHop{0xc0a80000u + static_cast<uint32_t>(i), 8285}});
    }
    const LpmTable table(routes);
    std::mt19937 rng(12345);
    std::vector<uint32_t> dsts(kDestinations);
    for (auto& d : dsts) {
      d = 0x0a000000u + (static_cast<uint32_t>(rng() % static_cast<uint32_t>(n)) << 8) + (rng() & 0xff);
    }
    std::vector<double> runs;
    run_once(table, dsts, &sink);  // warm-up
    for (int r = 0; r < kRuns; ++r) runs.push_back(run_once(table, dsts, &sink));
    std::vector<double> sorted = runs;
    std::sort(sorted.begin(), sorted.end());
    std::printf("{\"routes\":%d,\"lookups_per_sec\":%.0f,\"runs\":[", n, sorted[kRuns / 2]);
    for (int r = 0; r < kRuns; ++r) std::printf("%s%.0f", r ? "," : "", runs[r]);
    std::printf("]}\n");
  }
  return sink == 42 ? 1 : 0;  // keep the lookups observable
}
