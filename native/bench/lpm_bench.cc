// Route lookup micro-benchmark: lookups per second of LpmTable with N routes
// (default: 10 and 10,000), each a /24 as flannel leases are, queried with
// destinations spread uniformly over the routes. Prints one JSON line per N:
// {"routes":N,"lookups_per_sec":median,"runs":[...]}. Run by `npm run bench`.
//
// With --ingress: the cost of the ingress policy (forwarding.h
// IngressPolicy): decide_ingress on 64-byte packets from 1,000 peers, with
// only the outer source checked and with the inner checks too. Prints
// {"ingress_policy":"outer"|"full","ns_per_packet":median}.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "../core/forwarding.h"
#include "../core/lpm_table.h"
#include "../test/packet_builder.h"

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

// decide_ingress over `packets` (each from its sender), ns per packet.
double ingress_ns(const flannel::ForwardingState& st, std::vector<std::vector<uint8_t>>& packets,
                  const std::vector<uint32_t>& senders, uint64_t* sink) {
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  uint64_t n = 0;
  double elapsed = 0;
  do {
    for (size_t i = 0; i < packets.size(); ++i) {
      std::vector<uint8_t>& p = packets[i];
      p[8] = 64;  // the TTL the previous round decremented
      const flannel::Decision d = flannel::decide_ingress(p.data(), p.size(), senders[i], st);
      *sink += d.forward ? 1 : 0;
    }
    n += packets.size();
    elapsed = std::chrono::duration<double>(clock::now() - start).count();
  } while (elapsed < kRunSeconds);
  return elapsed * 1e9 / static_cast<double>(n);
}

int ingress_bench() {
  using namespace flannel;
  constexpr int kPeers = 1000;
  std::vector<Ipv4Route> routes;
  std::vector<Peer> peers;
  for (int i = 0; i < kPeers; ++i) {
    routes.push_back(Ipv4Route{0x0a000000u + (static_cast<uint32_t>(i + 2) << 8), 24, NextHop{0xc0a80000u + i, 8285, 0}});
    peers.push_back(Peer{0xc0a80000u + static_cast<uint32_t>(i), 0});
  }
  ForwardingState outer;
  outer.routes = LpmTable(routes);
  outer.peers = AddrSet(peers);
  ForwardingState full = outer;
  full.policy.configured = true;
  full.policy.own_subnet = {0x0a000100u, 24};
  full.policy.network = {0x0a000000u, 8};
  std::mt19937 rng(7);
  std::vector<std::vector<uint8_t>> packets;
  std::vector<uint32_t> senders;
  for (int i = 0; i < 4096; ++i) {
    const uint32_t peer = rng() % kPeers;
    testpkt::Ipv4Spec spec;
    spec.src = 0x0a000000u + ((peer + 2) << 8) + 7;
    spec.dst = 0x0a000100u + 9;
    spec.payload = std::vector<uint8_t>(36, 0x5a);  // 64 bytes in all
    packets.push_back(testpkt::build_ipv4(spec));
    senders.push_back(0xc0a80000u + peer);
  }
  uint64_t sink = 0;
  for (const char* name : {"outer", "full"}) {
    const ForwardingState& st = name[0] == 'o' ? outer : full;
    std::vector<double> runs;
    ingress_ns(st, packets, senders, &sink);  // warm-up
    for (int r = 0; r < kRuns; ++r) runs.push_back(ingress_ns(st, packets, senders, &sink));
    std::sort(runs.begin(), runs.end());
    std::printf("{\"ingress_policy\":\"%s\",\"ns_per_packet\":%.1f}\n", name, runs[kRuns / 2]);
  }
  return sink == 42 ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "--ingress") return ingress_bench();
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
