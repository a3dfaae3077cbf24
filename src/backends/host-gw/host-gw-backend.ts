/**
 * The host-gw backend (upstream's pkg/backend/hostgw): a route per remote
 * host-gw lease and address family through the external interface to the
 * peer's PublicIP (PublicIPv6).
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
import { formatIp, type IpFamily, type IpNet, sameNet } from '../../util/ip';
import { acquireBackendLease, type Backend, type BackendContext, BackendError, type BackendNetwork } from '../backend';
import { type FamilyEngine, KernelBackendNetwork, KernelNetwork, type KernelNetworkPlan, type KernelState, type PeerParse, type PlannedOp } from '../kernel-network';
import { IPV4, IPV6, type LeaseFamily } from '../lease-family';
import { describeGatewayRoute, type GatewayRoute, hasRoute, repairOps, routeFromLease, routeSpec } from '../gateway-routes';

/** upstream's route check period (pkg/backend/route_network.go, routeCheckRetries / 10 s ticker). */
export const HOST_GW_CHECK_INTERVAL_MS = 10_000;

/** host-gw's routes all go out of the external interface. */
export interface HostGwDevice {
  index: number;
  name: string;
}

export class HostGwPlan<N extends IpNet> implements KernelNetworkPlan<GatewayRoute<N>, HostGwDevice> {
  readonly name: string;
  readonly family: IpFamily;
  readonly checkIntervalMs = HOST_GW_CHECK_INTERVAL_MS;

  constructor(
    private readonly fam: LeaseFamily<N>,
    private readonly network: N,
  ) {
    this.family = fam.family;
    this.name = fam.family === 6 ? 'host-gw v6 routes' : 'host-gw routes';
  }

  relevant(e: NetlinkEvent, device: HostGwDevice): boolean {
    return e.kind === 'route' || (e.kind === 'link' && e.ifindex === device.index);
  }

  deviceName(ifindex: number, device: HostGwDevice): string {
    return ifindex === device.index ? device.name : `#${ifindex}`;
  }

  peerFromLease(lease: Lease): PeerParse<GatewayRoute<N>> {
    return routeFromLease(lease, 0, this.fam);
  }

  ignoredMessage(lease: Lease, reason: string): string {
    return reason.startsWith('type=') ? `Ignoring non-host-gw subnet: type=${lease.attrs.backendType}` : `Ignoring host-gw subnet ${lease.subnet.canonical().toString()}: ${reason}`;
  }

  /** The route goes out of the external interface. */
  async resolvePeer(r: GatewayRoute<N>, _kernel: KernelPort, device: HostGwDevice): Promise<GatewayRoute<N>> {
    return { ...r, oif: device.index };
  }

  samePeer(a: GatewayRoute<N>, b: GatewayRoute<N>): boolean {
    return sameNet(a.subnet, b.subnet) && a.gateway === b.gateway && a.oif === b.oif;
  }

  describePeer = describeGatewayRoute;

  peerSubnet(p: GatewayRoute<N>): string {
    return p.subnet.toString();
  }

  addOps(r: GatewayRoute<N>): KernelOp[] {
    return [{ op: 'replaceRoute', route: routeSpec(r) }];
  }

  removeOps(r: GatewayRoute<N>): KernelOp[] {
    return [{ op: 'deleteRoute', route: routeSpec(r) }];
  }

  async readKernel(kernel: KernelPort): Promise<KernelState> {
    return { routes: this.family === 6 ? await kernel.listRoutes6() : await kernel.listRoutes(), neighbors: [], fdb: [] };
  }

  repairOps(desired: ReadonlyArray<GatewayRoute<N>>, k: KernelState, _device: HostGwDevice, removeStale: boolean): PlannedOp[] {
    return repairOps(desired, k.routes, removeStale, this.network);
  }

  describeRepair(planned: PlannedOp, names: (ifindex: number) => string, r: GatewayRoute<N> | undefined): string {
    const op = describeOp(planned.op, names);
    if (planned.why === 'remove' || !r) return `removed stale route: ${op}`;
    return `Route recovered ${r.subnet.toString()} : ${formatIp(r.gateway)} (${op})`;
  }

  routeInstalled(r: GatewayRoute<N>, routes: ReadonlyArray<RouteInfo<IpNet>>): boolean {
    return hasRoute(routes, r);
  }

  /** upstream's text; an off-link peer (ENETUNREACH) is explained. */
  addFailureMessage(r: GatewayRoute<N>, _op: KernelOp, e: unknown, names: (ifindex: number) => string): string {
    const reason = isNetlinkError(e, 'ENETUNREACH')
      ? `the peer ${formatIp(r.gateway)} is not on this node's network: host-gw needs every node on the same layer-2 segment (use vxlan otherwise)`
      : errorText(e);
    return `Error adding route to ${describeRoute(routeSpec(r), names(r.oif))}: ${reason}`;
  }
}

export class HostGwBackend implements Backend {
  readonly type = 'host-gw';

  /** upstream's hostgw.go New: the advertised address must be the interface's own (no NAT), for IPv6 too. */
  check(ext: ExternalInterface): void {
    if (ext.extAddr !== ext.ifaceAddr || (ext.extAddr6 !== undefined && ext.extAddr6 !== ext.ifaceAddr6)) {
      throw new BackendError("your PublicIP differs from interface IP, meaning that probably you're on a NAT, which is not supported by host-gw backend");
    }
  }

  /** host-gw creates no device. */
  ownsDevice(_link: LinkDetails): boolean {
    return false;
  }

  async register(ctx: BackendContext, kernel?: KernelPort): Promise<BackendNetwork> {
    const { network, ipv6Network, enableIPv4, enableIPv6 } = ctx.network;
    if (enableIPv4 && !network) throw new BackendError('IPv4 is enabled but the network config has no Network');
    if (enableIPv6 && !ipv6Network) throw new BackendError('IPv6 is enabled but the network config has no IPv6Network');
    const ext = ctx.extIface;
    if (enableIPv4 && ext.extAddr === undefined) throw new BackendError(`no IPv4 address on ${ext.name}`);
    if (enableIPv6 && ext.extAddr6 === undefined) throw new BackendError(`no IPv6 address on ${ext.name}`);
    // upstream writes PublicIP 0.0.0.0 in a v6-only cluster.
    const lease = await acquireBackendLease(ctx, {
      publicIp: enableIPv4 ? ext.extAddr! : 0,
      publicIpv6: enableIPv6 ? ext.extAddr6 : undefined,
      backendType: 'host-gw',
      backendData: undefined,
      backendV6Data: undefined,
    });
    const log = ctx.log.child({ backend: 'host-gw' });
    const port = kernel ?? new NetlinkKernelPort(RtNetlink.open(), log);
    const device = { index: ext.index, name: ext.name };
    const engines: FamilyEngine[] = [];
    if (enableIPv4) engines.push(new KernelNetwork(new HostGwPlan(IPV4, network!), port, device, log));
    if (enableIPv6) engines.push(new KernelNetwork(new HostGwPlan(IPV6, ipv6Network!), port, device, log));
    // upstream's FLANNEL_MTU for host-gw is the interface MTU.
    return new KernelBackendNetwork(lease, ext.mtu, ...engines);
  }
}
