/**
 * The vxlan backend (compat §6): the kernel forwards; we set up flannel.<VNI>,
 * publish its MAC in the lease, and keep one neighbour, FDB entry and route
 * per remote vxlan lease. A reconciler restores whatever is changed or
 * deleted by hand, including the device itself (recreated with the same MAC,
 * every entry replayed), on netlink events and every 10 s.
 */
import type { LeaseEvent } from '../../lease/lease-watcher';
import type { LeasesWatch } from '../../lease/subnet-manager';
import type { Logger } from '../../log';
import { applyOp, describeOp, type KernelOp } from '../../routing/kernel-ops';
import { NetlinkEvents } from '../../routing/netlink-events';
import { Reconciler, type Repair } from '../../routing/reconciler';
import { RtNetlink } from '../../routing/rtnetlink';
import { sleep } from '../../util/backoff';
import { formatIpv4 } from '../../util/ipv4';
import { randomLocalMac } from '../../util/mac';
import { SerialQueue } from '../../util/serial';
import { type Backend, type BackendContext, BackendError, type BackendNetwork, type BackendStatus } from '../backend';
import { encodeVxlanBackendData, parseVxlanBackendConfig, VXLAN_OVERHEAD, vxlanDeviceName } from './config';
import { ensureV4AddressOnLink, ensureVxlanDevice, type VxlanDeviceSpec } from './device';
import { addOps, describePeer, peerFromLease, removeOps, repairOps, type VxlanPeer } from './peers';
import { LogOnce } from '../../util/repeat-log';

/** How often the reconciler checks even without notifications. */
export const VXLAN_CHECK_INTERVAL_MS = 10_000;

export class VxlanBackend implements Backend {
  readonly type = 'vxlan';

  async register(ctx: BackendContext): Promise<BackendNetwork> {
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
    const nl = RtNetlink.open();
    try {
      // Kube mode (compat §11.8): a new device gets the VtepMAC this node published before, so peers' entries stay valid.
      const stored = await ctx.subnets.storedVtepMac?.();
      if (stored) log.info({ device: spec.name, mac: stored }, `Interface ${spec.name} mac address set to: ${stored}`);
      const { device, repairs } = await ensureVxlanDevice(nl, spec, stored ?? randomLocalMac(), false, log);
      for (const r of repairs) log.info({ device: spec.name }, r.description);
      const mac = device.mac!;
      let lease;
      try {
        lease = await ctx.subnets.acquireLease(
          { publicIp: ext.extAddr, publicIpv6: undefined, backendType: 'vxlan', backendData: encodeVxlanBackendData(cfg.vni, mac), backendV6Data: undefined },
          ctx.signal,
        );
      } catch (e) {
        throw new BackendError(`failed to acquire lease: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
      }
      for (const r of await ensureV4AddressOnLink(nl, device, lease.subnet, network)) log.info({ device: spec.name }, r.description);
      const now = (await nl.getLinkDetails(spec.name))!;
      if (now.mac !== mac) throw new BackendError(`${spec.name}'s mac address wanted: ${mac}, but got: ${now.mac}`);
      log.info({ device: spec.name, mac, mtu: spec.mtu, vni: cfg.vni, directRouting: cfg.directRouting }, `${spec.name} ready (VtepMAC ${mac}, MTU ${spec.mtu})`);
      return new VxlanNetwork(ctx, spec, mac, cfg.directRouting, lease, nl, log);
    } catch (e) {
      nl.close();
      throw e;
    }
  }
}

class VxlanNetwork implements BackendNetwork {
  readonly mtu: number;
  private readonly desired = new Map<string, VxlanPeer>();
  private readonly ignored = new LogOnce();
  private readonly queue = new SerialQueue();
  private readonly events: NetlinkEvents;
  readonly reconciler: Reconciler;
  private watch: LeasesWatch | undefined;
  private devIndex = 0;
  /** True once the first lease snapshot is applied: only then may stale entries be removed. */
  private synced = false;

  constructor(
    private readonly ctx: BackendContext,
    private readonly spec: VxlanDeviceSpec,
    private readonly mac: string,
    private readonly directRouting: boolean,
    readonly lease: BackendNetwork['lease'],
    private readonly nl: RtNetlink,
    private readonly log: Logger,
  ) {
    this.mtu = spec.mtu;
    this.events = new NetlinkEvents(log);
    this.reconciler = new Reconciler(
      {
        name: spec.name,
        intervalMs: VXLAN_CHECK_INTERVAL_MS,
        relevant: (e) => e.kind === 'route' || e.ifindex === this.devIndex || (e.kind === 'link' && e.deleted),
      },
      () => this.queue.run(() => this.repair()),
      this.events,
      log,
    );
  }

  run(): void {
    void this.queue.run(async () => {
      this.devIndex = (await this.nl.getLinkDetails(this.spec.name))?.index ?? 0;
    });
    this.reconciler.start();
    this.watch = this.ctx.subnets.watchLeases(this.lease, (events) => void this.queue.run(() => this.apply(events)));
  }

  private names = (i: number): string => (i === this.devIndex ? this.spec.name : `#${i}`);

  /** Runs ops in order with a few quick retries (upstream retries each netlink call). */
  private async exec(ops: KernelOp[]): Promise<void> {
    for (const op of ops) {
      for (let attempt = 1; ; attempt++) {
        try {
          await applyOp(this.nl, op);
          break;
        } catch (e) {
          if (attempt >= 3) throw e;
          await sleep(100 * attempt);
        }
      }
    }
  }

  private async directlyReachable(publicIp: number): Promise<boolean> {
    if (!this.directRouting) return false;
    try {
      const r = await this.nl.routeGet(publicIp);
      return r.gateway === undefined && r.oif !== undefined && r.oif !== this.devIndex;
    } catch {
      return false;
    }
  }

  private async apply(events: LeaseEvent[]): Promise<void> {
    for (const ev of events) {
      const key = ev.lease.subnet.canonical().toString();
      if (ev.type === 'removed') {
        const p = this.desired.get(key);
        if (!p) continue;
        this.desired.delete(key);
        // Each removal independently: failures are logged, not fatal (compat §6.3).
        for (const op of removeOps(this.devIndex, p)) {
          await applyOp(this.nl, op).catch((e: unknown) => this.log.warn({ op: describeOp(op, this.names), err: String(e) }, `could not undo ${describeOp(op, this.names)}`));
        }
        this.log.info({ subnet: key }, `Subnet removed: ${describePeer(p)}`);
        continue;
      }
      const parsed = peerFromLease(ev.lease);
      if (!parsed.ok) {
        const id = `${key}:${ev.lease.attrs.backendType}`;
        if (this.ignored.first(id)) {
          this.log.warn({ subnet: key, reason: parsed.reason }, `Ignoring non-vxlan subnet ${key}: ${parsed.reason}`);
        }
        continue;
      }
      const peer: VxlanPeer = { ...parsed.peer, direct: await this.directlyReachable(parsed.peer.publicIp) };
      const before = this.desired.get(key);
      if (before && (before.mac !== peer.mac || before.publicIp !== peer.publicIp || before.direct !== peer.direct)) {
        for (const op of removeOps(this.devIndex, before)) await applyOp(this.nl, op).catch(() => undefined);
      }
      this.desired.set(key, peer);
      await this.addPeer(peer);
    }
    if (!this.synced) {
      this.synced = true;
      this.reconciler.schedule('first lease snapshot applied', true);
    }
  }

  /**
   * Neighbour, FDB entry, route; on a failure the entries already added are
   * removed (compat §6.3). addOps and removeOps are index-aligned.
   */
  private async addPeer(p: VxlanPeer): Promise<void> {
    const adds = addOps(this.devIndex, p);
    const undos = removeOps(this.devIndex, p);
    let i = 0;
    try {
      for (; i < adds.length; i++) await this.exec([adds[i]!]);
      this.log.info({ subnet: p.subnet.toString(), peer: formatIpv4(p.publicIp) }, `Subnet added: ${describePeer(p)}`);
    } catch (e) {
      for (let j = i - 1; j >= 0; j--) await applyOp(this.nl, undos[j]!).catch(() => undefined);
      this.log.error({ subnet: p.subnet.toString(), err: e instanceof Error ? e.message : String(e) }, `failed to add ${describePeer(p)}; the reconciler retries`);
    }
  }

  /** Brings the device, its address and every peer's entries back to the desired state. */
  private async repair(): Promise<Repair[]> {
    const network = this.ctx.network.network!;
    const { device, repairs } = await ensureVxlanDevice(this.nl, this.spec, this.mac, true, this.log);
    this.devIndex = device.index;
    repairs.push(...(await ensureV4AddressOnLink(this.nl, device, this.lease.subnet, network)));
    const [neighbors, fdb, routes] = [await this.nl.listNeighbors(device.index), await this.nl.listFdb(device.index), await this.nl.listRoutes()];
    const peers = [...this.desired.values()];
    for (const planned of repairOps(device.index, peers, { neighbors, fdb, routes }, this.synced, network)) {
      await this.exec([planned.op]);
      repairs.push({ kind: planned.kind, description: `${planned.why === 'restore' ? 'restored' : 'removed stale'}: ${describeOp(planned.op, this.names)}` });
    }
    return repairs;
  }

  async status(): Promise<BackendStatus> {
    const routes = await this.queue.run(() => this.nl.listRoutes());
    const desired = [...this.desired.values()];
    return {
      synced: this.synced,
      routesDesired: desired.length,
      routesInstalled: desired.filter((p) => routes.some((r) => r.dst.equals(p.subnet) && r.type === 'unicast')).length,
      reconcilers: [this.reconciler],
      leasesWatch: this.watch?.stats,
    };
  }

  async stop(): Promise<void> {
    await this.watch?.stop();
    await this.reconciler.stop();
    await this.queue.drain();
    this.events.close();
    // The device and its entries stay: traffic keeps flowing while flanneld is down (compat §8.7).
    this.nl.close();
  }
}
