/**
 * Kernel changes as data, so backends can compute them purely (and tests can
 * check them) and one executor applies them: links, addresses, neighbours,
 * bridge FDB entries and routes of either address family, all with replace
 * semantics on add.
 */
import { formatIp, type IpAddr } from '../util/ip';
import type { VxlanInfo } from './nlattr';
import { describeRoute, type RouteSpec } from './rtnetlink';

/** A vxlan device to create (`ip link add <name> type vxlan ...`). */
export interface VxlanLinkSpec extends Pick<VxlanInfo, 'vni' | 'link' | 'local' | 'port' | 'learning' | 'gbp'> {
  name: string;
  mac: string;
  mtu: number;
}

/** An ipip device to create (`ip link add <name> type ipip local <local>`). */
export interface IpipLinkSpec {
  name: string;
  local: number;
  mtu: number;
}

export type KernelOp =
  | { op: 'createVxlan'; link: VxlanLinkSpec }
  | { op: 'createIpip'; link: IpipLinkSpec }
  | { op: 'deleteLink'; ifindex: number }
  | { op: 'setLinkMtu'; ifindex: number; mtu: number }
  | { op: 'setLinkMac'; ifindex: number; mac: string }
  | { op: 'setLinkUp'; ifindex: number }
  | { op: 'addAddress'; ifindex: number; address: IpAddr; prefixLen: number }
  | { op: 'deleteAddress'; ifindex: number; address: IpAddr; prefixLen: number }
  | { op: 'replaceNeighbor'; ifindex: number; ip: IpAddr; mac: string }
  | { op: 'deleteNeighbor'; ifindex: number; ip: IpAddr }
  | { op: 'replaceFdb'; ifindex: number; mac: string; dst: IpAddr }
  | { op: 'deleteFdb'; ifindex: number; mac: string; dst: IpAddr }
  | { op: 'replaceRoute'; route: RouteSpec }
  | { op: 'deleteRoute'; route: RouteSpec };

/** `ip`/`bridge` command style text of an op (`names` maps ifindex to a device name). */
export function describeOp(o: KernelOp, names: (ifindex: number) => string = (i) => `#${i}`): string {
  switch (o.op) {
    case 'createVxlan':
      return `ip link add ${o.link.name} address ${o.link.mac} mtu ${o.link.mtu} type vxlan id ${o.link.vni} local ${formatIp(o.link.local)} dev ${names(o.link.link)}`;
    case 'createIpip':
      return `ip link add ${o.link.name} mtu ${o.link.mtu} type ipip local ${formatIp(o.link.local)}`;
    case 'deleteLink':
      return `ip link del ${names(o.ifindex)}`;
    case 'setLinkMtu':
      return `ip link set ${names(o.ifindex)} mtu ${o.mtu}`;
    case 'setLinkMac':
      return `ip link set ${names(o.ifindex)} address ${o.mac}`;
    case 'setLinkUp':
      return `ip link set ${names(o.ifindex)} up`;
    case 'addAddress':
      return `ip addr add ${formatIp(o.address)}/${o.prefixLen} dev ${names(o.ifindex)}`;
    case 'deleteAddress':
      return `ip addr del ${formatIp(o.address)}/${o.prefixLen} dev ${names(o.ifindex)}`;
    case 'replaceNeighbor':
      return `ip neigh replace ${formatIp(o.ip)} lladdr ${o.mac} dev ${names(o.ifindex)} nud permanent`;
    case 'deleteNeighbor':
      return `ip neigh del ${formatIp(o.ip)} dev ${names(o.ifindex)}`;
    case 'replaceFdb':
      return `bridge fdb replace ${o.mac} dev ${names(o.ifindex)} dst ${formatIp(o.dst)} self permanent`;
    case 'deleteFdb':
      return `bridge fdb del ${o.mac} dev ${names(o.ifindex)} dst ${formatIp(o.dst)} self`;
    case 'replaceRoute':
      return `ip route replace ${describeRoute(o.route, o.route.oif !== undefined ? names(o.route.oif) : undefined)}`;
    case 'deleteRoute':
      return `ip route del ${describeRoute(o.route, o.route.oif !== undefined ? names(o.route.oif) : undefined)}`;
  }
}

/**
 * The kernel object an op creates, changes or deletes, as a key: two ops
 * with the same target touch the same object (a neighbour by device and
 * address, an FDB entry by device, MAC and remote, a route by destination,
 * table and metric, as the kernel's replace matches them).
 */
export function opTarget(o: KernelOp): string {
  switch (o.op) {
    case 'createVxlan':
    case 'createIpip':
      return `link:${o.link.name}`;
    case 'deleteLink':
    case 'setLinkMtu':
    case 'setLinkMac':
    case 'setLinkUp':
      return `link:#${o.ifindex}`;
    case 'addAddress':
    case 'deleteAddress':
      return `addr:${o.ifindex}:${formatIp(o.address)}/${o.prefixLen}`;
    case 'replaceNeighbor':
    case 'deleteNeighbor':
      return `neigh:${o.ifindex}:${formatIp(o.ip)}`;
    case 'replaceFdb':
    case 'deleteFdb':
      return `fdb:${o.ifindex}:${o.mac}:${formatIp(o.dst)}`;
    case 'replaceRoute':
    case 'deleteRoute':
      return `route:${o.route.dst.canonical().toString()}:${o.route.table ?? 254}:${o.route.priority ?? 0}`;
  }
}
