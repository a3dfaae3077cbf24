/**
 * An in-memory kernel behind the KernelPort contract (src/routing/kernel-port.ts),
 * for testing the kernel backends without root: links (vxlan devices and
 * plain ones), IPv4 and IPv6 addresses, main-table routes, neighbours and
 * FDB entries of both families,
 * sysctls, with the kernel's replace semantics and errnos where the backends
 * depend on them:
 *  - a route through a gateway needs the gateway on a connected subnet of
 *    its device (or `onlink`), else ENETUNREACH;
 *  - deleting something that is not there is ESRCH (routes) or ENOENT;
 *  - creating a link whose name is taken is EEXIST; deleting a link takes its
 *    addresses, neighbours, FDB entries and routes with it.
 * Every change is reported on `events` as the kernel's notifications would be.
 * `failNext` makes the next matching operation fail, once; `missingLinkKinds`
 * lists link types this kernel has no module for (creating one is EOPNOTSUPP,
 * "ENOTSUP", as the real kernel answers).
 */
import { EventEmitter } from 'node:events';
import type { KernelOp } from '../../src/routing/kernel-ops';
import type { Address6Info, KernelPort, RouteLookup } from '../../src/routing/kernel-port';
import type { NetlinkEvent, NetlinkEventSource } from '../../src/routing/netlink-events';
import { type AddressInfo, type LinkDetails, type NeighborEntry, NetlinkError, type RouteInfo, type RouteSpec } from '../../src/routing/rtnetlink';
import { familyOf, type IpAddr, type IpNet, sameNet } from '../../src/util/ip';
import { Ipv4Net } from '../../src/util/ipv4';
import { Ipv6Net } from '../../src/util/ipv6';

/** An address of a link, of either family. */
export interface MemoryAddress {
  index: number;
  address: IpAddr;
  prefixLen: number;
}

function netOf(a: MemoryAddress): IpNet {
  return typeof a.address === 'bigint' ? new Ipv6Net(a.address, a.prefixLen) : new Ipv4Net(a.address, a.prefixLen);
}

function netContains(n: IpNet, a: IpAddr): boolean {
  if (n instanceof Ipv6Net) return typeof a === 'bigint' && n.contains(a);
  return typeof a === 'number' && n.contains(a);
}

class MemoryEvents extends EventEmitter implements NetlinkEventSource {
  close(): void {
    this.removeAllListeners();
  }
}

interface Failure {
  match: (op: KernelOp) => boolean;
  code: string;
}

export class MemoryKernel implements KernelPort {
  readonly events = new MemoryEvents();
  links: LinkDetails[] = [];
  addresses: MemoryAddress[] = [];
  routes: Array<RouteInfo<IpNet>> = [];
  neighbors: Array<NeighborEntry<IpAddr>> = [];
  fdb: Array<NeighborEntry<IpAddr>> = [];
  readonly sysctls = new Map<string, string>();
  /** Every op applied successfully, in order. */
  readonly applied: KernelOp[] = [];
  private nextIndex = 10;
  private failures: Failure[] = [];
  /** Link kinds whose module this kernel lacks. */
  readonly missingLinkKinds = new Set<string>();
  closed = false;

  /** A plain link (the underlay), up, with an address. */
  addLink(name: string, address?: { address: IpAddr; prefixLen: number }, mtu = 1500): LinkDetails {
    const link: LinkDetails = { index: this.nextIndex++, name, mtu, up: true, type: 1, txQueueLen: 1000, mac: '02:00:00:00:00:01', kind: 'veth', vxlan: undefined };
    this.links.push(link);
    if (address) this.addresses.push({ index: link.index, ...address });
    return link;
  }

  /** A new link of `kind`, down, added to the kernel. */
  private newLink(name: string, mtu: number, kind: string, mac: string | undefined, extra: Pick<LinkDetails, 'vxlan'> | Pick<LinkDetails, 'iptun'>): LinkDetails {
    const link: LinkDetails = { index: this.nextIndex++, name, mtu, up: false, type: kind === 'ipip' ? 768 : 1, txQueueLen: 1000, mac, kind, vxlan: undefined, ...extra };
    this.links.push(link);
    return link;
  }

  link(name: string): LinkDetails | undefined {
    return this.links.find((l) => l.name === name);
  }

  /** The next op matching `match` fails with `code` (once). */
  failNext(match: (op: KernelOp) => boolean, code: string): void {
    this.failures.push({ match, code });
  }

  private emit(e: NetlinkEvent): void {
    this.events.emit('event', e);
  }

  async listLinks(): Promise<LinkDetails[]> {
    return this.links.map((l) => ({ ...l, vxlan: l.vxlan ? { ...l.vxlan } : undefined, ...(l.iptun ? { iptun: { ...l.iptun } } : {}) }));
  }

  async listAddresses(ifindex?: number): Promise<AddressInfo[]> {
    return this.addresses.filter((a) => familyOf(a.address) === 4 && (ifindex === undefined || a.index === ifindex)).map((a) => ({ ...a }) as AddressInfo);
  }

  async listAddresses6(ifindex?: number): Promise<Address6Info[]> {
    return this.addresses.filter((a) => familyOf(a.address) === 6 && (ifindex === undefined || a.index === ifindex)).map((a) => ({ ...a }) as Address6Info);
  }

  async listRoutes(): Promise<RouteInfo[]> {
    return this.routes.filter((r) => familyOf(r.dst) === 4).map((r) => ({ ...r }) as RouteInfo);
  }

  async listRoutes6(): Promise<Array<RouteInfo<Ipv6Net>>> {
    return this.routes.filter((r) => familyOf(r.dst) === 6).map((r) => ({ ...r }) as RouteInfo<Ipv6Net>);
  }

  async listNeighbors(ifindex: number): Promise<NeighborEntry[]> {
    return this.neighbors.filter((n) => n.ifindex === ifindex && typeof n.ip === 'number').map((n) => ({ ...n }) as NeighborEntry);
  }

  async listNeighbors6(ifindex: number): Promise<Array<NeighborEntry<bigint>>> {
    return this.neighbors.filter((n) => n.ifindex === ifindex && typeof n.ip === 'bigint').map((n) => ({ ...n }) as NeighborEntry<bigint>);
  }

  async listFdb(ifindex: number): Promise<Array<NeighborEntry<IpAddr>>> {
    return this.fdb.filter((n) => n.ifindex === ifindex).map((n) => ({ ...n }));
  }

  async routeGet(dst: IpAddr): Promise<RouteLookup> {
    const hit = this.routes
      .filter((r) => r.type === 'unicast' && netContains(r.dst, dst))
      .sort((a, b) => b.dst.prefixLen - a.dst.prefixLen)[0];
    const connected = this.addresses.find((a) => netContains(netOf(a), dst));
    if (connected && (!hit || hit.dst.prefixLen <= connected.prefixLen)) return { oif: connected.index, prefsrc: connected.address, gateway: undefined };
    if (!hit) throw new NetlinkError(`route get`, 'ENETUNREACH');
    return { oif: hit.oif, prefsrc: undefined, gateway: hit.gateway };
  }

  async readSysctl(key: string): Promise<string | undefined> {
    return this.sysctls.get(key);
  }

  async writeSysctl(key: string, value: string): Promise<void> {
    this.sysctls.set(key, value);
  }

  close(): void {
    this.closed = true;
    this.events.close();
  }

  private fail(op: KernelOp, code: string): never {
    throw new NetlinkError(op.op, code);
  }

  private linkByIndex(op: KernelOp, index: number): LinkDetails {
    const l = this.links.find((x) => x.index === index);
    if (!l) this.fail(op, 'ENODEV');
    return l;
  }

  /** Whether `gw` is on a connected subnet of `oif` (or of any link when oif is not given). */
  private reachable(gw: IpAddr, oif: number | undefined): boolean {
    const host = (a: MemoryAddress) => a.prefixLen === (typeof a.address === 'bigint' ? 128 : 32);
    return this.addresses.some((a) => (oif === undefined || a.index === oif) && !host(a) && netContains(netOf(a), gw));
  }

  private routeOf(r: RouteSpec): RouteInfo<IpNet> {
    return {
      dst: r.dst.canonical(),
      gateway: r.gateway,
      oif: r.oif,
      table: r.table ?? 254,
      protocol: r.protocol ?? 157,
      scope: r.scope ?? (r.gateway === undefined ? 'link' : 'universe'),
      type: r.type ?? 'unicast',
      onlink: r.onlink ?? false,
      priority: r.priority ?? 0,
    };
  }

  async apply(op: KernelOp): Promise<void> {
    const f = this.failures.findIndex((x) => x.match(op));
    if (f >= 0) {
      const [failure] = this.failures.splice(f, 1);
      this.fail(op, failure!.code);
    }
    this.applyNow(op);
    this.applied.push(op);
  }

  private applyNow(op: KernelOp): void {
    switch (op.op) {
      case 'createVxlan': {
        const s = op.link;
        if (this.link(s.name)) this.fail(op, 'EEXIST');
        const link = this.newLink(s.name, s.mtu, 'vxlan', s.mac, {
          vxlan: { vni: s.vni, link: s.link, local: s.local, port: s.port, learning: s.learning, gbp: s.gbp, group: 0, l2miss: false, l3miss: false, proxy: false, rsc: false, ttl: 0, tos: 0 },
        });
        this.sysctls.set(`net/ipv6/conf/${s.name}/accept_ra`, '1');
        this.emit({ kind: 'link', deleted: false, ifindex: link.index });
        return;
      }
      case 'createIpip': {
        const s = op.link;
        if (this.missingLinkKinds.has('ipip')) this.fail(op, 'ENOTSUP');
        if (this.link(s.name)) this.fail(op, 'EEXIST');
        const link = this.newLink(s.name, s.mtu, 'ipip', undefined, { iptun: { local: s.local, remote: 0, ttl: 0, pmtudisc: false } });
        this.emit({ kind: 'link', deleted: false, ifindex: link.index });
        return;
      }
      case 'deleteLink': {
        const l = this.linkByIndex(op, op.ifindex);
        this.links = this.links.filter((x) => x !== l);
        this.addresses = this.addresses.filter((a) => a.index !== l.index);
        this.neighbors = this.neighbors.filter((n) => n.ifindex !== l.index);
        this.fdb = this.fdb.filter((n) => n.ifindex !== l.index);
        this.routes = this.routes.filter((r) => r.oif !== l.index);
        this.sysctls.delete(`net/ipv6/conf/${l.name}/accept_ra`);
        this.emit({ kind: 'link', deleted: true, ifindex: l.index });
        return;
      }
      case 'setLinkMtu':
        this.linkByIndex(op, op.ifindex).mtu = op.mtu;
        this.emit({ kind: 'link', deleted: false, ifindex: op.ifindex });
        return;
      case 'setLinkMac':
        this.linkByIndex(op, op.ifindex).mac = op.mac;
        this.emit({ kind: 'link', deleted: false, ifindex: op.ifindex });
        return;
      case 'setLinkUp':
        this.linkByIndex(op, op.ifindex).up = true;
        this.emit({ kind: 'link', deleted: false, ifindex: op.ifindex });
        return;
      case 'addAddress': {
        this.linkByIndex(op, op.ifindex);
        if (this.addresses.some((a) => a.index === op.ifindex && a.address === op.address && a.prefixLen === op.prefixLen)) this.fail(op, 'EEXIST');
        this.addresses.push({ index: op.ifindex, address: op.address, prefixLen: op.prefixLen });
        this.emit({ kind: 'address', deleted: false, ifindex: op.ifindex });
        return;
      }
      case 'deleteAddress': {
        const before = this.addresses.length;
        this.addresses = this.addresses.filter((a) => !(a.index === op.ifindex && a.address === op.address && a.prefixLen === op.prefixLen));
        if (this.addresses.length === before) this.fail(op, 'EADDRNOTAVAIL');
        this.emit({ kind: 'address', deleted: true, ifindex: op.ifindex });
        return;
      }
      case 'replaceNeighbor': {
        this.linkByIndex(op, op.ifindex);
        this.neighbors = this.neighbors.filter((n) => !(n.ifindex === op.ifindex && n.ip === op.ip));
        this.neighbors.push({ ifindex: op.ifindex, ip: op.ip, mac: op.mac, permanent: true, self: false });
        this.emit({ kind: 'neighbor', deleted: false, ifindex: op.ifindex });
        return;
      }
      case 'deleteNeighbor': {
        const before = this.neighbors.length;
        this.neighbors = this.neighbors.filter((n) => !(n.ifindex === op.ifindex && n.ip === op.ip));
        if (this.neighbors.length === before) this.fail(op, 'ENOENT');
        this.emit({ kind: 'neighbor', deleted: true, ifindex: op.ifindex });
        return;
      }
      case 'replaceFdb': {
        this.linkByIndex(op, op.ifindex);
        this.fdb = this.fdb.filter((n) => !(n.ifindex === op.ifindex && n.mac === op.mac && n.ip === op.dst));
        this.fdb.push({ ifindex: op.ifindex, ip: op.dst, mac: op.mac, permanent: true, self: true });
        this.emit({ kind: 'neighbor', deleted: false, ifindex: op.ifindex });
        return;
      }
      case 'deleteFdb': {
        const before = this.fdb.length;
        this.fdb = this.fdb.filter((n) => !(n.ifindex === op.ifindex && n.mac === op.mac && n.ip === op.dst));
        if (this.fdb.length === before) this.fail(op, 'ENOENT');
        this.emit({ kind: 'neighbor', deleted: true, ifindex: op.ifindex });
        return;
      }
      case 'replaceRoute': {
        const r = this.routeOf(op.route);
        if (r.oif !== undefined) this.linkByIndex(op, r.oif);
        if (r.gateway !== undefined && !r.onlink && !this.reachable(r.gateway, r.oif)) this.fail(op, 'ENETUNREACH');
        const same = (x: RouteInfo<IpNet>) => sameNet(x.dst, r.dst) && x.table === r.table && x.priority === r.priority;
        this.routes = [...this.routes.filter((x) => !same(x)), r];
        this.emit({ kind: 'route', deleted: false, ifindex: undefined });
        return;
      }
      case 'deleteRoute': {
        const want = op.route;
        const i = this.routes.findIndex(
          (x) =>
            sameNet(x.dst, want.dst.canonical()) &&
            x.table === (want.table ?? 254) &&
            (want.gateway === undefined || x.gateway === want.gateway) &&
            (want.oif === undefined || x.oif === want.oif) &&
            (want.priority === undefined || x.priority === want.priority),
        );
        if (i < 0) this.fail(op, 'ESRCH');
        this.routes.splice(i, 1);
        this.emit({ kind: 'route', deleted: true, ifindex: undefined });
        return;
      }
    }
  }

  /** Something outside flanneld changes the kernel (as `ip ...` by hand would): applied and notified. */
  outOfBand(op: KernelOp): void {
    this.applyNow(op);
  }
}
