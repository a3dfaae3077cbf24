/**
 * Routes to a peer's subnet via its public address, as pure functions
 * (upstream's pkg/backend/route_network.go, RouteNetwork, which host-gw and
 * ipip share): host-gw's `<subnet> via <PublicIP> dev <external interface>`
 * (and, with IPv6, `<v6 subnet> via <PublicIPv6>`), ipip's `<subnet> via
 * <PublicIP> dev flannel.ipip onlink`; the repair plan restores every
 * desired route that is missing or different, and removes routes of ours
 * that no lease wants any more.
 */
import type { Lease } from '../lease/lease';
import type { KernelOp } from '../routing/kernel-ops';
import { type AddrOf, type RouteInfo, type RouteSpec, RTPROT_FLANNEL_TS } from '../routing/rtnetlink';
import { formatIp, type IpNet, netContainsNet, sameNet } from '../util/ip';
import type { PeerParse, PlannedOp } from './kernel-network';
import type { LeaseFamily } from './lease-family';

export interface GatewayRoute<N extends IpNet = IpNet> {
  subnet: N;
  gateway: AddrOf<N>;
  oif: number;
  /** RTNH_F_ONLINK: the gateway is taken as on the device's link (ipip's routes through flannel.ipip). */
  onlink?: boolean;
}

/**
 * A remote lease as a route of family `fam`; only leases of `backendType`
 * qualify (upstream ignores the others with a warning). A lease with no
 * part of this family is skipped silently.
 */
export function routeFromLease<N extends IpNet>(lease: Lease, oif: number, fam: LeaseFamily<N>, backendType = 'host-gw'): PeerParse<GatewayRoute<N>> {
  if (lease.attrs.backendType !== backendType) return { ok: false, reason: `type=${lease.attrs.backendType}` };
  const subnet = fam.subnet(lease);
  if (subnet === undefined) return { ok: false, reason: `no ${fam.label}subnet`, silent: true };
  const gateway = fam.publicIp(lease);
  if (gateway === undefined) return { ok: false, reason: `it has a ${fam.label}subnet but no Public${fam.family === 6 ? 'IPv6' : 'IP'}` };
  return { ok: true, peer: { subnet, gateway, oif } };
}

export function routeSpec(r: GatewayRoute): RouteSpec {
  return { dst: r.subnet, gateway: r.gateway, oif: r.oif, scope: 'universe', ...(r.onlink ? { onlink: true } : {}) };
}

export function hasRoute(routes: ReadonlyArray<RouteInfo<IpNet>>, r: GatewayRoute): boolean {
  return routes.some((k) => sameNet(k.dst, r.subnet) && k.type === 'unicast' && k.gateway === r.gateway && k.oif === r.oif && k.onlink === (r.onlink ?? false));
}

export function describeGatewayRoute(r: GatewayRoute): string {
  return `${r.subnet.toString()} via ${formatIp(r.gateway)}`;
}

/**
 * The repair plan (upstream's 10 s route check, checkSubnetExistInV4Routes):
 * a replace for every desired route missing from `routes`; with
 * `removeStale`, a delete for every route we added earlier (RTPROT_FLANNEL_TS,
 * via a gateway, inside the flannel Network) for a subnet no lease wants, so a
 * node that left while we were down leaves no route behind.
 */
export function repairOps(desired: readonly GatewayRoute[], routes: ReadonlyArray<RouteInfo<IpNet>>, removeStale = false, network?: IpNet): PlannedOp[] {
  const out: PlannedOp[] = desired
    .filter((r) => !hasRoute(routes, r))
    .map((r) => ({ kind: 'route', why: 'restore', peer: r.subnet.toString(), op: { op: 'replaceRoute', route: routeSpec(r) } }));
  if (removeStale && network) {
    const want = new Set(desired.map((r) => r.subnet.toString()));
    for (const r of routes) {
      if (r.protocol === RTPROT_FLANNEL_TS && r.type === 'unicast' && r.gateway !== undefined && netContainsNet(network, r.dst) && !want.has(r.dst.toString())) {
        const op: KernelOp = { op: 'deleteRoute', route: { dst: r.dst, gateway: r.gateway, oif: r.oif } as RouteSpec };
        out.push({ kind: 'route', why: 'remove', op });
      }
    }
  }
  return out;
}
