/* The flow hash's mixing step, in C so that the user-space datapath
 * (flow_hash.h) and the kernel fast path (native/bpf/udp_fastpath.bpf.c)
 * pick the same source port for a flow: splitmix64's finalizer (Steele et
 * al., "Fast splittable pseudorandom number generators", OOPSLA 2014) over
 * the addresses and the ports and protocol. Pure. */
#ifndef FLANNEL_FLOW_MIX_H
#define FLANNEL_FLOW_MIX_H

#ifdef __cplusplus
#include <cstdint>
typedef uint64_t flow_mix_u64;
typedef uint32_t flow_mix_u32;
#define FLOW_MIX_INLINE inline
#else
typedef __u64 flow_mix_u64;
typedef __u32 flow_mix_u32;
#define FLOW_MIX_INLINE static __always_inline
#endif

FLOW_MIX_INLINE flow_mix_u32 flannel_flow_mix(flow_mix_u64 addrs, flow_mix_u64 ports_and_protocol) {
  flow_mix_u64 x = addrs ^ ports_and_protocol * 0x9e3779b97f4a7c15ULL;
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return (flow_mix_u32)(x >> 32);
}

#endif
