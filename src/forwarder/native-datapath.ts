/**
 * The datapath's face of the native addon (src/addon/loader.ts loads it).
 *
 * The interfaces here are the contract with native/addon/datapath_wrapper.h;
 * UdpForwarder takes a DatapathAddon as a constructor argument so unit tests
 * can substitute a fake.
 */
import { loadAddon, NativeAddonLoadError } from '../addon/loader';
import type { OffloadReport, OffloadSettings } from './offload';

/** The counters of native/core/counters.h, in order. Checked at load time. */
export const COUNTER_NAMES = [
  'egress_read_packets',
  'egress_read_bytes',
  'egress_sent_packets',
  'egress_sent_bytes',
  'egress_drop_not_ipv4',
  'egress_drop_too_short',
  'egress_drop_bad_header',
  'egress_drop_no_route',
  'egress_drop_ttl_expired',
  'egress_drop_send_error',
  'ingress_received_packets',
  'ingress_received_bytes',
  'ingress_written_packets',
  'ingress_written_bytes',
  'ingress_drop_oversize',
  'ingress_drop_unknown_source',
  'ingress_drop_not_ipv4',
  'ingress_drop_too_short',
  'ingress_drop_bad_header',
  'ingress_drop_ttl_expired',
  'ingress_drop_tun_write_error',
  'icmp_net_unreachable_sent',
  'icmp_time_exceeded_sent',
  'icmp_suppressed',
  'icmp_rate_limited',
  'icmp_write_error',
  'tun_read_errors',
  'udp_receive_errors',
  'udp_send_blocked',
  'tun_write_blocked',
  'egress_read_gso_packets',
  'egress_split_segments',
  'egress_drop_bad_offload',
  'egress_send_calls',
  'egress_gso_messages',
  'ingress_receive_calls',
  'ingress_gro_messages',
  'ingress_tun_write_calls',
  'ingress_coalesced_writes',
  'ingress_coalesced_packets',
  'offload_gso_failures',
  'offload_gro_failures',
  'ingress_drop_spoofed_source',
  'ingress_drop_foreign_destination',
  'egress_drop_bad_checksum',
  'egress_partial_checksum_packets',
  'ingress_partial_checksum_packets',
  'offload_partial_checksum_failures',
  'egress_drop_ipv6_link_scoped',
  'egress_drop_ipv6_peer_incapable',
  'ingress_drop_ipv6_sender_incapable',
  'ingress_drop_martian_source',
  'egress_drop_oversize',
  'ingress_drop_source_port',
  'worker_sleep_wakeups',
  'worker_busy_poll_wakeups',
] as const;

export type CounterName = (typeof COUNTER_NAMES)[number];
export type Counters = Record<CounterName, number>;

export interface NativeRoute {
  network: string;
  prefixLen: number;
  peer: string;
  port: number;
  /** PeerFlags of native/core/lpm_table.h (default 0). */
  flags?: number;
}

/** A known peer's PublicIP and what it can take (PeerFlags, default 0). */
export interface NativePeer {
  address: string;
  flags?: number;
}

export interface NativePrefix {
  network: string;
  prefixLen: number;
}

/** native/core/forwarding.h IngressPolicy. */
export interface NativeIngressPolicy {
  sourceCheck: boolean;
  allowExternalSources: boolean;
  partialChecksums?: boolean;
  ownSubnet: NativePrefix;
  network: NativePrefix;
  /** Inner IPv6 is carried: the own v6 subnet and the IPv6Network (both or neither). */
  ownSubnet6?: NativePrefix;
  network6?: NativePrefix;
}

/**
 * A refused datagram (native/linux/forwarder_linux.h Refusal): each (sender,
 * reason) is reported once while the datapath remembers it, so a pair may
 * come again (from another worker, or after the memory was recycled).
 */
export interface NativeRefusal {
  sender: string;
  /** The drop counter's name. */
  reason:
    | 'ingress_drop_unknown_source'
    | 'ingress_drop_spoofed_source'
    | 'ingress_drop_foreign_destination'
    | 'ingress_drop_ipv6_sender_incapable'
    | 'ingress_drop_martian_source';
  /** Absent for an unknown sender (the datagram is not parsed). */
  innerSource?: string;
  innerDestination?: string;
}

/** native/addon/datapath_wrapper.h update(): the parts given replace the datapath's; one publication. */
export interface NativeUpdate {
  /** The whole route table, or (not both) the changes to it. */
  routes?: NativeRoute[];
  setRoutes?: NativeRoute[];
  removeRoutes?: NativeRouteKey[];
  peers?: Array<string | NativePeer>;
  policy?: NativeIngressPolicy;
  /** This node's addresses, IPv4 and IPv6. */
  localAddresses?: string[];
}

export interface NativeRouteKey {
  network: string;
  prefixLen: number;
}

export interface NativeStats {
  counters: Counters;
  routes: number;
  peers: number;
  retiredTables: number;
  running: boolean;
  /** Worker count (TUN queues = sockets = thread pairs); 0 before start(). */
  workers: number;
  /** Present once started. */
  offload?: OffloadReport;
  /** Once started: ms since the least recently active forwarding thread last looped (idle threads loop every second). */
  heartbeatAgeMs?: number;
}

export interface NativeTunOptions {
  /** TUN queues (IFF_MULTI_QUEUE when > 1), one per worker. Default 1. */
  queues?: number;
  /** Open with a virtio-net header (IFF_VNET_HDR; needed by TSO, USO and GRO). Default false. */
  vnetHdr?: boolean;
}

export interface NativeBindOptions {
  /** The IPv4 underlay's address; `address6` the IPv6 underlay's. At least one. */
  address?: string;
  address6?: string;
  port: number;
  /** Socket buffer sizes (UdpForwarder's default: 4 MiB each), so bursts are not dropped. */
  receiveBufferBytes?: number;
  sendBufferBytes?: number;
  /** Sockets, one per worker, bound with SO_REUSEPORT when > 1; must equal the TUN queues. Default 1. */
  sockets?: number;
  /**
   * Per-flow source ports: sending sockets on port+1 .. port+sourcePorts,
   * each datagram sent from the one its inner flow hashes to. 0 (default):
   * every datagram from `port`. A port of the range that another socket
   * holds is left out (bindUdp reports it). Nothing is read from them: a
   * socket filter discards what arrives (counted in ingress_drop_source_port).
   */
  sourcePorts?: number;
}

export interface NativeStartOptions {
  /** Source address of generated ICMP errors: the TUN address (upstream's proxy_amd64.c, send_net_unreachable). */
  icmpSource: string;
  /** ICMP errors per second per worker and direction (default 100) and burst (default 50). */
  icmpRatePerSec?: number;
  icmpBurst?: number;
  /** Packets per sendmmsg/recvmmsg (default 64). */
  batchSize?: number;
  /** Bytes per packet buffer (default 65536: any IPv4 packet fits). */
  bufferSize?: number;
  /**
   * After a wakeup that found work, each worker keeps polling without
   * sleeping for this many microseconds (0..1000; default 0, never):
   * lower round-trip latency for CPU (native/linux/forwarder_linux.h).
   */
  busyPollMicroseconds?: number;
  /** Offloads to probe and use (default none); see ./offload.ts. */
  offload?: OffloadSettings;
}

/** One native Datapath object (see native/addon/datapath_wrapper.h). */
export interface NativeDatapath {
  openTun(nameTemplate: string, options?: NativeTunOptions): { name: string; queues: number };
  /** Busy per-flow source ports are left out and listed. */
  bindUdp(options: NativeBindOptions): { busySourcePorts: number[]; busySourcePorts6: number[] };
  start(options: NativeStartOptions): void;
  update(state: NativeUpdate): void;
  stats(): NativeStats;
  drainRefusals(): NativeRefusal[];
  close(): void;
}

/** The datapath's part of the addon. */
export interface DatapathAddon {
  Datapath: new () => NativeDatapath;
  counterNames: readonly string[];
}

let checked: DatapathAddon | undefined;

/** The datapath face of the addon, checked: its counters must be the ones this code knows. */
export function loadDatapathAddon(): DatapathAddon {
  if (checked) return checked;
  const { file, module } = loadAddon();
  const addon = module as unknown as DatapathAddon;
  const names = addon.counterNames;
  if (names.length !== COUNTER_NAMES.length || names.some((n, i) => n !== COUNTER_NAMES[i])) {
    throw new NativeAddonLoadError(
      `the native addon at ${file} reports counters [${names.join(', ')}], which differ from this ` +
        "code's; it is stale. Rebuild it with `npm run build:native`.",
    );
  }
  checked = addon;
  return addon;
}
