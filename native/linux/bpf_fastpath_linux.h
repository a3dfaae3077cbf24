// Loading and feeding the udp backend's kernel fast path
// (native/bpf/udp_fastpath.bpf.c) with libbpf: the object file opened and
// loaded, its two tc programs attached with a clsact qdisc (flannel0 egress,
// the external interface's ingress) under a fixed handle and priority so
// that only our own filters are ever replaced or removed, the maps written
// as the control plane says, the counters read. No policy here: TypeScript
// decides what goes into the maps.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "../bpf/udp_fastpath.h"
#include "sys_result.h"

struct bpf_object;

namespace flannel {

// The tc filter handle and priority of our programs (tc filter show: "handle 0xf1a7 pref 49207").
constexpr uint32_t kFastPathTcHandle = 0xf1a7;
constexpr uint32_t kFastPathTcPriority = 49207;

class BpfFastPath {
 public:
  BpfFastPath() = default;
  ~BpfFastPath();
  BpfFastPath(const BpfFastPath&) = delete;
  BpfFastPath& operator=(const BpfFastPath&) = delete;

  // Opens and loads the object file; `log` gets libbpf's (verifier) output on failure.
  SysResult load(const std::string& object_path, std::string* log);
  // Attaches egress to `tun_ifindex` and ingress to `ext_ifindex`, replacing our previous filters.
  SysResult attach(int tun_ifindex, int ext_ifindex);
  // Removes our filters from the interfaces attach() used (best effort; idempotent).
  void detach();

  SysResult set_config(const fp_config& cfg);
  SysResult put_route(const fp_route_key& key, const fp_route& value);
  // ENOENT is not an error: the route is gone either way.
  SysResult delete_route(const fp_route_key& key);
  // Makes the local address set exactly `addrs` (network order).
  SysResult set_local_addrs(const std::vector<uint32_t>& addrs);
  // Every counter summed over the CPUs.
  std::array<uint64_t, FP_COUNTER_COUNT> counters() const;
  // BPF_PROG_TEST_RUN of one program on `in`, an Ethernet frame (egress: the
  // egress program's Ethernet variant, flannel_egress_l2).
  SysResult test_run(bool egress, const std::vector<uint8_t>& in, int ifindex, uint32_t* retval, std::vector<uint8_t>* out);

  // Removes a filter of ours (by handle, priority and program name) from
  // `ifindex`'s ingress or egress; true when one was there.
  static bool remove_filter(int ifindex, bool egress);

  static const char* counter_name(int i);

 private:
  bpf_object* obj_ = nullptr;
  int egress_fd_ = -1;
  int egress_l2_fd_ = -1;
  int ingress_fd_ = -1;
  int config_fd_ = -1;
  int routes_fd_ = -1;
  int local_fd_ = -1;
  int counters_fd_ = -1;
  int tun_ifindex_ = 0;
  int ext_ifindex_ = 0;
  std::vector<uint32_t> local_;
};

}  // namespace flannel
