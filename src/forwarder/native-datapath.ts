/**
 * The native addon's surface, and its loader.
 *
 * The interfaces here are the contract with native/addon/datapath_wrapper.h;
 * UdpForwarder takes a NativeAddon as a constructor argument so unit tests
 * can substitute a fake.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
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
] as const;

export type CounterName = (typeof COUNTER_NAMES)[number];
export type Counters = Record<CounterName, number>;

export interface NativeRoute {
  network: string;
  prefixLen: number;
  peer: string;
  port: number;
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
  /** IFF_VNET_HDR (needed by TSO, USO and GRO). Default false. */
  vnetHdr?: boolean;
}

export interface NativeBindOptions {
  address: string;
  port: number;
  receiveBufferBytes?: number;
  sendBufferBytes?: number;
  /** Sockets, one per worker, bound with SO_REUSEPORT when > 1. Default 1. */
  sockets?: number;
}

export interface NativeStartOptions {
  icmpSource: string;
  icmpRatePerSec?: number;
  icmpBurst?: number;
  batchSize?: number;
  bufferSize?: number;
  offload?: OffloadSettings;
  testFaults?: string[];
}

/** One native Datapath object (see native/addon/datapath_wrapper.h). */
export interface NativeDatapath {
  openTun(nameTemplate: string, options?: NativeTunOptions): { name: string; queues: number };
  bindUdp(options: NativeBindOptions): void;
  start(options: NativeStartOptions): void;
  replaceRoutes(routes: NativeRoute[]): void;
  updateRoutes(set: NativeRoute[], remove: NativeRouteKey[]): void;
  replacePeers(addresses: string[]): void;
  setSourceCheck(enabled: boolean): void;
  stats(): NativeStats;
  drainUnknownSources(): string[];
  close(): void;
}

/** One rtnetlink notification as the addon reports it (native/linux/netlink_monitor_linux.h). */
export interface NativeNotification {
  kind: 'link' | 'address' | 'route' | 'neighbor';
  deleted: boolean;
  /** Absent for routes. */
  ifindex?: number;
}

export interface NativeNetlinkMonitor {
  close(): void;
}

export interface NativeAddon {
  Datapath: new () => NativeDatapath;
  /**
   * rtnetlink notifications (link, IPv4 address and route, neighbour):
   * `onBatch` gets each wakeup's notifications and the count of ENOBUFS
   * reports (lost notifications), plus an error when a receive failed otherwise.
   */
  NetlinkMonitor: new (
    recvBufferBytes: number,
    onBatch: (events: NativeNotification[], overflows: number, error?: Error) => void,
  ) => NativeNetlinkMonitor;
  counterNames: readonly string[];
  /** Sends one datagram to a systemd notification socket (native/linux/sd_notify_linux.h). */
  sdNotify(socketPath: string, message: string): void;
}

/** Thrown when the addon cannot be found or does not match this code. */
export class NativeAddonLoadError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NativeAddonLoadError';
  }
}

const ADDON_FILE = 'flannel_native.node';

/** The repository root: out/src/forwarder -> ../../.. (compiled) */
function packageRoot(): string {
  let dir = __dirname;
  for (let i = 0; i < 6; i++) {
    if (fs.existsSync(path.join(dir, 'package.json')) && fs.existsSync(path.join(dir, 'binding.gyp'))) {
      return dir;
    }
    dir = path.dirname(dir);
  }
  return path.resolve(__dirname, '..', '..', '..');
}

let cached: NativeAddon | undefined;

/**
 * Loads the addon from explicit candidate paths (FLANNEL_TS_NATIVE_ADDON,
 * then build/Release, then build/Debug) and checks that its counters are the
 * ones this code knows.
 */
export function loadNativeAddon(): NativeAddon {
  if (cached) return cached;
  const root = packageRoot();
  const candidates = [
    process.env['FLANNEL_TS_NATIVE_ADDON'],
    path.join(root, 'build', 'Release', ADDON_FILE),
    path.join(root, 'build', 'Debug', ADDON_FILE),
  ].filter((p): p is string => typeof p === 'string' && p.length > 0);
  const found = candidates.find((p) => fs.existsSync(p));
  if (!found) {
    throw new NativeAddonLoadError(
      `the flannel-ts native addon (${ADDON_FILE}) was not found; tried: ${candidates.join(', ')}. ` +
        'Build it with `npm ci` or `npm run build:native` (needs g++, make and python3).',
    );
  }
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const addon = require(found) as NativeAddon;
  const names = addon.counterNames;
  if (names.length !== COUNTER_NAMES.length || names.some((n, i) => n !== COUNTER_NAMES[i])) {
    throw new NativeAddonLoadError(
      `the native addon at ${found} reports counters [${names.join(', ')}], which differ from this ` +
        'code\'s; it is stale. Rebuild it with `npm run build:native`.',
    );
  }
  cached = addon;
  return addon;
}
