/**
 * The ipip backend (upstream's pkg/backend/ipip/ipip.go on route_network.go):
 * the kernel's IP-in-IP tunnel. flannel.ipip is an ipip device with `local`
 * = the interface address and no remote (so it coexists with the module's
 * own tunl0, which takes what matches no other tunnel), MTU = the
 * interface's − 20 (lowered only, as upstream: an MTU set lower by hand
 * stays), the own subnet's network address /32, UP. Per remote ipip lease a
 * route `<subnet> via <PublicIP> dev flannel.ipip onlink`; with
 * DirectRouting, a peer the kernel reaches without a gateway gets
 * `<subnet> via <PublicIP> dev <interface> onlink` instead. The lease is
 * {PublicIP, BackendType "ipip"}; FLANNEL_MTU is the device's MTU.
 *
 * IPv4 only: upstream has no IPv6 route for ipip (a dual-stack lease would
 * crash it), so EnableIPv6 is refused at start. A kernel without the ipip
 * module (CONFIG_NET_IPIP) is refused at start with the fix.
 *
 * A plan on the kernel network engine (../kernel-network.ts): the device
 * hook below, the routes of ../gateway-routes.ts, the engine's self-healing.
 */
import type { Lease } from '../../lease/lease';
import type { Logger } from '../../logging';
import { describeOp, type KernelOp } from '../../routing/kernel-ops';
import { type KernelPort, NetlinkKernelPort } from '../../routing/kernel-port';
import type { NetlinkEvent } from '../../routing/netlink-events';
import type { Repair } from '../../routing/reconciler';
import { describeRoute, isNetlinkError, type LinkDetails, type RouteInfo, RtNetlink } from '../../routing/rtnetlink';
import { errorText, NamedError } from '../../util/errors';
import { boolField, isJsonObject, JsonFieldError } from '../../util/go-json';
import { formatIp, type IpNet, sameNet } from '../../util/ip';
import { formatIpv4, type Ipv4Net } from '../../util/ipv4';
import { acquireBackendLease, type Backend, type BackendContext, BackendError, type BackendNetwork } from '../backend';
import { describeGatewayRoute, type GatewayRoute, hasRoute, repairOps, routeFromLease, routeSpec } from '../gateway-routes';
import { KernelBackendNetwork, KernelNetwork, type KernelNetworkPlan, type KernelState, type PeerParse, type PlannedOp } from '../kernel-network';
import { IPV4 } from '../lease-family';
import { ensureV4AddressOnLink } from '../link-address';

export const IPIP_DEVICE = 'flannel.ipip';
/** The IPv4 header the tunnel adds. */
export const IPIP_OVERHEAD = 20;
/** upstream's route check (route_network.go, 10 s). */
export const IPIP_CHECK_INTERVAL_MS = 10_000;

export class IpipConfigError extends NamedError {}

export function parseIpipConfig(raw: unknown): { directRouting: boolean } {
  const obj = raw === undefined || raw === null ? {} : raw;
  if (!isJsonObject(obj)) throw new IpipConfigError('error decoding IPIP backend config: the Backend value must be a JSON object');
  try {
    return { directRouting: boolField(obj, 'DirectRouting', false) };
  } catch (e) {
    if (e instanceof JsonFieldError) throw new IpipConfigError(`error decoding IPIP backend config: ${e.message}`);
    throw e;
  }
}

/** The refusal on a kernel without the ipip module. */
export function ipipModuleMissingMessage(cause: string): string {
  return (
    `the ipip backend needs the kernel's ipip module (CONFIG_NET_IPIP), which this kernel does not have (creating ${IPIP_DEVICE}: ${cause}). ` +
    'Load it (modprobe ipip), or use a backend that needs no module: vxlan where the kernel has vxlan, udp or wireguard otherwise'
  );
}

export interface IpipDevice {
  index: number;
  name: string;
  /** The external interface, for DirectRouting routes. */
  extIndex: number;
  extName: string;
}

export interface IpipDeviceSpec {
  /** The interface address: the tunnel's local end (upstream: IfaceAddr). */
  local: number;
  /** The external interface's MTU − 20. */
  mtu: number;
  /** The own subnet (undefined before the lease: the device is made first, so a kernel without the module takes no lease). */
  subnet: Ipv4Net | undefined;
  network: Ipv4Net;
  extIndex: number;
  extName: string;
}

/** Makes flannel.ipip exist as `spec` says (upstream's configureIPIPDevice), reporting what it changed. */
export async function ensureIpipDevice(kernel: KernelPort, spec: IpipDeviceSpec, log: Logger): Promise<{ device: IpipDevice; repairs: Repair[] }> {
  const repairs: Repair[] = [];
  const find = async (): Promise<LinkDetails | undefined> => (await kernel.listLinks()).find((l) => l.name === IPIP_DEVICE);
  let dev = await find();
  if (dev && dev.kind !== 'ipip') {
    // Not ours to delete: upstream asks the operator to.
    throw new BackendError(`${IPIP_DEVICE} isn't an ipip mode device, please remove device and try again`);
  }
  if (dev && (dev.iptun?.local !== spec.local || (dev.iptun?.remote ?? 0) !== 0)) {
    log.warn(
      { device: IPIP_DEVICE },
      `"${IPIP_DEVICE}" already exists with incompatible attributes: local=${formatIp(dev.iptun?.local ?? 0)} remote=${formatIp(dev.iptun?.remote ?? 0)}; recreating device`,
    );
    await kernel.apply({ op: 'deleteLink', ifindex: dev.index });
    dev = undefined;
  }
  if (!dev) {
    try {
      await kernel.apply({ op: 'createIpip', link: { name: IPIP_DEVICE, local: spec.local, mtu: spec.mtu } });
    } catch (e) {
      if (isNetlinkError(e, 'ENOTSUP') || isNetlinkError(e, 'EOPNOTSUPP')) throw new BackendError(ipipModuleMissingMessage(errorText(e)), { cause: e });
      throw new BackendError(`failed to create ipip interface: ${errorText(e)}`, { cause: e });
    }
    repairs.push({ kind: 'device', description: `created ${IPIP_DEVICE} (local ${formatIpv4(spec.local)}, mtu ${spec.mtu})` });
    dev = await find();
    if (!dev) throw new BackendError(`${IPIP_DEVICE} disappeared while it was being created`);
  }
  if (dev.mtu > spec.mtu || dev.mtu === 0) {
    await kernel.apply({ op: 'setLinkMtu', ifindex: dev.index, mtu: spec.mtu });
    repairs.push({ kind: 'mtu', description: `set the MTU of ${IPIP_DEVICE} to ${spec.mtu} (was ${dev.mtu})` });
  }
  if (spec.subnet) repairs.push(...(await ensureV4AddressOnLink(kernel, dev, spec.subnet, spec.network)));
  if (!dev.up) {
    await kernel.apply({ op: 'setLinkUp', ifindex: dev.index });
    repairs.push({ kind: 'device', description: `set ${IPIP_DEVICE} up` });
  }
  return { device: { index: dev.index, name: IPIP_DEVICE, extIndex: spec.extIndex, extName: spec.extName }, repairs };
}

/** A peer: its route, and whether it goes straight out of the interface (DirectRouting) rather than through flannel.ipip. */
export interface IpipPeer extends GatewayRoute<Ipv4Net> {
  direct: boolean;
}

/** The peer's route with the current devices' indexes (flannel.ipip gets a new one when it is recreated). */
function routeOf(p: IpipPeer, device: IpipDevice): GatewayRoute<Ipv4Net> {
  return { subnet: p.subnet, gateway: p.gateway, oif: p.direct ? device.extIndex : device.index, onlink: true };
}

/** ipip's plan for the kernel network engine: the device hook and an onlink route per peer. */
export class IpipPlan implements KernelNetworkPlan<IpipPeer, IpipDevice> {
  readonly name = 'ipip routes';
  readonly family = 4 as const;
  readonly checkIntervalMs = IPIP_CHECK_INTERVAL_MS;

  constructor(
    private readonly spec: IpipDeviceSpec,
    private readonly directRouting: boolean,
    private readonly log: Logger,
  ) {}

  relevant(e: NetlinkEvent, device: IpipDevice): boolean {
    return e.kind === 'route' || e.ifindex === device.index || (e.kind === 'link' && e.deleted);
  }

  deviceName(ifindex: number, device: IpipDevice): string {
    if (ifindex === device.index) return device.name;
    return ifindex === device.extIndex ? device.extName : `#${ifindex}`;
  }

  peerFromLease(lease: Lease): PeerParse<IpipPeer> {
    const r = routeFromLease(lease, 0, IPV4, 'ipip');
    return r.ok ? { ok: true, peer: { ...r.peer, direct: false } } : r;
  }

  ignoredMessage(lease: Lease, reason: string): string {
    return reason.startsWith('type=') ? `Ignoring non-ipip subnet: type=${lease.attrs.backendType}` : `Ignoring ipip subnet ${lease.subnet.canonical().toString()}: ${reason}`;
  }

  /** Through flannel.ipip, onlink; with DirectRouting, a peer reached without a gateway goes straight out of the interface. */
  async resolvePeer(p: IpipPeer, kernel: KernelPort, device: IpipDevice): Promise<IpipPeer> {
    let direct = false;
    if (this.directRouting) {
      try {
        const via = await kernel.routeGet(p.gateway);
        direct = via.gateway === undefined && via.oif !== undefined && via.oif !== device.index;
      } catch (e) {
        this.log.error({ peer: formatIpv4(p.gateway) }, `could not look up the route to ${formatIpv4(p.gateway)}: ${errorText(e)}`);
      }
    }
    return { ...p, direct };
  }

  samePeer(a: IpipPeer, b: IpipPeer): boolean {
    return sameNet(a.subnet, b.subnet) && a.gateway === b.gateway && a.direct === b.direct;
  }

  describePeer = describeGatewayRoute;

  peerSubnet(p: IpipPeer): string {
    return p.subnet.toString();
  }

  addOps(p: IpipPeer, device: IpipDevice): KernelOp[] {
    return [{ op: 'replaceRoute', route: routeSpec(routeOf(p, device)) }];
  }

  removeOps(p: IpipPeer, device: IpipDevice): KernelOp[] {
    return [{ op: 'deleteRoute', route: routeSpec(routeOf(p, device)) }];
  }

  async readKernel(kernel: KernelPort): Promise<KernelState> {
    return { routes: await kernel.listRoutes(), neighbors: [], fdb: [] };
  }

  repairOps(desired: readonly IpipPeer[], k: KernelState, device: IpipDevice, removeStale: boolean): PlannedOp[] {
    return repairOps(desired.map((p) => routeOf(p, device)), k.routes, removeStale, this.spec.network);
  }

  describeRepair(planned: PlannedOp, names: (ifindex: number) => string, r: IpipPeer | undefined): string {
    const op = describeOp(planned.op, names);
    if (planned.why === 'remove' || !r) return `removed stale route: ${op}`;
    return `Route recovered ${r.subnet.toString()} : ${formatIp(r.gateway)} (${op})`;
  }

  routeInstalled(p: IpipPeer, routes: ReadonlyArray<RouteInfo<IpNet>>, device: IpipDevice): boolean {
    return hasRoute(routes, routeOf(p, device));
  }

  addFailureMessage(p: IpipPeer, op: KernelOp, e: unknown, names: (ifindex: number) => string): string {
    const route = op.op === 'replaceRoute' ? op.route : undefined;
    return `Error adding route to ${route ? describeRoute(route, route.oif !== undefined ? names(route.oif) : undefined) : describeGatewayRoute(p)}: ${errorText(e)}`;
  }

  ensureDevice(kernel: KernelPort): Promise<{ device: IpipDevice; repairs: Repair[] }> {
    return ensureIpipDevice(kernel, this.spec, this.log);
  }
}

export class IpipBackend implements Backend {
  readonly type = 'ipip';

  ownsDevice(link: LinkDetails): boolean {
    return link.name === IPIP_DEVICE && link.kind === 'ipip';
  }

  async register(ctx: BackendContext, kernel?: KernelPort): Promise<BackendNetwork> {
    const cfg = parseIpipConfig(ctx.network.backend);
    const { network, enableIPv4, enableIPv6 } = ctx.network;
    if (enableIPv6) {
      throw new BackendError('the ipip backend carries IPv4 only (as upstream\'s, which has no IPv6 path): remove EnableIPv6 from the network config, or use vxlan, host-gw, wireguard or udp for IPv6');
    }
    if (!enableIPv4 || !network) throw new BackendError('IPv4 is enabled but the network config has no Network');
    const ext = ctx.extIface;
    if (ext.extAddr === undefined || ext.ifaceAddr === undefined) throw new BackendError(`no IPv4 address on ${ext.name}`);
    const mtu = ext.mtu - IPIP_OVERHEAD;
    if (mtu <= 0) throw new BackendError(`MTU ${ext.mtu} of iface ${ext.name} is too small for ipip mode to work`);
    const log = ctx.log.child({ backend: 'ipip' });
    log.info({ directRouting: cfg.directRouting }, `IPIP config: DirectRouting=${cfg.directRouting}`);
    const port = kernel ?? new NetlinkKernelPort(RtNetlink.open(), log);
    try {
      const spec: IpipDeviceSpec = { local: ext.ifaceAddr, mtu, subnet: undefined, network, extIndex: ext.index, extName: ext.name };
      // The device before the lease (upstream: after): a kernel without the module is refused before it takes a subnet.
      for (const r of (await ensureIpipDevice(port, spec, log)).repairs) log.info({ device: IPIP_DEVICE }, r.description);
      const lease = await acquireBackendLease(ctx, { publicIp: ext.extAddr, publicIpv6: undefined, backendType: 'ipip', backendData: undefined, backendV6Data: undefined });
      spec.subnet = lease.subnet;
      const { device, repairs } = await ensureIpipDevice(port, spec, log);
      for (const r of repairs) log.info({ device: IPIP_DEVICE }, r.description);
      // upstream's FLANNEL_MTU is the device's MTU (one lowered by hand stays).
      const devMtu = (await port.listLinks()).find((l) => l.index === device.index)?.mtu ?? mtu;
      const engine = new KernelNetwork(new IpipPlan(spec, cfg.directRouting, log), port, device, log);
      return new KernelBackendNetwork(lease, devMtu, engine);
    } catch (e) {
      if (!kernel) port.close();
      throw e;
    }
  }
}
