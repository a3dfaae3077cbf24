# Native parts of flannel-ts, built by `npm ci` (node-gyp rebuild):
#  - flannel_native: the addon (the udp backend's datapath and a few syscalls).
#  - flannel_native_test: the same addon with test-only fault injection
#    (FLANNEL_TEST_FAULTS, native/linux/test_faults_linux.h); only the test
#    launcher test/bin/flanneld-test.ts and the lab's static node load it.
#  - native_core_tests: unit tests of the pure packet core; no root needed.
#  - native_lpm_bench: the route lookup micro-benchmark (npm run bench).
{
  "variables": {
    "core_sources": [
      "native/core/checksum.cc",
      "native/core/counters.cc",
      "native/core/forwarding.cc",
      "native/core/gro.cc",
      "native/core/gso.cc",
      "native/core/icmp.cc",
      "native/core/icmpv6.cc",
      "native/core/ipv4.cc",
      "native/core/ipv6.cc",
      "native/core/lpm6_table.cc",
      "native/core/lpm_table.cc",
      "native/core/partial_checksum.cc",
      "native/core/refusal_log.cc",
      "native/core/tun_read.cc",
    ],
    "addon_sources": [
      "<@(core_sources)",
      "native/linux/datapath_thread_linux.cc",
      "native/linux/egress_linux.cc",
      "native/linux/forwarder_linux.cc",
      "native/linux/ingress_linux.cc",
      "native/linux/tun_linux.cc",
      "native/linux/udp_socket_linux.cc",
      "native/linux/sd_notify_linux.cc",
      "native/linux/netlink_monitor_linux.cc",
      "native/linux/bpf_fastpath_linux.cc",
      "native/addon/datapath_wrapper.cc",
      "native/addon/fastpath_wrapper.cc",
      "native/addon/netlink_monitor_wrapper.cc",
      "native/addon/main.cc",
      "native/addon/napi_util.cc",
    ],
  },
  "target_defaults": {
    "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++14", "-std=gnu++17"],
    "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-fexceptions"],
    "cflags": ["-fvisibility=hidden"],
  },
  "targets": [
    {
      "target_name": "flannel_native",
      "sources": ["<@(addon_sources)"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "libraries": ["-lpthread", "-lbpf"],
    },
    {
      "target_name": "flannel_native_test",
      "sources": ["<@(addon_sources)"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED", "FLANNEL_TEST_FAULTS"],
      "libraries": ["-lpthread", "-lbpf"],
    },
    {
      "target_name": "native_core_tests",
      "type": "executable",
      "sources": [
        "<@(core_sources)",
        "native/test/core_tests.cc",
        "native/test/ingress_policy_tests.cc",
        "native/test/ipv6_tests.cc",
        "native/test/offload_tests.cc",
        "native/test/test_main.cc",
      ],
      "libraries": ["-lpthread"],
    },
    {
      # The upstream-style forwarder of the tests and the benchmark (lab/upstream-udp).
      "target_name": "upstream_udp_proxy",
      "type": "executable",
      "sources": ["lab/upstream-udp/upstream_udp_proxy.c"],
    },
    {
      # UDP round trips over either family, for the benchmark's IPv6 modes (lab/udp-rtt).
      "target_name": "udp_rtt",
      "type": "executable",
      "sources": ["lab/udp-rtt/udp_rtt.c"],
    },
    {
      "target_name": "native_lpm_bench",
      "type": "executable",
      "sources": ["<@(core_sources)", "native/bench/lpm_bench.cc"],
    },
  ],
}
