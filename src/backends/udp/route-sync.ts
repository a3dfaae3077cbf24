/**
 * Lease events -> the udp datapath's routes and known peers (docs/compatibility.md §5.7),
 * as a pure mapping:
 *  - "added": route `<lease subnet> -> <PublicIP>:<local Port>`, replacing
 *    the next hop if the subnet is known; leases of every backend type are
 *    used, as upstream's udp backend does;
 *  - "removed": the subnet's route is deleted;
 *  - the known peers (for the source check) are the PublicIPs of all routes;
 *  - capabilities are per lease (./capabilities.ts): a route carries those
 *    of the lease whose subnet it is, and the datapath judges a datagram's
 *    inner packet by the route of its inner source (native/core/forwarding.h
 *    ForwardingState), so a second record with a peer's PublicIP (a stale
 *    lease from before a reinstall, a rogue record) changes only how its
 *    own subnet is treated; a peer's own flags (for its host's own traffic,
 *    whose source is in no lease's subnet) are those of the newest lease
 *    with its address;
 *  - with inner IPv6 on (`ipv6`), a lease's IPv6 subnet is routed to the same
 *    peer, and the route and the peer carry IPv6 only when its lease
 *    advertises the "ipv6" capability (an upstream node gets a v6 subnet from
 *    its etcd manager but its datapath would corrupt IPv6 packets); a lease
 *    whose v6 part changes moves its v6 route;
 *  - the peer is its PublicIP when both ends have one (the IPv4 underlay),
 *    else its PublicIPv6 when both ends can use the IPv6 underlay; a lease
 *    with neither in common is not routed (reported in `unreachable`);
 *  - IPv6 only (`ipv4` off): the leases' IPv4 part (0.0.0.0/0) is never routed.
 */
import { type Lease, type LeaseEvent, leaseKey } from '../../lease/lease';
import type { PeerRoute, UdpPeer } from '../../forwarder/udp-forwarder';
import { formatIpv4, type Ipv4Net } from '../../util/ipv4';
import { formatIpv6, type Ipv6Net } from '../../util/ipv6';
import { IPV6, KERNEL_DECAP, PARTIAL_CHECKSUMS, parseUdpCapabilities } from './capabilities';

export interface RouteChanges {
  set: PeerRoute[];
  remove: Array<Ipv4Net | Ipv6Net>;
  /** The complete peer set after the changes, or undefined when it did not change. */
  peers: UdpPeer[] | undefined;
  /** Leases added in these events that share no underlay with this node (not routed). */
  unreachable: Lease[];
}

export interface UdpRouteSyncOptions {
  /** Route the leases' IPv4 subnets (default true; false in an IPv6-only network). */
  ipv4?: boolean;
  /** Route the leases' IPv6 subnets too (the network has IPv6 and this node carries it). */
  ipv6?: boolean;
  /** This node reaches peers at their PublicIP (it has one; default true). */
  underlay4?: boolean;
  /** This node reaches peers at their PublicIPv6 (it has one and an IPv6 socket; default false). */
  underlay6?: boolean;
}

/** A lease's capabilities: those of its IPv4 part and of its IPv6 part together. */
function leaseCapabilities(lease: Lease): ReadonlySet<string> {
  return new Set([...parseUdpCapabilities(lease.attrs.backendData), ...parseUdpCapabilities(lease.attrs.backendV6Data)]);
}

/** What a routed lease says of its peer: its address, age and capabilities. */
interface RoutedPeer {
  peer: string;
  since: number;
  partialChecksums: boolean;
  ipv6: boolean;
}

export class UdpRouteSync {
  /** v4 routes by lease key. */
  private readonly routes = new Map<string, PeerRoute>();
  /** v6 routes by lease key. */
  private readonly routes6 = new Map<string, PeerRoute>();
  /** The peer of every routed lease, by lease key. */
  private readonly leasePeers = new Map<string, RoutedPeer>();
  private peerKey = '';
  private readonly ipv4: boolean;
  private readonly ipv6: boolean;
  private readonly underlay4: boolean;
  private readonly underlay6: boolean;

  constructor(private readonly port: number, options: UdpRouteSyncOptions = {}) {
    this.ipv4 = options.ipv4 ?? true;
    this.ipv6 = options.ipv6 ?? false;
    this.underlay4 = options.underlay4 ?? true;
    this.underlay6 = options.underlay6 ?? false;
  }

  /** The address a lease's peer is reached at, or undefined when no underlay is common. */
  private peerOf(lease: Lease): string | undefined {
    if (this.underlay4 && lease.attrs.publicIp !== 0) return formatIpv4(lease.attrs.publicIp);
    if (this.underlay6 && lease.attrs.publicIpv6 !== undefined) return formatIpv6(lease.attrs.publicIpv6);
    return undefined;
  }

  get size(): number {
    return this.routes.size + this.routes6.size;
  }

  get current(): PeerRoute[] {
    return [...this.routes.values(), ...this.routes6.values()];
  }

  apply(events: readonly LeaseEvent[]): RouteChanges {
    const set = new Map<string, PeerRoute>();
    const remove = new Map<string, Ipv4Net | Ipv6Net>();
    const setRoute = (r: PeerRoute) => {
      const k = r.subnet.toString();
      set.set(k, r);
      remove.delete(k);
    };
    const removeRoute = (n: Ipv4Net | Ipv6Net) => {
      const k = n.toString();
      remove.set(k, n);
      set.delete(k);
    };
    const unreachable: Lease[] = [];
    const withdraw = (key: string) => {
      this.leasePeers.delete(key);
      for (const table of [this.routes, this.routes6]) {
        const old = table.get(key);
        if (old) {
          table.delete(key);
          removeRoute(old.subnet);
        }
      }
    };
    for (const ev of events) {
      const key = leaseKey(ev.lease);
      if (ev.type === 'removed') {
        withdraw(key);
        continue;
      }
      const peer = this.peerOf(ev.lease);
      if (peer === undefined) {
        withdraw(key);
        unreachable.push(ev.lease);
        continue;
      }
      const caps = leaseCapabilities(ev.lease);
      const base = {
        peer,
        port: this.port,
        partialChecksums: caps.has(PARTIAL_CHECKSUMS),
        ...(this.ipv6 ? { ipv6: caps.has(IPV6) } : {}),
        ...(caps.has(KERNEL_DECAP) ? { kernelDecap: true } : {}),
      };
      this.leasePeers.set(key, { peer, since: ev.since ?? 0, partialChecksums: base.partialChecksums, ipv6: base.ipv6 === true });
      const wanted: Array<[Map<string, PeerRoute>, Ipv4Net | Ipv6Net | undefined]> = [
        [this.routes, this.ipv4 ? ev.lease.subnet.canonical() : undefined],
        [this.routes6, this.ipv6 ? ev.lease.ipv6Subnet?.canonical() : undefined],
      ];
      for (const [table, subnet] of wanted) {
        const old = table.get(key);
        if (old && old.subnet.toString() !== subnet?.toString()) {
          table.delete(key);
          removeRoute(old.subnet);
        }
        if (subnet) {
          const route: PeerRoute = { ...base, subnet };
          table.set(key, route);
          setRoute(route);
        }
      }
    }
    // Each address speaks with its newest lease (then the greater lease key, so the choice is stable).
    const byAddress = new Map<string, RoutedPeer & { key: string }>();
    for (const [key, p] of this.leasePeers) {
      if (!this.routes.has(key) && !this.routes6.has(key)) continue;
      const seen = byAddress.get(p.peer);
      if (!seen || p.since > seen.since || (p.since === seen.since && key > seen.key)) byAddress.set(p.peer, { ...p, key });
    }
    const peers = [...byAddress]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([address, f]): UdpPeer => (this.ipv6 ? { address, partialChecksums: f.partialChecksums, ipv6: f.ipv6 } : { address, partialChecksums: f.partialChecksums }));
    const peerKey = peers.map((p) => `${p.address}${p.partialChecksums ? '+' : ''}${p.ipv6 ? '6' : ''}`).join(',');
    const changed = peerKey !== this.peerKey;
    this.peerKey = peerKey;
    return { set: [...set.values()], remove: [...remove.values()], peers: changed ? peers : undefined, unreachable };
  }
}
