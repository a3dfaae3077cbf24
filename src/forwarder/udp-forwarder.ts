/**
 * UdpForwarder: the typed facade over the native udp datapath.
 *
 * The datapath forwards between the TUN device and the UDP socket on its own
 * threads; this class only pushes declarative state into it (routes, known
 * peers, the ingress policy) and pulls counters. Nothing here runs per
 * packet.
 *
 * Order of use: openTun() -> configure the device (src/routing) -> bindUdp()
 * -> start() -> update()/stats() ... -> close(). update() may come before
 * start(). Every update() is one publication: the forwarding threads see
 * its routes, peers, policy and local addresses together.
 */
import { formatIpv4, Ipv4Net } from '../util/ipv4';
import { formatIpv6, type Ipv6Net } from '../util/ipv6';
import { datapathStartError, tunOpenError, udpSocketError } from './errors';
import {
  COUNTER_NAMES,
  type CounterName,
  type Counters,
  type DatapathAddon,
  loadDatapathAddon,
  type NativeBindOptions,
  type NativeDatapath,
  type NativeIngressPolicy,
  type NativePrefix,
  type NativeRefusal,
  type NativeRoute,
  type NativeStartOptions,
  type NativeTunOptions,
  type NativeUpdate,
} from './native-datapath';
import type { OffloadReport } from './offload';

/**
 * A remote subnet and the peer that owns it (upstream's udp_network_amd64.go,
 * processSubnetEvents). An IPv6 subnet routes inner IPv6 to the peer's IPv4
 * endpoint; only a peer with `ipv6` gets such packets.
 */
export interface PeerRoute {
  subnet: Ipv4Net | Ipv6Net;
  /** The peer's PublicIP (dotted quad). */
  peer: string;
  /** The peer's UDP port: upstream always uses the local Port (udp_network_amd64.go). */
  port: number;
  /** The peer takes partial TCP/UDP checksums (src/backends/udp/capabilities.ts); default false. */
  partialChecksums?: boolean;
  /** The peer's datapath carries inner IPv6 (src/backends/udp/capabilities.ts); default false. */
  ipv6?: boolean;
  /** The peer unwraps in the kernel (KERNEL_DECAP): the kernel fast path may send to it; the user-space path ignores this. */
  kernelDecap?: boolean;
}

/**
 * A known peer (the source check) and the capabilities of its newest lease:
 * they apply only to its host's own traffic (inner source = its PublicIP);
 * every other packet is judged by the lease its inner source belongs to.
 */
export interface UdpPeer {
  address: string;
  partialChecksums: boolean;
  /** Inner IPv6 is accepted from it. */
  ipv6?: boolean;
}

/** native/core/lpm_table.h PeerFlags. */
const PEER_PARTIAL_CHECKSUMS = 1;
const PEER_IPV6 = 2;

function peerFlags(p: { partialChecksums?: boolean | undefined; ipv6?: boolean | undefined }): number {
  return (p.partialChecksums ? PEER_PARTIAL_CHECKSUMS : 0) | (p.ipv6 ? PEER_IPV6 : 0);
}

/**
 * Which inner packets a datagram may carry (native/core/forwarding.h
 * IngressPolicy): the inner destination must lie in `ownSubnet`; with
 * `sourceCheck` the inner source must lie in a subnet routed to the sender
 * (or be the sender itself), without it (NAT between nodes) anywhere in
 * `network` but `ownSubnet`; a source outside `network` only with
 * `allowExternalSources`.
 */
export interface IngressPolicy {
  sourceCheck: boolean;
  allowExternalSources: boolean;
  /** This node advertises partial checksums: they are sent to and taken from leases that advertise them too. */
  partialChecksums: boolean;
  ownSubnet: Ipv4Net;
  network: Ipv4Net;
  /** Inner IPv6: the own v6 subnet and the IPv6Network, the same rules applied (both or neither). */
  ownSubnet6?: Ipv6Net;
  network6?: Ipv6Net;
}

export type Refusal = NativeRefusal;

/**
 * One publication of forwarding state: the parts given replace the
 * datapath's, the parts absent stay. Routes come whole (`routes`) or as
 * changes (`setRoutes`, `removeRoutes`).
 */
export interface ForwardingUpdate {
  routes?: readonly PeerRoute[];
  setRoutes?: readonly PeerRoute[];
  removeRoutes?: readonly (Ipv4Net | Ipv6Net)[];
  peers?: readonly (string | UdpPeer)[];
  policy?: IngressPolicy;
  /** Every address of this node: no inner packet may come from one of them. */
  localAddresses?: readonly string[];
}

/** What bindUdp() could not have: per-flow source ports another socket holds (left out). */
export interface BindReport {
  busySourcePorts: number[];
  busySourcePorts6: number[];
}

export type StartOptions = NativeStartOptions;
export type TunOptions = NativeTunOptions;
export type BindOptions = NativeBindOptions;

type DropDirection = 'egress' | 'ingress';

/** A point-in-time copy of the datapath's counters. */
export class DatapathStats {
  constructor(
    readonly counters: Readonly<Counters>,
    readonly routes: number,
    readonly peers: number,
    readonly running: boolean,
    readonly workers: number = 0,
    readonly offload: OffloadReport | undefined = undefined,
    /** ms since the least recently active forwarding thread made progress (undefined before start). */
    readonly heartbeatAgeMs: number | undefined = undefined,
  ) {}

  get(name: CounterName): number {
    return this.counters[name];
  }

  /** Drop counts by reason for one direction, e.g. {no_route: 3, ttl_expired: 1}. */
  drops(direction: DropDirection): Record<string, number> {
    const prefix = `${direction}_drop_`;
    const out: Record<string, number> = {};
    for (const name of COUNTER_NAMES) {
      if (name.startsWith(prefix)) out[name.slice(prefix.length)] = this.counters[name];
    }
    return out;
  }

  totalDrops(direction: DropDirection): number {
    return Object.values(this.drops(direction)).reduce((a, b) => a + b, 0);
  }
}

const DEFAULT_SOCKET_BUFFER = 4 * 1024 * 1024;

function toNativePrefix(n: Ipv4Net | Ipv6Net): NativePrefix {
  return { network: n instanceof Ipv4Net ? formatIpv4(n.network) : formatIpv6(n.network), prefixLen: n.prefixLen };
}

function toNativePolicy(policy: IngressPolicy): NativeIngressPolicy {
  return {
    sourceCheck: policy.sourceCheck,
    allowExternalSources: policy.allowExternalSources,
    partialChecksums: policy.partialChecksums,
    ownSubnet: toNativePrefix(policy.ownSubnet),
    network: toNativePrefix(policy.network),
    ...(policy.ownSubnet6 && policy.network6 ? { ownSubnet6: toNativePrefix(policy.ownSubnet6), network6: toNativePrefix(policy.network6) } : {}),
  };
}

function toNativeRoute(r: PeerRoute): NativeRoute {
  const route: NativeRoute = { ...toNativePrefix(r.subnet), peer: r.peer, port: r.port };
  const flags = peerFlags(r);
  if (flags !== 0) route.flags = flags;
  return route;
}

export class UdpForwarder {
  private readonly native: NativeDatapath;
  private tunName: string | undefined;
  private closed = false;

  constructor(addon: DatapathAddon = loadDatapathAddon()) {
    this.native = new addon.Datapath();
  }

  /** Creates the TUN device; returns the name the kernel chose. Throws TunOpenError. */
  openTun(nameTemplate: string, options: TunOptions = {}): string {
    try {
      this.tunName = this.native.openTun(nameTemplate, options).name;
    } catch (e) {
      throw tunOpenError(e, nameTemplate);
    }
    return this.tunName;
  }

  get deviceName(): string | undefined {
    return this.tunName;
  }

  /**
   * Binds the UDP sockets to address:port (and [address6]:port for the IPv6
   * underlay), and the per-flow source ports that are free. Throws UdpSocketError.
   */
  bindUdp(options: BindOptions): BindReport {
    try {
      return this.native.bindUdp({
        ...(options.address !== undefined ? { address: options.address } : {}),
        ...(options.address6 !== undefined ? { address6: options.address6 } : {}),
        port: options.port,
        receiveBufferBytes: options.receiveBufferBytes ?? DEFAULT_SOCKET_BUFFER,
        sendBufferBytes: options.sendBufferBytes ?? DEFAULT_SOCKET_BUFFER,
        sockets: options.sockets ?? 1,
        sourcePorts: options.sourcePorts ?? 0,
      });
    } catch (e) {
      const where = [options.address, options.address6 && `[${options.address6}]`].filter((a) => a !== undefined).join(' and ');
      throw udpSocketError(e, where, options.port, options.sourcePorts ?? 0);
    }
  }

  /** Starts the forwarding threads. Throws DatapathStartError. */
  start(options: StartOptions): void {
    try {
      this.native.start(options);
    } catch (e) {
      throw datapathStartError(e);
    }
  }

  /** Publishes the parts of the forwarding state that changed, all at once. */
  update(change: ForwardingUpdate): void {
    const native: NativeUpdate = {};
    if (change.routes) native.routes = change.routes.map(toNativeRoute);
    if (change.setRoutes) native.setRoutes = change.setRoutes.map(toNativeRoute);
    if (change.removeRoutes) native.removeRoutes = change.removeRoutes.map(toNativePrefix);
    if (change.peers) native.peers = change.peers.map((p) => (typeof p === 'string' ? p : { address: p.address, flags: peerFlags(p) }));
    if (change.policy) native.policy = toNativePolicy(change.policy);
    if (change.localAddresses) native.localAddresses = [...change.localAddresses];
    this.native.update(native);
  }

  stats(): DatapathStats {
    const s = this.native.stats();
    return new DatapathStats(Object.freeze({ ...s.counters }), s.routes, s.peers, s.running, s.workers, s.offload, s.heartbeatAgeMs);
  }

  /** Datagrams newly refused by the ingress policy since the last call (each sender and reason once). */
  drainRefusals(): NativeRefusal[] {
    return this.native.drainRefusals();
  }

  /**
   * Stops the threads and closes the socket and the TUN; the device, its
   * address and its route disappear with it (as upstream's). Idempotent.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.native.close();
  }
}
