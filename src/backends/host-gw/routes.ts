/**
 * host-gw routes as pure functions (upstream's pkg/backend/hostgw/hostgw.go
 * and pkg/backend/route_network.go): a remote host-gw lease becomes
 * `<subnet> via <PublicIP> dev <external interface>`; the repair plan
 * restores every desired route that is missing or different, and removes
 * routes of ours that no lease wants any more.
 */
import type { Lease } from '../../lease/lease';
import type { KernelOp } from '../../routing/kernel-ops';
import { type RouteInfo, type RouteSpec, RTPROT_FLANNEL_TS } from '../../routing/rtnetlink';
import { formatIpv4, type Ipv4Net } from '../../util/ipv4';
import type { PeerParse, PlannedOp } from '../kernel-network';

export interface HostGwRoute {
  subnet: Ipv4Net;
  gateway: number;
  oif: number;
}

/** A remote lease as a route; only BackendType "host-gw" qualifies (upstream ignores the others with a warning). */
export function routeFromLease(lease: Lease, oif: number): PeerParse<HostGwRoute> {
  if (lease.attrs.backendType !== 'host-gw') return { ok: false, reason: `type=${lease.attrs.backendType}` };
  return { ok: true, peer: { subnet: lease.subnet.canonical(), gateway: lease.attrs.publicIp, oif } };
}

export function routeSpec(r: HostGwRoute): RouteSpec {
  return { dst: r.subnet, gateway: r.gateway, oif: r.oif, scope: 'universe' };
}

export function hasRoute(routes: readonly RouteInfo[], r: HostGwRoute): boolean {
  return routes.some((k) => k.dst.equals(r.subnet) && k.type === 'unicast' && k.gateway === r.gateway && k.oif === r.oif);
}

export function describeHostGwRoute(r: HostGwRoute): string {
  return `${r.subnet.toString()} via ${formatIpv4(r.gateway)}`;
}

/**
 * The repair plan (upstream's 10 s route check, checkSubnetExistInV4Routes):
 * a replace for every desired route missing from `routes`; with
 * `removeStale`, a delete for every route we added earlier (RTPROT_FLANNEL_TS,
 * via a gateway, inside the flannel Network) for a subnet no lease wants, so a
 * node that left while we were down leaves no route behind.
 */
export function repairOps(desired: readonly HostGwRoute[], routes: readonly RouteInfo[], removeStale = false, network?: Ipv4Net): PlannedOp[] {
  const out: PlannedOp[] = desired
    .filter((r) => !hasRoute(routes, r))
    .map((r) => ({ kind: 'route', why: 'restore', peer: r.subnet.toString(), op: { op: 'replaceRoute', route: routeSpec(r) } }));
  if (removeStale && network) {
    const want = new Set(desired.map((r) => r.subnet.toString()));
    for (const r of routes) {
      if (r.protocol === RTPROT_FLANNEL_TS && r.type === 'unicast' && r.gateway !== undefined && network.containsNet(r.dst) && !want.has(r.dst.toString())) {
        const op: KernelOp = { op: 'deleteRoute', route: { dst: r.dst, gateway: r.gateway, oif: r.oif } };
        out.push({ kind: 'route', why: 'remove', op });
      }
    }
  }
  return out;
}
