/**
 * The udp backend's options: the `Backend` object of the network config
 * (docs/compatibility.md §2.4). Upstream knows only `Port`; `MTU`, `SourceCheck`,
 * `AllowExternalSources`, `SourcePorts`, `AdvertiseCapabilities`, `Workers`,
 * `Offload`, `Datapath` and `BusyPollMicroseconds` are ours (documented in docs/operations.md); upstream ignores them,
 * so one network config serves mixed clusters.
 */
import * as os from 'node:os';
import { ALL_OFFLOADS, OFFLOAD_NAMES, type OffloadSettings } from '../../forwarder/offload';
import { UDP_ENCAP_OVERHEAD } from '../../routing/tun-device';
import { boolField, fieldCI, intField, isJsonObject, JsonFieldError, stringField } from '../../util/go-json';
import { NamedError } from '../../util/errors';

/** Upstream's default udp port (docs/compatibility.md §2.4, §5.1). */
export const DEFAULT_UDP_PORT = 8285;

/** The smallest MTU an IPv4 link may have (RFC 791: every host must accept 68-byte datagrams). */
const MIN_TUN_MTU = 68;

export interface UdpBackendConfig {
  /** UDP port every node listens on and sends to (all nodes must agree, docs/compatibility.md §5.3). */
  port: number;
  /** The underlay MTU to assume; undefined = the external interface's MTU. */
  mtu: number | undefined;
  /**
   * Accept a datagram only from a known peer's PublicIP, carrying an inner
   * source in a subnet leased to that peer (or the peer itself) (default
   * true). Off: any sender, inner source anywhere in the Network but this
   * node's subnet (NAT between nodes).
   */
  sourceCheck: boolean;
  /** Accept inner sources outside the Network from a peer (unmasqueraded external clients; default false). */
  allowExternalSources: boolean;
  /**
   * Per-flow source ports: datagrams leave from Port+1 .. Port+sourcePorts,
   * chosen by a hash of the inner flow, so receivers spread flows over their
   * workers (default DEFAULT_SOURCE_PORTS); 0: everything from Port, as upstream.
   */
  sourcePorts: number;
  /**
   * Publish the capability object in the lease's BackendData
   * (./capabilities.ts; default true). False: upstream's exact lease bytes,
   * and flannel-ts peers treat this node as upstream.
   */
  advertiseCapabilities: boolean;
  /** Forwarding workers: TUN queues, sockets and threads (default: the cores, at most 8). */
  workers: number;
  /** Offloads the config allows (default all; FLANNEL_TS_OFFLOAD may narrow them further). */
  offload: OffloadSettings;
  /**
   * Who forwards (docs/datapath.md, "The kernel fast path"): "user", the
   * user-space datapath alone (default: every packet passes flannel0);
   * "ebpf", the kernel fast path for what it handles, the user-space path
   * for the rest (refused at start where it cannot run); "auto", ebpf where
   * it can run, else user.
   */
  datapath: DatapathMode;
  /**
   * After a wakeup that found work, each worker keeps polling its TUN queue
   * and sockets without sleeping for this many microseconds before it
   * blocks (0..MAX_BUSY_POLL_MICROSECONDS; default 0, never): lower round
   * trips for CPU time, as the kernel's SO_BUSY_POLL (docs/datapath.md).
   */
  busyPollMicroseconds: number;
}

/** The longest busy poll: past it a worker burns a core between packets that are far apart anyway. */
export const MAX_BUSY_POLL_MICROSECONDS = 1000;

export type DatapathMode = 'user' | 'ebpf' | 'auto';
export const DATAPATH_MODES: readonly DatapathMode[] = ['user', 'ebpf', 'auto'];
/** Overrides the Backend option `Datapath` on one node. */
export const DATAPATH_ENV = 'FLANNEL_TS_DATAPATH';

/**
 * Source ports by default: enough to spread flows over a receiver's workers
 * and a NIC's queues, few enough that conntrack tables on both hosts and on
 * NAT gateways see tens of entries per peer, not thousands.
 */
export const DEFAULT_SOURCE_PORTS = 16;
/** The most source ports (native/addon/datapath_wrapper.cc kMaxSourcePorts). */
export const MAX_SOURCE_PORTS = 64;

/** The default worker count caps here: past it, more queues only cost memory (one tunnel between two hosts uses one queue per direction, so more queues help only with many flows: slackhq/nebula#382). */
export const MAX_DEFAULT_WORKERS = 8;
/** The most workers the datapath runs (native/addon/datapath_wrapper.cc kMaxWorkers). */
export const MAX_WORKERS = 64;

export function defaultWorkers(cores: number = os.availableParallelism()): number {
  return Math.max(1, Math.min(cores, MAX_DEFAULT_WORKERS));
}

function defaultUdpBackendConfig(): UdpBackendConfig {
  return {
    port: DEFAULT_UDP_PORT,
    mtu: undefined,
    sourceCheck: true,
    allowExternalSources: false,
    sourcePorts: DEFAULT_SOURCE_PORTS,
    advertiseCapabilities: true,
    workers: defaultWorkers(),
    offload: { ...ALL_OFFLOADS },
    datapath: 'user',
    busyPollMicroseconds: 0,
  };
}

/** `"Offload": {"TSO": false, "GRO": false}`: keys as Go decodes them (case-insensitive), missing ones true. */
function parseOffloadField(raw: Record<string, unknown>, prefix: string): OffloadSettings {
  const v = fieldCI(raw, 'Offload');
  if (v === undefined || v === null) return { ...ALL_OFFLOADS };
  if (!isJsonObject(v)) {
    throw new UdpBackendConfigError(
      `${prefix}Offload must be an object such as {"TSO": true, "USO": true, "GSO": true, "GRO": false}`,
    );
  }
  const out = { ...ALL_OFFLOADS };
  for (const name of OFFLOAD_NAMES) out[name] = boolField(v, name.toUpperCase(), true);
  return out;
}

export class UdpBackendConfigError extends NamedError {}

/** Parses the raw `Backend` object (or undefined when the config has none). */
export function parseUdpBackendConfig(raw: unknown): UdpBackendConfig {
  const prefix = 'error decoding UDP backend config: ';
  if (raw === undefined || raw === null) return defaultUdpBackendConfig();
  if (!isJsonObject(raw)) throw new UdpBackendConfigError(`${prefix}the Backend value must be a JSON object`);
  let port: number;
  let mtu: number;
  let sourceCheck: boolean;
  let allowExternalSources: boolean;
  let sourcePorts: number;
  let advertiseCapabilities: boolean;
  let workers: number;
  let offload: OffloadSettings;
  let datapath: string;
  let busyPollMicroseconds: number;
  try {
    port = intField(raw, 'Port', DEFAULT_UDP_PORT);
    mtu = intField(raw, 'MTU', 0);
    sourceCheck = boolField(raw, 'SourceCheck', true);
    allowExternalSources = boolField(raw, 'AllowExternalSources', false);
    sourcePorts = intField(raw, 'SourcePorts', DEFAULT_SOURCE_PORTS);
    advertiseCapabilities = boolField(raw, 'AdvertiseCapabilities', true);
    workers = intField(raw, 'Workers', 0);
    offload = parseOffloadField(raw, prefix);
    datapath = stringField(raw, 'Datapath', 'user');
    busyPollMicroseconds = intField(raw, 'BusyPollMicroseconds', 0);
  } catch (e) {
    if (e instanceof JsonFieldError) throw new UdpBackendConfigError(prefix + e.message);
    throw e;
  }
  if (port < 1 || port > 65535) {
    throw new UdpBackendConfigError(`${prefix}Port must be 1..65535, got ${port}`);
  }
  if (mtu !== 0 && (mtu < MIN_TUN_MTU + UDP_ENCAP_OVERHEAD || mtu > 65535)) {
    throw new UdpBackendConfigError(
      `${prefix}MTU is the underlay MTU and must be ${MIN_TUN_MTU + UDP_ENCAP_OVERHEAD}..65535 ` +
        `(flannel0 gets MTU - ${UDP_ENCAP_OVERHEAD}), got ${mtu}`,
    );
  }
  if (sourcePorts < 0 || sourcePorts > MAX_SOURCE_PORTS || port + sourcePorts > 65535) {
    throw new UdpBackendConfigError(
      `${prefix}SourcePorts must be 0..${MAX_SOURCE_PORTS} with Port + SourcePorts at most 65535 ` +
        `(0: every datagram from Port, as upstream), got ${sourcePorts}`,
    );
  }
  if (workers < 0 || workers > MAX_WORKERS) {
    throw new UdpBackendConfigError(
      `${prefix}Workers must be 1..${MAX_WORKERS} (or 0 / absent for the default: the cores, at most ` +
        `${MAX_DEFAULT_WORKERS}), got ${workers}`,
    );
  }
  if (!DATAPATH_MODES.includes(datapath as DatapathMode)) {
    throw new UdpBackendConfigError(`${prefix}Datapath must be one of ${DATAPATH_MODES.join(', ')}, got ${JSON.stringify(datapath)}`);
  }
  if (busyPollMicroseconds < 0 || busyPollMicroseconds > MAX_BUSY_POLL_MICROSECONDS) {
    throw new UdpBackendConfigError(
      `${prefix}BusyPollMicroseconds must be 0..${MAX_BUSY_POLL_MICROSECONDS} (0: workers sleep as soon as they are idle), got ${busyPollMicroseconds}`,
    );
  }
  return {
    datapath: datapath as DatapathMode,
    busyPollMicroseconds,
    port,
    mtu: mtu === 0 ? undefined : mtu,
    sourceCheck,
    allowExternalSources,
    sourcePorts,
    advertiseCapabilities,
    workers: workers === 0 ? defaultWorkers() : workers,
    offload,
  };
}

/**
 * Whether this node takes partial checksums, and says so in its lease: it
 * advertises, flannel0 has the virtio-net header with checksum offload (TSO
 * or USO allowed: the header carries NEEDS_CSUM both ways), and SourceCheck
 * is on (every datagram maps to a lease, whose capability is then known).
 */
export function takesPartialChecksums(cfg: Pick<UdpBackendConfig, 'advertiseCapabilities' | 'sourceCheck'>, offload: OffloadSettings): boolean {
  return cfg.advertiseCapabilities && cfg.sourceCheck && (offload.tso || offload.uso);
}

/**
 * flannel0's MTU: the underlay MTU minus the encapsulation, IPv4+UDP
 * (docs/compatibility.md §5.2, §5.8), or IPv6+UDP when the IPv6 underlay may
 * carry it (`overhead` UDP6_ENCAP_OVERHEAD).
 */
export function tunMtu(cfg: Pick<UdpBackendConfig, 'mtu'>, interfaceMtu: number, overhead = UDP_ENCAP_OVERHEAD): number {
  return (cfg.mtu ?? interfaceMtu) - overhead;
}
