/**
 * Kernel changes as data, so backends can compute them purely (and tests can
 * check them) and one executor applies them: neighbours, bridge FDB entries
 * and routes, all with replace semantics on add.
 */
import { formatIpv4 } from '../util/ipv4';
import { describeRoute, type RouteSpec, type RtNetlink } from './rtnetlink';

export type KernelOp =
  | { op: 'replaceNeighbor'; ifindex: number; ip: number; mac: string }
  | { op: 'deleteNeighbor'; ifindex: number; ip: number }
  | { op: 'replaceFdb'; ifindex: number; mac: string; dst: number }
  | { op: 'deleteFdb'; ifindex: number; mac: string; dst: number }
  | { op: 'replaceRoute'; route: RouteSpec }
  | { op: 'deleteRoute'; route: RouteSpec };

/** `ip`/`bridge` command style text of an op (`names` maps ifindex to a device name). */
export function describeOp(o: KernelOp, names: (ifindex: number) => string = (i) => `#${i}`): string {
  switch (o.op) {
    case 'replaceNeighbor':
      return `ip neigh replace ${formatIpv4(o.ip)} lladdr ${o.mac} dev ${names(o.ifindex)} nud permanent`;
    case 'deleteNeighbor':
      return `ip neigh del ${formatIpv4(o.ip)} dev ${names(o.ifindex)}`;
    case 'replaceFdb':
      return `bridge fdb replace ${o.mac} dev ${names(o.ifindex)} dst ${formatIpv4(o.dst)} self permanent`;
    case 'deleteFdb':
      return `bridge fdb del ${o.mac} dev ${names(o.ifindex)} dst ${formatIpv4(o.dst)} self`;
    case 'replaceRoute':
      return `ip route replace ${describeRoute(o.route, o.route.oif !== undefined ? names(o.route.oif) : undefined)}`;
    case 'deleteRoute':
      return `ip route del ${describeRoute(o.route, o.route.oif !== undefined ? names(o.route.oif) : undefined)}`;
  }
}

export async function applyOp(nl: RtNetlink, o: KernelOp): Promise<void> {
  switch (o.op) {
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
