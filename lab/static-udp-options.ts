/**
 * The options of lab/bin/static-udp-node (a udp node with static routes),
 * and what they imply, shared by the node and lab/static-udp-nodes.ts, which
 * starts several and tells each what the others take.
 */
import { takesPartialChecksums } from '../src/backends/udp/config';
import { ALL_OFFLOADS, combineOffloads, type OffloadSettings, parseOffloadEnv } from '../src/forwarder/offload';
import { offloadBesideFastPath } from '../src/backends/udp/fast-path';

export interface StaticUdpNodeOptions {
  tunTemplate?: string;
  bindAddress: string;
  port?: number;
  subnet: string;
  network: string;
  underlayMtu?: number;
  udpMtu?: number;
  /** Routes; `partialChecksums`: the peer takes them; `kernelDecap`: it runs the kernel fast path (its lease would say so). */
  routes: Array<{ subnet: string; peer: string; partialChecksums?: boolean; kernelDecap?: boolean }>;
  /** Run the kernel fast path beside the user-space datapath (the udp backend's "Datapath": "ebpf"). */
  ebpf?: boolean;
  peers?: string[];
  /** This node's own addresses (default: bindAddress): inner packets from them are refused. */
  localAddresses?: string[];
  sourceCheck?: boolean;
  allowExternalSources?: boolean;
  /** As the udp backend option (default true): with it, this node takes partial checksums. */
  advertiseCapabilities?: boolean;
  /** Per-flow source ports (default as the udp backend). */
  sourcePorts?: number;
  bufferSize?: number;
  batchSize?: number;
  /** Busy polling after work, µs (the udp backend's BusyPollMicroseconds). */
  busyPollMicroseconds?: number;
  /** Workers (default as the udp backend: the cores, at most 8). */
  workers?: number;
  /** Offloads (default all, as the udp backend), narrowed by `offloadEnv` when given. */
  offload?: Partial<OffloadSettings>;
  /** A FLANNEL_TS_OFFLOAD value to apply on top of `offload`. */
  offloadEnv?: string;
  /** Faults to arm (lab/test-addon.ts TEST_FAULTS); the test build of the addon is loaded when given. */
  testFaults?: string[];
}

/** The offloads the node uses: `offload` (default all, as the udp backend), narrowed by `offloadEnv`; UDP GRO off beside the fast path. */
export function staticNodeOffload(o: Pick<StaticUdpNodeOptions, 'offload' | 'offloadEnv' | 'ebpf'>): OffloadSettings {
  const offload = combineOffloads({ ...ALL_OFFLOADS, ...o.offload }, parseOffloadEnv(o.offloadEnv));
  return o.ebpf ? offloadBesideFastPath(offload) : offload;
}

/** Whether the node takes partial checksums, by the udp backend's rule (never beside the fast path). */
export function staticNodeTakesPartialChecksums(o: Omit<StaticUdpNodeOptions, 'bindAddress' | 'subnet' | 'network' | 'routes'>): boolean {
  return !o.ebpf && takesPartialChecksums({ advertiseCapabilities: o.advertiseCapabilities ?? true, sourceCheck: o.sourceCheck ?? true }, staticNodeOffload(o));
}
