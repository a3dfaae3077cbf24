/**
 * vxlan per-peer kernel state as pure functions (upstream's
 * pkg/backend/vxlan/vxlan_network.go, handleSubnetEvents):
 *
 *  - a remote vxlan lease becomes, in this order (the route last, so the
 *    kernel never ARPs for the gateway): a permanent neighbour
 *    `<subnet network address> lladdr <VtepMAC>`, a permanent self FDB entry
 *    `<VtepMAC> dst <PublicIP>`, and an onlink route
 *    `<subnet> via <subnet network address> dev flannel.<VNI>`;
 *  - with DirectRouting and a directly reachable peer, only
 *    `<subnet> via <PublicIP>`;
 *  - a removal deletes all three (or the direct route).
 *
 * The same for IPv6 on flannel-v6.<VNI> from the lease's IPv6 part
 * (IPv6Subnet, PublicIPv6, BackendV6Data).
 *
 * repairOps compares that desired state with what the kernel holds and
 * returns only the operations that make them equal again.
 */
import type { Lease } from '../../lease/lease';
import type { KernelOp } from '../../routing/kernel-ops';
import { type AddrOf, type RouteInfo, type RouteSpec, RTPROT_FLANNEL_TS } from '../../routing/rtnetlink';
import { fieldCI, isJsonObject } from '../../util/go-json';
import { formatIp, type IpNet, netContainsNet, sameNet } from '../../util/ip';
import { isMac } from '../../util/mac';
import type { KernelState, PeerParse, PlannedOp } from '../kernel-network';
import type { LeaseFamily } from '../lease-family';

export interface VxlanPeer<N extends IpNet = IpNet> {
  subnet: N;
  /** The subnet's network address: the next hop of the route and the neighbour's IP. */
  gateway: AddrOf<N>;
  mac: string;
  publicIp: AddrOf<N>;
  /** DirectRouting to a directly reachable peer: a plain route, no neighbour, no FDB entry. */
  direct: boolean;
}

/**
 * A remote lease as a vxlan peer of family `fam`; only BackendType "vxlan"
 * with a VtepMAC in that family's BackendData qualifies. A lease without a
 * part of this family (a v4-only peer in a dual-stack cluster) is skipped
 * silently, as upstream does.
 */
export function peerFromLease<N extends IpNet>(lease: Lease, fam: LeaseFamily<N>): PeerParse<VxlanPeer<N>> {
  if (lease.attrs.backendType !== 'vxlan') {
    return { ok: false, reason: `not a vxlan lease (type=${JSON.stringify(lease.attrs.backendType)})` };
  }
  const subnet = fam.subnet(lease);
  if (subnet === undefined) return { ok: false, reason: `no ${fam.label}subnet`, silent: true };
  const publicIp = fam.publicIp(lease);
  if (publicIp === undefined) return { ok: false, reason: `it has a ${fam.label}subnet but no Public${fam.family === 6 ? 'IPv6' : 'IP'}` };
  const raw = fam.backendData(lease);
  let data: unknown;
  try {
    data = raw === undefined ? undefined : JSON.parse(raw);
  } catch {
    data = undefined;
  }
  const mac = isJsonObject(data) ? fieldCI(data, 'VtepMAC') : undefined;
  if (typeof mac !== 'string' || !isMac(mac)) {
    return { ok: false, reason: `its Backend${fam.family === 6 ? 'V6' : ''}Data has no valid VtepMAC: ${raw ?? 'none'}` };
  }
  return { ok: true, peer: { subnet, gateway: subnet.network as AddrOf<N>, mac: mac.toLowerCase(), publicIp, direct: false } };
}

export function peerRoute(dev: number, p: VxlanPeer): RouteSpec {
  return p.direct
    ? { dst: p.subnet, gateway: p.publicIp, scope: 'universe' }
    : { dst: p.subnet, gateway: p.gateway, oif: dev, onlink: true, scope: 'universe' };
}

export function addOps(dev: number, p: VxlanPeer): KernelOp[] {
  if (p.direct) return [{ op: 'replaceRoute', route: peerRoute(dev, p) }];
  return [
    { op: 'replaceNeighbor', ifindex: dev, ip: p.gateway, mac: p.mac },
    { op: 'replaceFdb', ifindex: dev, mac: p.mac, dst: p.publicIp },
    { op: 'replaceRoute', route: peerRoute(dev, p) },
  ];
}

export function removeOps(dev: number, p: VxlanPeer): KernelOp[] {
  if (p.direct) return [{ op: 'deleteRoute', route: peerRoute(dev, p) }];
  return [
    { op: 'deleteNeighbor', ifindex: dev, ip: p.gateway },
    { op: 'deleteFdb', ifindex: dev, mac: p.mac, dst: p.publicIp },
    { op: 'deleteRoute', route: peerRoute(dev, p) },
  ];
}

/** Whether the peer's route is in place (not its neighbour or FDB entry). */
export function hasPeerRoute(dev: number, p: VxlanPeer, routes: ReadonlyArray<RouteInfo<IpNet>>): boolean {
  const want = peerRoute(dev, p);
  return routes.some((r) => sameNet(r.dst, p.subnet) && r.type === 'unicast' && r.gateway === want.gateway && (p.direct || (r.oif === dev && r.onlink)));
}

/**
 * The operations that bring the kernel back to `desired` on device `dev`.
 * With `removeStale`, permanent entries on the device (and routes through
 * it) that no peer wants are removed too; callers pass it only once the
 * first lease snapshot has been applied, so a restart never deletes what a
 * peer still needs.
 */
export function repairOps(dev: number, desired: readonly VxlanPeer[], k: KernelState, removeStale: boolean, network?: IpNet): PlannedOp[] {
  const out: PlannedOp[] = [];
  const wantNeigh = new Map<AddrOf<IpNet>, string>();
  const wantFdb = new Set<string>();
  const wantRoute = new Map<string, VxlanPeer>();
  for (const p of desired) {
    wantRoute.set(p.subnet.toString(), p);
    if (p.direct) continue;
    wantNeigh.set(p.gateway, p.mac);
    wantFdb.add(`${p.mac}/${p.publicIp}`);
  }
  const neighbors = k.neighbors.filter((n) => n.ifindex === dev);
  const fdb = k.fdb.filter((f) => f.ifindex === dev);
  for (const p of desired) {
    const peer = p.subnet.toString();
    if (!p.direct) {
      if (!neighbors.some((n) => n.ip === p.gateway && n.mac === p.mac && n.permanent)) {
        out.push({ kind: 'neighbor', why: 'restore', peer, op: { op: 'replaceNeighbor', ifindex: dev, ip: p.gateway, mac: p.mac } });
      }
      if (!fdb.some((f) => f.mac === p.mac && f.ip === p.publicIp)) {
        out.push({ kind: 'fdb', why: 'restore', peer, op: { op: 'replaceFdb', ifindex: dev, mac: p.mac, dst: p.publicIp } });
      }
    }
    if (!hasPeerRoute(dev, p, k.routes)) out.push({ kind: 'route', why: 'restore', peer, op: { op: 'replaceRoute', route: peerRoute(dev, p) } });
  }
  if (removeStale) {
    for (const n of neighbors) {
      if (n.permanent && n.ip !== undefined && !wantNeigh.has(n.ip)) {
        out.push({ kind: 'neighbor', why: 'remove', op: { op: 'deleteNeighbor', ifindex: dev, ip: n.ip } });
      }
    }
    for (const f of fdb) {
      if (f.permanent && f.self && f.mac !== undefined && f.ip !== undefined && f.mac !== '00:00:00:00:00:00' && !wantFdb.has(`${f.mac}/${f.ip}`)) {
        out.push({ kind: 'fdb', why: 'remove', op: { op: 'deleteFdb', ifindex: dev, mac: f.mac, dst: f.ip } });
      }
    }
    for (const r of k.routes) {
      // Through the device, or a DirectRouting route of ours (RTPROT_FLANNEL_TS) inside the Network.
      const ours = r.oif === dev || (network !== undefined && r.protocol === RTPROT_FLANNEL_TS && r.type === 'unicast' && netContainsNet(network, r.dst));
      if (ours && r.gateway !== undefined && !wantRoute.has(r.dst.toString())) {
        out.push({ kind: 'route', why: 'remove', op: { op: 'deleteRoute', route: { dst: r.dst, gateway: r.gateway, oif: r.oif } as RouteSpec } });
      }
    }
  }
  return out;
}

export function describePeer(p: VxlanPeer): string {
  return p.direct ? `${p.subnet.toString()} via ${formatIp(p.publicIp)} (direct)` : `${p.subnet.toString()} at ${formatIp(p.publicIp)} (VtepMAC ${p.mac})`;
}
