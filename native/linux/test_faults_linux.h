// Failures a test can force, to exercise every fallback without a broken
// kernel. They exist only in the test build of the addon (binding.gyp target
// flannel_native_test, which defines FLANNEL_TEST_FAULTS; the test launcher
// test/bin/flanneld-test.ts loads it). In the release addon every check below
// is a constant false, the compiler drops the fault paths, and no fault name
// is compiled in.
#pragma once

#include <atomic>
#include <cstdint>

namespace flannel {

enum TestFault : uint32_t {
  kFaultTunTso = 1u << 0,        // TUNSETOFFLOAD with TSO answers EINVAL (at start)
  kFaultTunUso = 1u << 1,        // TUNSETOFFLOAD with USO answers EINVAL (at start)
  kFaultUdpGsoSend = 1u << 2,    // the first UDP GSO send answers EIO
  kFaultUdpGro = 1u << 3,        // setsockopt UDP_GRO answers ENOPROTOOPT (at start)
  kFaultTunGroWrite = 1u << 4,   // the first coalesced TUN write answers EINVAL
  kFaultStallIngress = 1u << 5,  // an ingress thread stops looping (until stop) once traffic arrives
  kFaultTunPartialWrite = 1u << 6,  // the first TUN write marked NEEDS_CSUM answers EINVAL
};

// The faults armed for one forwarder; each fires once, in whichever thread
// reaches it first.
class TestFaults {
 public:
#ifdef FLANNEL_TEST_FAULTS
  void arm(uint32_t bits) { pending_.store(bits); }
  bool armed(TestFault fault) const { return (pending_.load(std::memory_order_relaxed) & fault) != 0; }
  // True (once) when `fault` is armed: the caller then acts as if the kernel had failed.
  bool take(TestFault fault) {
    if (!armed(fault)) return false;
    return (pending_.fetch_and(~static_cast<uint32_t>(fault)) & fault) != 0;
  }

 private:
  std::atomic<uint32_t> pending_{0};
#else
  void arm(uint32_t) {}
  static constexpr bool armed(TestFault) { return false; }
  static constexpr bool take(TestFault) { return false; }
#endif
};

}  // namespace flannel
