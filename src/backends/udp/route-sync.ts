/**
 * Lease events -> the udp datapath's routes and known peers (docs/compatibility.md §5.7),
 * as a pure mapping:
 *  - "added": route `<lease subnet> -> <PublicIP>:<local Port>`, replacing
 *    the next hop if the subnet is known; leases of every backend type are
 *    used, as upstream's udp backend does;
 *  - "removed": the subnet's route is deleted;
 *  - the known peers (for the source check) are the PublicIPs of all routes;
 *  - a route (and its peer) takes partial checksums when the lease
 *    advertises it (./capabilities.ts); a peer with several leases only
 *    when all of them do;
 *  - with inner IPv6 on (`ipv6`), a lease's IPv6 subnet is routed to the same
 *    PublicIP, and the route and the peer carry IPv6 only when its lease
 *    advertises the "ipv6" capability (an upstream node gets a v6 subnet from
 *    its etcd manager but its datapath would corrupt IPv6 packets); a lease
 *    whose v6 part changes moves its v6 route.
 */
import type { LeaseEvent } from '../../lease/lease';
import type { PeerRoute, UdpPeer } from '../../forwarder/udp-forwarder';
import { formatIpv4, type Ipv4Net } from '../../util/ipv4';
import type { Ipv6Net } from '../../util/ipv6';
import { IPV6, PARTIAL_CHECKSUMS, parseUdpCapabilities } from './capabilities';

export interface RouteChanges {
  set: PeerRoute[];
  remove: Array<Ipv4Net | Ipv6Net>;
  /** The complete peer set after the changes, or undefined when it did not change. */
  peers: UdpPeer[] | undefined;
}

export interface UdpRouteSyncOptions {
  /** Route the leases' IPv6 subnets too (the network has IPv6 and this node carries it). */
  ipv6?: boolean;
}

export class UdpRouteSync {
  /** v4 routes by subnet text. */
  private readonly routes = new Map<string, PeerRoute>();
  /** v6 routes by the v4 subnet text of their lease. */
  private readonly routes6 = new Map<string, PeerRoute>();
  private peerKey = '';
  private readonly ipv6: boolean;

  constructor(private readonly port: number, options: UdpRouteSyncOptions = {}) {
    this.ipv6 = options.ipv6 ?? false;
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
    for (const ev of events) {
      const subnet = ev.lease.subnet.canonical();
      const key = subnet.toString();
      const old6 = this.routes6.get(key);
      if (ev.type === 'added') {
        const caps = parseUdpCapabilities(ev.lease.attrs.backendData);
        const peer = formatIpv4(ev.lease.attrs.publicIp);
        const route: PeerRoute = { subnet, peer, port: this.port, partialChecksums: caps.has(PARTIAL_CHECKSUMS) };
        if (this.ipv6) route.ipv6 = caps.has(IPV6);
        this.routes.set(key, route);
        setRoute(route);
        const subnet6 = this.ipv6 ? ev.lease.ipv6Subnet?.canonical() : undefined;
        if (old6 && old6.subnet.toString() !== subnet6?.toString()) {
          this.routes6.delete(key);
          removeRoute(old6.subnet);
        }
        if (subnet6) {
          const route6: PeerRoute = { ...route, subnet: subnet6 };
          this.routes6.set(key, route6);
          setRoute(route6);
        }
      } else if (this.routes.delete(key)) {
        removeRoute(subnet);
        if (old6) {
          this.routes6.delete(key);
          removeRoute(old6.subnet);
        }
      }
    }
    const byAddress = new Map<string, { partialChecksums: boolean; ipv6: boolean }>();
    for (const r of this.routes.values()) {
      const seen = byAddress.get(r.peer) ?? { partialChecksums: true, ipv6: true };
      byAddress.set(r.peer, { partialChecksums: seen.partialChecksums && r.partialChecksums === true, ipv6: seen.ipv6 && r.ipv6 === true });
    }
    const peers = [...byAddress]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([address, f]): UdpPeer => (this.ipv6 ? { address, partialChecksums: f.partialChecksums, ipv6: f.ipv6 } : { address, partialChecksums: f.partialChecksums }));
    const peerKey = peers.map((p) => `${p.address}${p.partialChecksums ? '+' : ''}${p.ipv6 ? '6' : ''}`).join(',');
    const changed = peerKey !== this.peerKey;
    this.peerKey = peerKey;
    return { set: [...set.values()], remove: [...remove.values()], peers: changed ? peers : undefined };
  }
}
