/**
 * The kernel as the kernel backends see it: list its state, apply
 * operations (./kernel-ops.ts), hear about changes. The real port speaks
 * rtnetlink (./rtnetlink.ts) and reads notifications from the addon's socket
 * (./netlink-events.ts); tests use an in-memory kernel with the same
 * contract (test/helpers/memory-kernel.ts).
 *
 * Contract: `apply` rejects with a NetlinkError carrying the errno name
 * (EEXIST, ENOENT, ESRCH, ENETUNREACH, ...); every change the kernel makes,
 * whoever asked for it, is reported on `events` (the reconcilers decide what
 * concerns them).
 */
import * as fs from 'node:fs';
import type { Logger } from '../logging';
import type { KernelOp } from './kernel-ops';
import { NetlinkEvents, type NetlinkEventSource } from './netlink-events';
import type { IpAddr } from '../util/ip';
import type { Ipv6Net } from '../util/ipv6';
import type { AddressInfo, LinkDetails, NeighborEntry, RouteInfo, RtNetlink } from './rtnetlink';

/** An IPv6 address of a link. */
export interface Address6Info {
  index: number;
  address: bigint;
  prefixLen: number;
}

export interface RouteLookup {
  oif: number | undefined;
  prefsrc: IpAddr | undefined;
  gateway: IpAddr | undefined;
}

export interface KernelPort {
  listLinks(): Promise<LinkDetails[]>;
  /** IPv4 addresses, of one link or of all. */
  listAddresses(ifindex?: number): Promise<AddressInfo[]>;
  /** IPv6 addresses, of one link or of all. */
  listAddresses6(ifindex?: number): Promise<Address6Info[]>;
  /** IPv4 routes of the main table. */
  listRoutes(): Promise<RouteInfo[]>;
  /** IPv6 routes of the main table. */
  listRoutes6(): Promise<Array<RouteInfo<Ipv6Net>>>;
  /** Permanent and dynamic IPv4 neighbour entries of a link. */
  listNeighbors(ifindex: number): Promise<NeighborEntry[]>;
  /** Permanent and dynamic IPv6 neighbour entries of a link. */
  listNeighbors6(ifindex: number): Promise<Array<NeighborEntry<bigint>>>;
  /** Bridge FDB entries of a link (remotes of either family). */
  listFdb(ifindex: number): Promise<Array<NeighborEntry<IpAddr>>>;
  /** The route the kernel would take to `dst` (`ip route get`). */
  routeGet(dst: IpAddr): Promise<RouteLookup>;
  /** A sysctl under /proc/sys, e.g. "net/ipv6/conf/flannel.1/accept_ra"; undefined when it does not exist. */
  readSysctl(key: string): Promise<string | undefined>;
  writeSysctl(key: string, value: string): Promise<void>;
  apply(op: KernelOp): Promise<void>;
  readonly events: NetlinkEventSource;
  close(): void;
}

/** The real kernel: rtnetlink requests, the addon's notification socket, /proc/sys. */
export class NetlinkKernelPort implements KernelPort {
  readonly events: NetlinkEventSource;

  constructor(
    private readonly nl: RtNetlink,
    log: Logger,
  ) {
    this.events = new NetlinkEvents(log);
  }

  listLinks(): Promise<LinkDetails[]> {
    return this.nl.listLinkDetails();
  }

  listAddresses(ifindex?: number): Promise<AddressInfo[]> {
    return this.nl.listAddresses(ifindex);
  }

  listAddresses6(ifindex?: number): Promise<Address6Info[]> {
    return this.nl.listAddresses6(ifindex);
  }

  listRoutes(): Promise<RouteInfo[]> {
    return this.nl.listRoutes();
  }

  listRoutes6(): Promise<Array<RouteInfo<Ipv6Net>>> {
    return this.nl.listRoutes6();
  }

  listNeighbors(ifindex: number): Promise<NeighborEntry[]> {
    return this.nl.listNeighbors(ifindex);
  }

  listNeighbors6(ifindex: number): Promise<Array<NeighborEntry<bigint>>> {
    return this.nl.listNeighbors6(ifindex);
  }

  listFdb(ifindex: number): Promise<Array<NeighborEntry<IpAddr>>> {
    return this.nl.listFdb(ifindex);
  }

  routeGet(dst: IpAddr): Promise<RouteLookup> {
    return this.nl.routeGet(dst);
  }

  async readSysctl(key: string): Promise<string | undefined> {
    try {
      return (await fs.promises.readFile(`/proc/sys/${key}`, 'utf8')).trim();
    } catch {
      return undefined;
    }
  }

  async writeSysctl(key: string, value: string): Promise<void> {
    await fs.promises.writeFile(`/proc/sys/${key}`, value);
  }

  apply(o: KernelOp): Promise<void> {
    const nl = this.nl;
    switch (o.op) {
      case 'createVxlan':
        return nl.createVxlan(o.link);
      case 'createIpip':
        return nl.createIpip(o.link);
      case 'deleteLink':
        return nl.deleteLink(o.ifindex);
      case 'setLinkMtu':
        return nl.setLinkMtu(o.ifindex, o.mtu);
      case 'setLinkMac':
        return nl.setLinkMac(o.ifindex, o.mac);
      case 'setLinkUp':
        return nl.setLinkUp(o.ifindex);
      case 'addAddress':
        return nl.addAddress(o.ifindex, o.address, o.prefixLen);
      case 'deleteAddress':
        return nl.deleteAddress(o.ifindex, o.address, o.prefixLen);
      case 'replaceNeighbor':
        return nl.replaceNeighbor(o.ifindex, o.ip, o.mac);
      case 'deleteNeighbor':
        return nl.deleteNeighbor(o.ifindex, o.ip);
      case 'replaceFdb':
        return nl.replaceFdb(o.ifindex, o.mac, o.dst);
      case 'deleteFdb':
        return nl.deleteFdb(o.ifindex, o.mac, o.dst);
      case 'replaceRoute':
        return nl.replaceRoute(o.route);
      case 'deleteRoute':
        return nl.deleteRoute(o.route);
    }
  }

  close(): void {
    this.events.close();
    this.nl.close();
  }
}
