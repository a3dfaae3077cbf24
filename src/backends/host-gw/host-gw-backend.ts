/**
 * The host-gw backend (upstream's pkg/backend/hostgw): a route per remote
 * host-gw lease through the external interface to the peer's PublicIP.
 * Needs every node on one layer-2 segment and no NAT. The shared kernel
 * network engine (../kernel-network.ts) keeps the routes, checking them every
 * 10 s (upstream's route check) and on netlink notifications.
 */
import type { Lease } from '../../lease/lease';
import type { ExternalInterface } from '../../routing/ext-iface';
import { describeOp, type KernelOp } from '../../routing/kernel-ops';
import { type KernelPort, NetlinkKernelPort } from '../../routing/kernel-port';
import type { NetlinkEvent } from '../../routing/netlink-events';
import { describeRoute, isNetlinkError, type LinkDetails, type RouteInfo, RtNetlink } from '../../routing/rtnetlink';
import { errorText } from '../../util/errors';
import { formatIpv4, type Ipv4Net } from '../../util/ipv4';
import { acquireBackendLease, type Backend, type BackendContext, BackendError, type BackendNetwork } from '../backend';
import { KernelBackendNetwork, KernelNetwork, type KernelNetworkPlan, type KernelState, type PlannedOp } from '../kernel-network';
import { describeHostGwRoute, hasRoute, type HostGwRoute, repairOps, routeFromLease, routeSpec } from './routes';

/** upstream's route check period (pkg/backend/route_network.go, routeCheckRetries / 10 s ticker). */
export const HOST_GW_CHECK_INTERVAL_MS = 10_000;

/** host-gw's routes all go out of the external interface. */
export interface HostGwDevice {
  index: number;
  name: string;
}

export class HostGwPlan implements KernelNetworkPlan<HostGwRoute, HostGwDevice> {
  readonly name = 'host-gw routes';
  readonly checkIntervalMs = HOST_GW_CHECK_INTERVAL_MS;

  constructor(private readonly network: Ipv4Net) {}

  relevant(e: NetlinkEvent, device: HostGwDevice): boolean {
    return e.kind === 'route' || (e.kind === 'link' && e.ifindex === device.index);
  }

  deviceName(ifindex: number, device: HostGwDevice): string {
    return ifindex === device.index ? device.name : `#${ifindex}`;
  }

  peerFromLease(lease: Lease): ReturnType<typeof routeFromLease> {
    return routeFromLease(lease, 0);
  }

  ignoredMessage(lease: Lease): string {
    return `Ignoring non-host-gw subnet: type=${lease.attrs.backendType}`;
  }

  /** The route goes out of the external interface. */
  async resolvePeer(r: HostGwRoute, _kernel: KernelPort, device: HostGwDevice): Promise<HostGwRoute> {
    return { ...r, oif: device.index };
  }

  samePeer(a: HostGwRoute, b: HostGwRoute): boolean {
    return a.subnet.equals(b.subnet) && a.gateway === b.gateway && a.oif === b.oif;
  }

  describePeer = describeHostGwRoute;

  addOps(r: HostGwRoute): KernelOp[] {
    return [{ op: 'replaceRoute', route: routeSpec(r) }];
  }

  removeOps(r: HostGwRoute): KernelOp[] {
    return [{ op: 'deleteRoute', route: routeSpec(r) }];
  }

  async readKernel(kernel: KernelPort): Promise<KernelState> {
    return { routes: await kernel.listRoutes(), neighbors: [], fdb: [] };
  }

  repairOps(desired: readonly HostGwRoute[], k: KernelState, _device: HostGwDevice, removeStale: boolean): PlannedOp[] {
    return repairOps(desired, k.routes, removeStale, this.network);
  }

  describeRepair(planned: PlannedOp, names: (ifindex: number) => string, r: HostGwRoute | undefined): string {
    const op = describeOp(planned.op, names);
    if (planned.why === 'remove' || !r) return `removed stale route: ${op}`;
    return `Route recovered ${r.subnet.toString()} : ${formatIpv4(r.gateway)} (${op})`;
  }

  routeInstalled(r: HostGwRoute, routes: readonly RouteInfo[]): boolean {
    return hasRoute(routes, r);
  }

  /** upstream's text; an off-link peer (ENETUNREACH) is explained. */
  addFailureMessage(r: HostGwRoute, _op: KernelOp, e: unknown, names: (ifindex: number) => string): string {
    const reason = isNetlinkError(e, 'ENETUNREACH')
      ? `the peer ${formatIpv4(r.gateway)} is not on this node's network: host-gw needs every node on the same layer-2 segment (use vxlan otherwise)`
      : errorText(e);
    return `Error adding route to ${describeRoute(routeSpec(r), names(r.oif))}: ${reason}`;
  }
}

export class HostGwBackend implements Backend {
  readonly type = 'host-gw';

  /** upstream's hostgw.go New: the advertised address must be the interface's own (no NAT). */
  check(ext: ExternalInterface): void {
    if (ext.extAddr !== ext.ifaceAddr) {
      throw new BackendError("your PublicIP differs from interface IP, meaning that probably you're on a NAT, which is not supported by host-gw backend");
    }
  }

  /** host-gw creates no device. */
  ownsDevice(_link: LinkDetails): boolean {
    return false;
  }

  async register(ctx: BackendContext, kernel?: KernelPort): Promise<BackendNetwork> {
    const network = ctx.network.network;
    if (!ctx.network.enableIPv4 || !network) {
      throw new BackendError('the host-gw backend of flannel-ts supports IPv4: the network config must enable IPv4 and define Network');
    }
    const ext = ctx.extIface;
    if (ext.extAddr === undefined) throw new BackendError(`no IPv4 address on ${ext.name}`);
    const lease = await acquireBackendLease(ctx, { publicIp: ext.extAddr, publicIpv6: undefined, backendType: 'host-gw', backendData: undefined, backendV6Data: undefined });
    const log = ctx.log.child({ backend: 'host-gw' });
    const port = kernel ?? new NetlinkKernelPort(RtNetlink.open(), log);
    // upstream's FLANNEL_MTU for host-gw is the interface MTU.
    return new KernelBackendNetwork(lease, ext.mtu, new KernelNetwork(new HostGwPlan(network), port, { index: ext.index, name: ext.name }, log));
  }
}
