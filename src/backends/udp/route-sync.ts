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
 *    when all of them do.
 */
import type { LeaseEvent } from '../../lease/lease';
import type { PeerRoute, UdpPeer } from '../../forwarder/udp-forwarder';
import { formatIpv4, type Ipv4Net } from '../../util/ipv4';
import { PARTIAL_CHECKSUMS, parseUdpCapabilities } from './capabilities';

export interface RouteChanges {
  set: PeerRoute[];
  remove: Ipv4Net[];
  /** The complete peer set after the changes, or undefined when it did not change. */
  peers: UdpPeer[] | undefined;
}

export class UdpRouteSync {
  private readonly routes = new Map<string, PeerRoute>();
  private peerKey = '';

  constructor(private readonly port: number) {}

  get size(): number {
    return this.routes.size;
  }

  get current(): PeerRoute[] {
    return [...this.routes.values()];
  }

  apply(events: readonly LeaseEvent[]): RouteChanges {
    const set = new Map<string, PeerRoute>();
    const remove = new Map<string, Ipv4Net>();
    for (const ev of events) {
      const subnet = ev.lease.subnet.canonical();
      const key = subnet.toString();
      if (ev.type === 'added') {
        const partialChecksums = parseUdpCapabilities(ev.lease.attrs.backendData).has(PARTIAL_CHECKSUMS);
        const route: PeerRoute = { subnet, peer: formatIpv4(ev.lease.attrs.publicIp), port: this.port, partialChecksums };
        this.routes.set(key, route);
        set.set(key, route);
        remove.delete(key);
      } else if (this.routes.delete(key)) {
        remove.set(key, subnet);
        set.delete(key);
      }
    }
    const byAddress = new Map<string, boolean>();
    for (const r of this.routes.values()) byAddress.set(r.peer, (byAddress.get(r.peer) ?? true) && r.partialChecksums === true);
    const peers = [...byAddress].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([address, partialChecksums]) => ({ address, partialChecksums }));
    const peerKey = peers.map((p) => `${p.address}${p.partialChecksums ? '+' : ''}`).join(',');
    const changed = peerKey !== this.peerKey;
    this.peerKey = peerKey;
    return { set: [...set.values()], remove: [...remove.values()], peers: changed ? peers : undefined };
  }
}
