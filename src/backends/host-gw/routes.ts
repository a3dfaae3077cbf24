/**
 * host-gw routes as pure functions (compat §7.2): a remote host-gw lease
 * becomes `<subnet> via <PublicIP> dev <external interface>`; the repair plan
 * restores every desired route that is missing or different.
 */
import type { Lease } from '../../lease/lease';
import type { KernelOp } from '../../routing/kernel-ops';
import { type RouteInfo, type RouteSpec, RTPROT_FLANNEL_TS } from '../../routing/rtnetlink';
import type { Ipv4Net } from '../../util/ipv4';

export interface HostGwRoute {
  subnet: Ipv4Net;
  gateway: number;
  oif: number;
}

export function routeFromLease(lease: Lease, oif: number): HostGwRoute | undefined {
  if (lease.attrs.backendType !== 'host-gw') return undefined;
  return { subnet: lease.subnet.canonical(), gateway: lease.attrs.publicIp, oif };
}

export function routeSpec(r: HostGwRoute): RouteSpec {
  return { dst: r.subnet, gateway: r.gateway, oif: r.oif, scope: 'universe' };
}

export function hasRoute(routes: readonly RouteInfo[], r: HostGwRoute): boolean {
  return routes.some((k) => k.dst.equals(r.subnet) && k.type === 'unicast' && k.gateway === r.gateway && k.oif === r.oif);
}

/** The replaces that restore the desired routes missing from `routes` (upstream's 10 s route check). */
export function repairOps(desired: readonly HostGwRoute[], routes: readonly RouteInfo[]): KernelOp[] {
  return desired.filter((r) => !hasRoute(routes, r)).map((r) => ({ op: 'replaceRoute', route: routeSpec(r) }));
}

/**
 * Routes we added earlier (RTPROT_FLANNEL_TS, via a gateway, inside the
 * flannel Network) for subnets no lease wants any more: deleted once the
 * first lease snapshot is applied, so a node that left while we were down
 * leaves no route behind.
 */
export function staleRouteOps(desired: readonly HostGwRoute[], routes: readonly RouteInfo[], network: Ipv4Net): KernelOp[] {
  const want = new Set(desired.map((r) => r.subnet.toString()));
  return routes
    .filter((r) => r.protocol === RTPROT_FLANNEL_TS && r.type === 'unicast' && r.gateway !== undefined && network.containsNet(r.dst) && !want.has(r.dst.toString()))
    .map((r) => ({ op: 'deleteRoute', route: { dst: r.dst, gateway: r.gateway, oif: r.oif } }));
}
