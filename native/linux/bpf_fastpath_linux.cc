#include "bpf_fastpath_linux.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include <algorithm>

namespace flannel {

namespace {

const char* const kCounterNames[FP_COUNTER_COUNT] = {
    "ebpf_egress_packets",      "ebpf_egress_bytes",         "ebpf_egress_pass_not_ipv4", "ebpf_egress_pass_ttl",
    "ebpf_egress_pass_no_route", "ebpf_egress_pass_peer",    "ebpf_egress_pass_fib",      "ebpf_egress_pass_mtu",
    "ebpf_egress_pass_encap",   "ebpf_ingress_packets",      "ebpf_ingress_bytes",        "ebpf_ingress_pass_not_ipv4",
    "ebpf_ingress_pass_policy", "ebpf_ingress_pass_ttl",     "ebpf_ingress_pass_malformed", "ebpf_ingress_pass_decap",
    "ebpf_ingress_pass_train",
};

// libbpf's messages during one load, kept for the error (the verifier's log included).
thread_local std::string* g_log = nullptr;

int capture_log(enum libbpf_print_level level, const char* fmt, va_list args) {
  if (g_log == nullptr || level == LIBBPF_DEBUG) return 0;
  char buf[1024];
  const int n = vsnprintf(buf, sizeof(buf), fmt, args);
  if (n > 0 && g_log->size() < 64 * 1024) g_log->append(buf, std::min<size_t>(static_cast<size_t>(n), sizeof(buf) - 1));
  return 0;
}

const char* kProgramName[2] = {"flannel_ingress", "flannel_egress"};

}  // namespace

const char* BpfFastPath::counter_name(int i) { return i >= 0 && i < FP_COUNTER_COUNT ? kCounterNames[i] : "?"; }

BpfFastPath::~BpfFastPath() {
  detach();
  if (obj_ != nullptr) bpf_object__close(obj_);
}

SysResult BpfFastPath::load(const std::string& object_path, std::string* log) {
  g_log = log;
  libbpf_print_fn_t old = libbpf_set_print(capture_log);
  obj_ = bpf_object__open_file(object_path.c_str(), nullptr);
  int err = libbpf_get_error(obj_);
  if (err != 0) {
    obj_ = nullptr;
    libbpf_set_print(old);
    g_log = nullptr;
    return SysResult::failure(-err, "bpf_object__open_file");
  }
  err = bpf_object__load(obj_);
  libbpf_set_print(old);
  g_log = nullptr;
  if (err != 0) return SysResult::failure(-err, "bpf_object__load");
  auto prog = [&](const char* name) {
    bpf_program* p = bpf_object__find_program_by_name(obj_, name);
    return p != nullptr ? bpf_program__fd(p) : -1;
  };
  auto map = [&](const char* name) {
    bpf_map* m = bpf_object__find_map_by_name(obj_, name);
    return m != nullptr ? bpf_map__fd(m) : -1;
  };
  egress_fd_ = prog("flannel_egress");
  egress_l2_fd_ = prog("flannel_egress_l2");
  ingress_fd_ = prog("flannel_ingress");
  config_fd_ = map("fp_config");
  routes_fd_ = map("fp_routes");
  local_fd_ = map("fp_local");
  counters_fd_ = map("fp_counters");
  if (egress_fd_ < 0 || ingress_fd_ < 0 || config_fd_ < 0 || routes_fd_ < 0 || local_fd_ < 0 || counters_fd_ < 0) {
    return SysResult::failure(ENOENT, "find the fast path's programs and maps");
  }
  return SysResult::success();
}

namespace {

SysResult attach_one(int ifindex, bool egress, int prog_fd) {
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = egress ? BPF_TC_EGRESS : BPF_TC_INGRESS);
  int err = bpf_tc_hook_create(&hook);  // the clsact qdisc; another program's is shared
  if (err != 0 && err != -EEXIST) return SysResult::failure(-err, egress ? "create clsact (egress)" : "create clsact (ingress)");
  // Designators in declaration order (C++ wants it).
  LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = prog_fd, .flags = BPF_TC_F_REPLACE, .handle = kFastPathTcHandle, .priority = kFastPathTcPriority);
  err = bpf_tc_attach(&hook, &opts);
  if (err != 0) return SysResult::failure(-err, egress ? "attach tc egress program" : "attach tc ingress program");
  return SysResult::success();
}

}  // namespace

SysResult BpfFastPath::attach(int tun_ifindex, int ext_ifindex) {
  SysResult r = attach_one(tun_ifindex, true, egress_fd_);
  if (!r.ok()) return r;
  tun_ifindex_ = tun_ifindex;
  r = attach_one(ext_ifindex, false, ingress_fd_);
  if (!r.ok()) return r;
  ext_ifindex_ = ext_ifindex;
  return SysResult::success();
}

bool BpfFastPath::remove_filter(int ifindex, bool egress) {
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = egress ? BPF_TC_EGRESS : BPF_TC_INGRESS);
  LIBBPF_OPTS(bpf_tc_opts, query, .handle = kFastPathTcHandle, .priority = kFastPathTcPriority);
  if (bpf_tc_query(&hook, &query) != 0) return false;
  // Ours only: the program at our handle and priority must carry our name.
  const int fd = bpf_prog_get_fd_by_id(query.prog_id);
  if (fd < 0) return false;
  bpf_prog_info info{};
  uint32_t len = sizeof(info);
  const bool ours = bpf_obj_get_info_by_fd(fd, &info, &len) == 0 && strcmp(info.name, kProgramName[egress ? 1 : 0]) == 0;
  ::close(fd);
  if (!ours) return false;
  LIBBPF_OPTS(bpf_tc_opts, opts, .handle = kFastPathTcHandle, .priority = kFastPathTcPriority);
  return bpf_tc_detach(&hook, &opts) == 0;
}

void BpfFastPath::detach() {
  if (tun_ifindex_ != 0) remove_filter(tun_ifindex_, true);
  if (ext_ifindex_ != 0) remove_filter(ext_ifindex_, false);
  tun_ifindex_ = ext_ifindex_ = 0;
}

SysResult BpfFastPath::set_config(const fp_config& cfg) {
  const uint32_t zero = 0;
  if (bpf_map_update_elem(config_fd_, &zero, &cfg, BPF_ANY) != 0) return SysResult::failure(errno, "update fp_config");
  return SysResult::success();
}

SysResult BpfFastPath::put_route(const fp_route_key& key, const fp_route& value) {
  if (bpf_map_update_elem(routes_fd_, &key, &value, BPF_ANY) != 0) return SysResult::failure(errno, "update fp_routes");
  return SysResult::success();
}

SysResult BpfFastPath::delete_route(const fp_route_key& key) {
  if (bpf_map_delete_elem(routes_fd_, &key) != 0 && errno != ENOENT) return SysResult::failure(errno, "delete from fp_routes");
  return SysResult::success();
}

SysResult BpfFastPath::set_local_addrs(const std::vector<uint32_t>& addrs) {
  const uint8_t one = 1;
  // New ones first, then the ones no longer there: an address never drops out in between.
  for (uint32_t a : addrs) {
    if (bpf_map_update_elem(local_fd_, &a, &one, BPF_ANY) != 0) return SysResult::failure(errno, "update fp_local");
  }
  for (uint32_t a : local_) {
    if (std::find(addrs.begin(), addrs.end(), a) == addrs.end()) bpf_map_delete_elem(local_fd_, &a);
  }
  local_ = addrs;
  return SysResult::success();
}

std::array<uint64_t, FP_COUNTER_COUNT> BpfFastPath::counters() const {
  std::array<uint64_t, FP_COUNTER_COUNT> out{};
  const int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0 || counters_fd_ < 0) return out;
  std::vector<uint64_t> per_cpu(static_cast<size_t>(cpus));
  for (uint32_t i = 0; i < FP_COUNTER_COUNT; ++i) {
    if (bpf_map_lookup_elem(counters_fd_, &i, per_cpu.data()) != 0) continue;
    for (uint64_t v : per_cpu) out[i] += v;
  }
  return out;
}

SysResult BpfFastPath::test_run(bool egress, const std::vector<uint8_t>& in, int ifindex, uint32_t* retval, std::vector<uint8_t>* out) {
  out->assign(in.size() + 256, 0);
  __sk_buff ctx{};
  ctx.ifindex = static_cast<uint32_t>(ifindex);
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = in.data(), .data_out = out->data(), .data_size_in = static_cast<uint32_t>(in.size()),
              .data_size_out = static_cast<uint32_t>(out->size()), .ctx_in = &ctx, .ctx_size_in = sizeof(ctx), .repeat = 1);
  // ctx_out is not asked for.
  // The egress program as it runs on an Ethernet frame (tc test runs always give one).
  if (bpf_prog_test_run_opts(egress ? egress_l2_fd_ : ingress_fd_, &opts) != 0) return SysResult::failure(errno, "BPF_PROG_TEST_RUN");
  out->resize(opts.data_size_out);
  *retval = opts.retval;
  return SysResult::success();
}

}  // namespace flannel
