/**
 * The vxlan backend (upstream's pkg/backend/vxlan): the kernel forwards; we
 * set up flannel.<VNI> (and flannel-v6.<VNI> with IPv6), publish their MACs
 * in the lease (BackendData, BackendV6Data), and keep one neighbour, FDB
 * entry and route per remote vxlan lease and family. The shared kernel
 * network engine (../kernel-network.ts) follows the leases and restores
 * whatever is changed or deleted by hand, including the device itself
 * (recreated with the same MAC, every entry replayed).
 */
import type { Lease } from '../../lease/lease';
import type { Logger } from '../../logging';
import type { KernelOp } from '../../routing/kernel-ops';
import { NetlinkKernelPort, type KernelPort } from '../../routing/kernel-port';
import type { NetlinkEvent } from '../../routing/netlink-events';
import type { Repair } from '../../routing/reconciler';
import { type LinkDetails, type RouteInfo, RtNetlink } from '../../routing/rtnetlink';
import { familyOf, type IpAddr, type IpFamily, type IpNet, sameNet } from '../../util/ip';
import type { Ipv4Net } from '../../util/ipv4';
import { Ipv6Net } from '../../util/ipv6';
import { randomLocalMac } from '../../util/mac';
import { acquireBackendLease, type Backend, type BackendContext, BackendError, type BackendNetwork } from '../backend';
import { type FamilyEngine, KernelBackendNetwork, KernelNetwork, type KernelNetworkPlan, type KernelState, type PeerParse, type PlannedOp } from '../kernel-network';
import { IPV4, IPV6, type LeaseFamily } from '../lease-family';
import { encodeVxlanBackendData, parseVxlanBackendConfig, VXLAN6_OVERHEAD, VXLAN_OVERHEAD, vxlanDeviceName } from './config';
import { ensureVxlanDevice, type VxlanDeviceSpec } from './device';
import { ensureV4AddressOnLink, ensureV6AddressOnLink } from '../link-address';
import { addOps, describePeer, hasPeerRoute, peerFromLease, removeOps, repairOps, type VxlanPeer } from './peers';

/** How often the reconciler checks even without notifications. */
export const VXLAN_CHECK_INTERVAL_MS = 10_000;

/** The vxlan device as the plan's operations refer to it. */
export interface VxlanDevice {
  index: number;
  name: string;
}

/**
 * vxlan's plan for the kernel network engine, one per address family: the
 * device hook recreates flannel.<VNI> (flannel-v6.<VNI>) as needed and keeps
 * its address; peers are neighbour + FDB entry + onlink route (or one
 * direct route with DirectRouting).
 */
export class VxlanPlan<N extends IpNet> implements KernelNetworkPlan<VxlanPeer<N>, VxlanDevice> {
  readonly name: string;
  readonly family: IpFamily;
  readonly checkIntervalMs = VXLAN_CHECK_INTERVAL_MS;

  constructor(
    private readonly fam: LeaseFamily<N>,
    private readonly spec: VxlanDeviceSpec,
    private readonly mac: string,
    private readonly ownSubnet: N,
    private readonly network: N,
    private readonly directRouting: boolean,
    private readonly log: Logger,
  ) {
    this.name = spec.name;
    this.family = fam.family;
  }

  relevant(e: NetlinkEvent, device: VxlanDevice): boolean {
    return e.kind === 'route' || e.ifindex === device.index || (e.kind === 'link' && e.deleted);
  }

  deviceName(ifindex: number, device: VxlanDevice): string {
    return ifindex === device.index ? device.name : `#${ifindex}`;
  }

  peerFromLease(lease: Lease): PeerParse<VxlanPeer<N>> {
    return peerFromLease(lease, this.fam);
  }

  ignoredMessage(lease: Lease, reason: string): string {
    const v6 = lease.ipv6Subnet ? ` ${this.fam.family === 6 ? 'v6Subnet' : 'and v6Subnet'}(${lease.ipv6Subnet.toString()})` : '';
    return `Ignoring non-vxlan subnet ${lease.subnet.canonical().toString()}${v6}: ${reason}`;
  }

  async resolvePeer(p: VxlanPeer<N>, kernel: KernelPort, device: VxlanDevice): Promise<VxlanPeer<N>> {
    return { ...p, direct: await this.directlyReachable(p.publicIp, kernel, device) };
  }

  /** upstream's DirectRouting test: the kernel's route to the peer has no gateway (and is not through our device). */
  private async directlyReachable(publicIp: IpAddr, kernel: KernelPort, device: VxlanDevice): Promise<boolean> {
    if (!this.directRouting) return false;
    try {
      const r = await kernel.routeGet(publicIp);
      return r.gateway === undefined && r.oif !== undefined && r.oif !== device.index;
    } catch {
      return false;
    }
  }

  samePeer(a: VxlanPeer<N>, b: VxlanPeer<N>): boolean {
    return sameNet(a.subnet, b.subnet) && a.mac === b.mac && a.publicIp === b.publicIp && a.direct === b.direct;
  }

  describePeer = describePeer;

  peerSubnet(p: VxlanPeer<N>): string {
    return p.subnet.toString();
  }

  addOps(p: VxlanPeer<N>, device: VxlanDevice): KernelOp[] {
    return addOps(device.index, p);
  }

  removeOps(p: VxlanPeer<N>, device: VxlanDevice): KernelOp[] {
    return removeOps(device.index, p);
  }

  async readKernel(kernel: KernelPort, device: VxlanDevice): Promise<KernelState> {
    const v6 = this.family === 6;
    return {
      neighbors: v6 ? await kernel.listNeighbors6(device.index) : await kernel.listNeighbors(device.index),
      fdb: (await kernel.listFdb(device.index)).filter((f) => f.ip === undefined || familyOf(f.ip) === this.family),
      routes: v6 ? await kernel.listRoutes6() : await kernel.listRoutes(),
    };
  }

  repairOps(desired: ReadonlyArray<VxlanPeer<N>>, k: KernelState, device: VxlanDevice, removeStale: boolean): PlannedOp[] {
    return repairOps(device.index, desired, k, removeStale, this.network);
  }

  routeInstalled(p: VxlanPeer<N>, routes: ReadonlyArray<RouteInfo<IpNet>>, device: VxlanDevice): boolean {
    return hasPeerRoute(device.index, p, routes);
  }

  async ensureDevice(kernel: KernelPort): Promise<{ device: VxlanDevice; repairs: Repair[] }> {
    const { device, repairs } = await ensureVxlanDevice(kernel, this.spec, this.mac, true, this.log);
    repairs.push(...(await ensureAddressOnLink(kernel, device, this.ownSubnet, this.network)));
    return { device: { index: device.index, name: device.name }, repairs };
  }
}

/** The own subnet's network address on the device, per family. */
function ensureAddressOnLink(kernel: KernelPort, dev: LinkDetails, subnet: IpNet, network: IpNet): Promise<Repair[]> {
  if (subnet instanceof Ipv6Net) return ensureV6AddressOnLink(kernel, dev, subnet, network as Ipv6Net);
  return ensureV4AddressOnLink(kernel, dev, subnet, network as Ipv4Net);
}

/** One family's device, as created before the lease is acquired. */
interface FamilyDevice {
  spec: VxlanDeviceSpec;
  mac: string;
  index: number;
}

export class VxlanBackend implements Backend {
  readonly type = 'vxlan';

  /** flannel.<VNI> and flannel-v6.<VNI>, named from the device's own VNI. */
  ownsDevice(link: LinkDetails): boolean {
    if (link.kind !== 'vxlan' || link.vxlan === undefined) return false;
    return link.name === vxlanDeviceName(link.vxlan.vni, 4) || link.name === vxlanDeviceName(link.vxlan.vni, 6);
  }

  async register(ctx: BackendContext, kernel: KernelPort = new NetlinkKernelPort(RtNetlink.open(), ctx.log)): Promise<BackendNetwork> {
    const cfg = parseVxlanBackendConfig(ctx.network.backend);
    const { network, ipv6Network, enableIPv4, enableIPv6 } = ctx.network;
    if (enableIPv4 && !network) throw new BackendError('IPv4 is enabled but the network config has no Network');
    if (enableIPv6 && !ipv6Network) throw new BackendError('IPv6 is enabled but the network config has no IPv6Network');
    const ext = ctx.extIface;
    if (enableIPv4 && ext.extAddr === undefined) throw new BackendError(`no IPv4 address on ${ext.name}`);
    if (enableIPv6 && ext.extAddr6 === undefined) throw new BackendError(`no IPv6 address on ${ext.name}`);
    const log = ctx.log.child({ backend: 'vxlan' });
    const underlayMtu = cfg.mtu ?? ext.mtu;
    const mtuOf = (family: IpFamily) => underlayMtu - (family === 6 ? VXLAN6_OVERHEAD : VXLAN_OVERHEAD);
    // Pods get one MTU for both families: the smaller, so a full-size packet fits either device.
    const mtu = Math.min(...[enableIPv4 ? mtuOf(4) : Infinity, enableIPv6 ? mtuOf(6) : Infinity]);
    const specOf = (family: IpFamily, local: IpAddr): VxlanDeviceSpec => ({
      name: vxlanDeviceName(cfg.vni, family),
      vni: cfg.vni,
      link: ext.index,
      local,
      port: cfg.port,
      learning: cfg.learning,
      gbp: cfg.gbp,
      mtu: mtuOf(family),
    });
    const create = async (family: IpFamily, local: IpAddr): Promise<FamilyDevice> => {
      const spec = specOf(family, local);
      // Kube mode (upstream's GetStoredMacAddresses): a new device gets the VtepMAC this node published before, so peers' entries stay valid.
      const stored = await ctx.subnets.storedVtepMac?.(family);
      if (stored) log.info({ device: spec.name, mac: stored }, `Interface ${spec.name} mac address set to: ${stored}`);
      const { device, repairs } = await ensureVxlanDevice(kernel, spec, stored ?? randomLocalMac(), false, log);
      for (const r of repairs) log.info({ device: spec.name }, r.description);
      return { spec, mac: device.mac!, index: device.index };
    };
    try {
      const v4 = enableIPv4 ? await create(4, ext.extAddr!) : undefined;
      const v6 = enableIPv6 ? await create(6, ext.extAddr6!) : undefined;
      const lease = await acquireBackendLease(ctx, {
        publicIp: v4 ? ext.extAddr! : 0,
        publicIpv6: v6 ? ext.extAddr6 : undefined,
        backendType: 'vxlan',
        backendData: v4 ? encodeVxlanBackendData(cfg.vni, v4.mac) : undefined,
        backendV6Data: v6 ? encodeVxlanBackendData(cfg.vni, v6.mac) : undefined,
      });
      const engines: FamilyEngine[] = [];
      const links = async () => kernel.listLinks();
      for (const [fam, dev, own, net] of [
        [IPV4, v4, enableIPv4 ? lease.subnet : undefined, network],
        [IPV6, v6, lease.ipv6Subnet, ipv6Network],
      ] as Array<[LeaseFamily<IpNet>, FamilyDevice | undefined, IpNet | undefined, IpNet | undefined]>) {
        if (!dev) continue;
        if (!own || !net) throw new BackendError(`failed to configure interface ${dev.spec.name}: IPv${fam.family} is enabled but the lease has no IPv${fam.family} subnet`);
        const link = (await links()).find((l) => l.name === dev.spec.name);
        if (!link) throw new BackendError(`${dev.spec.name} disappeared while it was being configured`);
        for (const r of await ensureAddressOnLink(kernel, link, own, net)) log.info({ device: dev.spec.name }, r.description);
        if (link.mac !== dev.mac) throw new BackendError(`${dev.spec.name}'s mac address wanted: ${dev.mac}, but got: ${link.mac}`);
        log.info({ device: dev.spec.name, mac: dev.mac, mtu: dev.spec.mtu, vni: cfg.vni, directRouting: cfg.directRouting }, `${dev.spec.name} ready (VtepMAC ${dev.mac}, MTU ${dev.spec.mtu})`);
        const plan = new VxlanPlan(fam, dev.spec, dev.mac, own, net, cfg.directRouting, log);
        engines.push(new KernelNetwork(plan, kernel, { index: link.index, name: dev.spec.name }, log));
      }
      return new KernelBackendNetwork(lease, mtu, ...engines);
    } catch (e) {
      kernel.close();
      throw e;
    }
  }
}
