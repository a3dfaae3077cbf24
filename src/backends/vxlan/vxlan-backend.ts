/**
 * The vxlan backend (upstream's pkg/backend/vxlan): the kernel forwards; we
 * set up flannel.<VNI>, publish its MAC in the lease, and keep one
 * neighbour, FDB entry and route per remote vxlan lease. The shared kernel
 * network engine (../kernel-network.ts) follows the leases and restores
 * whatever is changed or deleted by hand, including the device itself
 * (recreated with the same MAC, every entry replayed).
 */
import type { Lease } from '../../lease/lease';
import type { Logger } from '../../log';
import { NetlinkKernelPort, type KernelPort } from '../../routing/kernel-port';
import type { NetlinkEvent } from '../../routing/netlink-events';
import type { Repair } from '../../routing/reconciler';
import { type LinkDetails, type RouteInfo, RtNetlink } from '../../routing/rtnetlink';
import type { Ipv4Net } from '../../util/ipv4';
import { randomLocalMac } from '../../util/mac';
import { acquireBackendLease, type Backend, type BackendContext, BackendError, type BackendNetwork } from '../backend';
import { KernelBackendNetwork, KernelNetwork, type KernelNetworkPlan, type KernelState } from '../kernel-network';
import { encodeVxlanBackendData, parseVxlanBackendConfig, VXLAN_OVERHEAD, vxlanDeviceName } from './config';
import { ensureV4AddressOnLink, ensureVxlanDevice, type VxlanDeviceSpec } from './device';
import { addOps, describePeer, hasPeerRoute, peerFromLease, removeOps, repairOps, type VxlanPeer } from './peers';

/** How often the reconciler checks even without notifications. */
export const VXLAN_CHECK_INTERVAL_MS = 10_000;

/** The vxlan device as the plan's operations refer to it. */
export interface VxlanDevice {
  index: number;
  name: string;
}

/**
 * vxlan's plan for the kernel network engine: the device hook recreates
 * flannel.<VNI> as needed and keeps its address; peers are neighbour + FDB
 * entry + onlink route (or one direct route with DirectRouting).
 */
export class VxlanPlan implements KernelNetworkPlan<VxlanPeer, VxlanDevice> {
  readonly name: string;
  readonly checkIntervalMs = VXLAN_CHECK_INTERVAL_MS;

  constructor(
    private readonly spec: VxlanDeviceSpec,
    private readonly mac: string,
    private readonly ownSubnet: Ipv4Net,
    private readonly network: Ipv4Net,
    private readonly directRouting: boolean,
    private readonly log: Logger,
  ) {
    this.name = spec.name;
  }

  relevant(e: NetlinkEvent, device: VxlanDevice): boolean {
    return e.kind === 'route' || e.ifindex === device.index || (e.kind === 'link' && e.deleted);
  }

  deviceName(ifindex: number, device: VxlanDevice): string {
    return ifindex === device.index ? device.name : `#${ifindex}`;
  }

  peerFromLease(lease: Lease): ReturnType<typeof peerFromLease> {
    return peerFromLease(lease);
  }

  ignoredMessage(lease: Lease, reason: string): string {
    return `Ignoring non-vxlan subnet ${lease.subnet.canonical().toString()}: ${reason}`;
  }

  async resolvePeer(p: VxlanPeer, kernel: KernelPort, device: VxlanDevice): Promise<VxlanPeer> {
    return { ...p, direct: await this.directlyReachable(p.publicIp, kernel, device) };
  }

  /** upstream's DirectRouting test: the kernel's route to the peer has no gateway (and is not through our device). */
  private async directlyReachable(publicIp: number, kernel: KernelPort, device: VxlanDevice): Promise<boolean> {
    if (!this.directRouting) return false;
    try {
      const r = await kernel.routeGet(publicIp);
      return r.gateway === undefined && r.oif !== undefined && r.oif !== device.index;
    } catch {
      return false;
    }
  }

  samePeer(a: VxlanPeer, b: VxlanPeer): boolean {
    return a.subnet.equals(b.subnet) && a.mac === b.mac && a.publicIp === b.publicIp && a.direct === b.direct;
  }

  describePeer = describePeer;

  addOps(p: VxlanPeer, device: VxlanDevice): ReturnType<typeof addOps> {
    return addOps(device.index, p);
  }

  removeOps(p: VxlanPeer, device: VxlanDevice): ReturnType<typeof removeOps> {
    return removeOps(device.index, p);
  }

  async readKernel(kernel: KernelPort, device: VxlanDevice): Promise<KernelState> {
    return { neighbors: await kernel.listNeighbors(device.index), fdb: await kernel.listFdb(device.index), routes: await kernel.listRoutes() };
  }

  repairOps(desired: readonly VxlanPeer[], k: KernelState, device: VxlanDevice, removeStale: boolean): ReturnType<typeof repairOps> {
    return repairOps(device.index, desired, k, removeStale, this.network);
  }

  routeInstalled(p: VxlanPeer, routes: readonly RouteInfo[], device: VxlanDevice): boolean {
    return hasPeerRoute(device.index, p, routes);
  }

  async ensureDevice(kernel: KernelPort): Promise<{ device: VxlanDevice; repairs: Repair[] }> {
    const { device, repairs } = await ensureVxlanDevice(kernel, this.spec, this.mac, true, this.log);
    repairs.push(...(await ensureV4AddressOnLink(kernel, device, this.ownSubnet, this.network)));
    return { device: { index: device.index, name: device.name }, repairs };
  }
}

export class VxlanBackend implements Backend {
  readonly type = 'vxlan';

  /** flannel.<VNI>, named from the device's own VNI. */
  ownsDevice(link: LinkDetails): boolean {
    return link.kind === 'vxlan' && link.vxlan !== undefined && link.name === vxlanDeviceName(link.vxlan.vni);
  }

  async register(ctx: BackendContext, kernel: KernelPort = new NetlinkKernelPort(RtNetlink.open(), ctx.log)): Promise<BackendNetwork> {
    const cfg = parseVxlanBackendConfig(ctx.network.backend);
    const network = ctx.network.network;
    if (!ctx.network.enableIPv4 || !network) {
      throw new BackendError('the vxlan backend of flannel-ts supports IPv4: the network config must enable IPv4 and define Network');
    }
    const ext = ctx.extIface;
    if (ext.extAddr === undefined) throw new BackendError(`no IPv4 address on ${ext.name}`);
    const log = ctx.log.child({ backend: 'vxlan' });
    const spec: VxlanDeviceSpec = {
      name: vxlanDeviceName(cfg.vni),
      vni: cfg.vni,
      link: ext.index,
      local: ext.extAddr,
      port: cfg.port,
      learning: cfg.learning,
      gbp: cfg.gbp,
      mtu: (cfg.mtu ?? ext.mtu) - VXLAN_OVERHEAD,
    };
    try {
      // Kube mode (upstream's GetStoredMacAddresses): a new device gets the VtepMAC this node published before, so peers' entries stay valid.
      const stored = await ctx.subnets.storedVtepMac?.();
      if (stored) log.info({ device: spec.name, mac: stored }, `Interface ${spec.name} mac address set to: ${stored}`);
      const { device, repairs } = await ensureVxlanDevice(kernel, spec, stored ?? randomLocalMac(), false, log);
      for (const r of repairs) log.info({ device: spec.name }, r.description);
      const mac = device.mac!;
      const lease = await acquireBackendLease(ctx, {
        publicIp: ext.extAddr,
        publicIpv6: undefined,
        backendType: 'vxlan',
        backendData: encodeVxlanBackendData(cfg.vni, mac),
        backendV6Data: undefined,
      });
      for (const r of await ensureV4AddressOnLink(kernel, device, lease.subnet, network)) log.info({ device: spec.name }, r.description);
      const now = (await kernel.listLinks()).find((l) => l.name === spec.name);
      if (now?.mac !== mac) throw new BackendError(`${spec.name}'s mac address wanted: ${mac}, but got: ${now?.mac}`);
      log.info({ device: spec.name, mac, mtu: spec.mtu, vni: cfg.vni, directRouting: cfg.directRouting }, `${spec.name} ready (VtepMAC ${mac}, MTU ${spec.mtu})`);
      const plan = new VxlanPlan(spec, mac, lease.subnet, network, cfg.directRouting, log);
      return new KernelBackendNetwork(lease, spec.mtu, new KernelNetwork(plan, kernel, { index: now.index, name: spec.name }, log));
    } catch (e) {
      kernel.close();
      throw e;
    }
  }
}
