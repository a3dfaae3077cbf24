/**
 * UdpForwarder: the typed facade over the native udp datapath.
 *
 * The datapath forwards between the TUN device and the UDP socket on its own
 * threads; this class only pushes declarative state into it (routes, known
 * peers, the source-check switch) and pulls counters. Nothing here runs per
 * packet.
 *
 * Order of use: openTun() -> configure the device (src/routing) -> bindUdp()
 * -> start() -> setRoutes()/applyRouteChanges()/setPeers()/stats() ... ->
 * close(). Routes and peers may be set before start().
 */
import { formatIpv4, Ipv4Net } from '../util/ipv4';
import { datapathStartError, tunOpenError, udpSocketError } from './errors';
import {
  COUNTER_NAMES,
  type CounterName,
  type Counters,
  loadNativeAddon,
  type NativeAddon,
  type NativeDatapath,
  type NativeRoute,
} from './native-binding';
import type { OffloadReport, OffloadSettings } from './offload';

/** A remote subnet and the peer that owns it (compat §5.7). */
export interface PeerRoute {
  subnet: Ipv4Net;
  /** The peer's PublicIP (dotted quad). */
  peer: string;
  /** The peer's UDP port: upstream always uses the local Port (compat §5.3). */
  port: number;
}

export interface StartOptions {
  /** Source address of generated ICMP errors: the TUN address (compat §5.6). */
  icmpSource: string;
  /** ICMP errors per second and thread (default 100) and burst (default 50). */
  icmpRatePerSec?: number;
  icmpBurst?: number;
  /** Packets per sendmmsg/recvmmsg (default 64). */
  batchSize?: number;
  /** Bytes per packet buffer (default 65536: any IPv4 packet fits). */
  bufferSize?: number;
  /** Offloads to probe and use (default none); see ./offload.ts. */
  offload?: OffloadSettings;
  /** Test-only native failures (FLANNEL_TS_TEST_FAULTS). */
  testFaults?: string[];
}

export interface TunOptions {
  /** Worker count: TUN queues (default 1). */
  queues?: number;
  /** Open with a virtio-net header (needed by TSO, USO, GRO; default false). */
  vnetHdr?: boolean;
}

export interface BindOptions {
  address: string;
  port: number;
  /** Socket buffer sizes (default 4 MiB each), so bursts are not dropped. */
  receiveBufferBytes?: number;
  sendBufferBytes?: number;
  /** One socket per worker (default 1); must equal the TUN queues. */
  sockets?: number;
}

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

function toNativeRoute(r: PeerRoute): NativeRoute {
  return { network: formatIpv4(r.subnet.network), prefixLen: r.subnet.prefixLen, peer: r.peer, port: r.port };
}

export class UdpForwarder {
  private readonly native: NativeDatapath;
  private tunName: string | undefined;
  private closed = false;

  constructor(addon: NativeAddon = loadNativeAddon()) {
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

  /** Binds the UDP socket to address:port. Throws UdpSocketError. */
  bindUdp(options: BindOptions): void {
    try {
      this.native.bindUdp({
        address: options.address,
        port: options.port,
        receiveBufferBytes: options.receiveBufferBytes ?? DEFAULT_SOCKET_BUFFER,
        sendBufferBytes: options.sendBufferBytes ?? DEFAULT_SOCKET_BUFFER,
        sockets: options.sockets ?? 1,
      });
    } catch (e) {
      throw udpSocketError(e, options.address, options.port);
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

  /** Replaces the whole route table. */
  setRoutes(routes: readonly PeerRoute[]): void {
    this.native.replaceRoutes(routes.map(toNativeRoute));
  }

  /** Sets and removes routes in one published update. */
  applyRouteChanges(set: readonly PeerRoute[], remove: readonly Ipv4Net[]): void {
    this.native.updateRoutes(
      set.map(toNativeRoute),
      remove.map((n) => ({ network: formatIpv4(n.network), prefixLen: n.prefixLen })),
    );
  }

  /** Replaces the set of addresses datagrams are accepted from (source check). */
  setPeers(addresses: readonly string[]): void {
    this.native.replacePeers([...addresses]);
  }

  setSourceCheck(enabled: boolean): void {
    this.native.setSourceCheck(enabled);
  }

  stats(): DatapathStats {
    const s = this.native.stats();
    return new DatapathStats(Object.freeze({ ...s.counters }), s.routes, s.peers, s.running, s.workers, s.offload, s.heartbeatAgeMs);
  }

  /** Addresses newly rejected by the source check since the last call (each reported once). */
  drainUnknownSources(): string[] {
    return this.native.drainUnknownSources();
  }

  /**
   * Stops the threads and closes the socket and the TUN; the device, its
   * address and its route disappear with it (compat §5.7). Idempotent.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.native.close();
  }
}
