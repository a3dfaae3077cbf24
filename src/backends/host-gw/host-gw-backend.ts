/**
 * The host-gw backend (compat §7): a route per remote host-gw lease through
 * the external interface to the peer's PublicIP. Needs every node on one
 * layer-2 segment and no NAT. Routes are checked every 10 s (upstream's
 * route check) and on netlink notifications, and restored when missing.
 */
import type { LeaseEvent } from '../../lease/lease-watcher';
import type { LeasesWatch } from '../../lease/subnet-manager';
import type { Logger } from '../../log';
import type { ExternalInterface } from '../../routing/ext-iface';
import { applyOp, describeOp } from '../../routing/kernel-ops';
import { NetlinkEvents } from '../../routing/netlink-events';
import { Reconciler, type Repair } from '../../routing/reconciler';
import { describeRoute, isNetlinkError, RtNetlink } from '../../routing/rtnetlink';
import { formatIpv4 } from '../../util/ipv4';
import { SerialQueue } from '../../util/serial';
import { type Backend, type BackendContext, BackendError, type BackendNetwork, type BackendStatus } from '../backend';
import { hasRoute, type HostGwRoute, repairOps, routeFromLease, routeSpec, staleRouteOps } from './routes';
import { LogOnce } from '../../util/repeat-log';

/** upstream's route check period (compat §7.3). */
export const HOST_GW_CHECK_INTERVAL_MS = 10_000;

export class HostGwBackend implements Backend {
  readonly type = 'host-gw';

  /** compat §7.1: the advertised address must be the interface's own (no NAT). */
  check(ext: ExternalInterface): void {
    if (ext.extAddr !== ext.ifaceAddr) {
      throw new BackendError("your PublicIP differs from interface IP, meaning that probably you're on a NAT, which is not supported by host-gw backend");
    }
  }

  async register(ctx: BackendContext): Promise<BackendNetwork> {
    if (!ctx.network.enableIPv4 || !ctx.network.network) {
      throw new BackendError('the host-gw backend of flannel-ts supports IPv4: the network config must enable IPv4 and define Network');
    }
    const ext = ctx.extIface;
    if (ext.extAddr === undefined) throw new BackendError(`no IPv4 address on ${ext.name}`);
    let lease;
    try {
      lease = await ctx.subnets.acquireLease({ publicIp: ext.extAddr, publicIpv6: undefined, backendType: 'host-gw', backendData: undefined, backendV6Data: undefined }, ctx.signal);
    } catch (e) {
      throw new BackendError(`failed to acquire lease: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
    }
    return new HostGwNetwork(ctx, lease, RtNetlink.open(), ctx.log.child({ backend: 'host-gw' }));
  }
}

class HostGwNetwork implements BackendNetwork {
  readonly mtu: number;
  private readonly desired = new Map<string, HostGwRoute>();
  private readonly ignored = new LogOnce();
  /** Routes whose last attempt failed, with the error already logged once. */
  private readonly failing = new Map<string, string>();
  private readonly queue = new SerialQueue();
  private readonly events: NetlinkEvents;
  readonly reconciler: Reconciler;
  private watch: LeasesWatch | undefined;
  /** True once the first lease snapshot is applied: only then may stale routes be removed. */
  private synced = false;

  constructor(
    private readonly ctx: BackendContext,
    readonly lease: BackendNetwork['lease'],
    private readonly nl: RtNetlink,
    private readonly log: Logger,
  ) {
    this.mtu = ctx.extIface.mtu; // compat §4.1: host-gw's FLANNEL_MTU is the interface MTU
    this.events = new NetlinkEvents(log);
    this.reconciler = new Reconciler(
      { name: 'host-gw routes', intervalMs: HOST_GW_CHECK_INTERVAL_MS, relevant: (e) => e.kind === 'route' || (e.kind === 'link' && e.ifindex === ctx.extIface.index) },
      () => this.queue.run(() => this.repair()),
      this.events,
      log,
    );
  }

  run(): void {
    this.reconciler.start();
    this.watch = this.ctx.subnets.watchLeases(this.lease, (events) => void this.queue.run(() => this.apply(events)));
  }

  /**
   * Adds a route; an off-link peer (the kernel says ENETUNREACH) is
   * explained once, then retried quietly by the reconciler. Returns whether
   * it succeeded.
   */
  private async add(r: HostGwRoute): Promise<boolean> {
    const key = r.subnet.toString();
    const text = describeRoute(routeSpec(r), this.ctx.extIface.name);
    try {
      await applyOp(this.nl, { op: 'replaceRoute', route: routeSpec(r) });
      this.failing.delete(key);
      return true;
    } catch (e) {
      const reason = isNetlinkError(e, 'ENETUNREACH')
        ? `the peer ${formatIpv4(r.gateway)} is not on this node's network: host-gw needs every node on the same layer-2 segment (use vxlan otherwise)`
        : e instanceof Error
          ? e.message
          : String(e);
      if (this.failing.get(key) !== reason) {
        this.log.error({ route: text, err: reason }, `Error adding route to ${text}: ${reason}`);
        this.failing.set(key, reason);
      }
      return false;
    }
  }

  private async apply(events: LeaseEvent[]): Promise<void> {
    for (const ev of events) {
      const key = ev.lease.subnet.canonical().toString();
      if (ev.type === 'removed') {
        const r = this.desired.get(key);
        if (!r) continue;
        this.desired.delete(key);
        this.failing.delete(key);
        await applyOp(this.nl, { op: 'deleteRoute', route: routeSpec(r) }).catch((e: unknown) => this.log.warn({ route: key, err: String(e) }, `Error deleting route to ${key}`));
        this.log.info({ subnet: key }, `Subnet removed: ${key}`);
        continue;
      }
      const r = routeFromLease(ev.lease, this.ctx.extIface.index);
      if (!r) {
        const id = `${key}:${ev.lease.attrs.backendType}`;
        if (this.ignored.first(id)) {
          this.log.warn({ subnet: key }, `Ignoring non-host-gw subnet: type=${ev.lease.attrs.backendType}`);
        }
        continue;
      }
      this.desired.set(key, r);
      if (await this.add(r)) this.log.info({ subnet: key, gateway: formatIpv4(r.gateway) }, `Subnet added: ${key} via ${formatIpv4(r.gateway)}`);
    }
    if (!this.synced) {
      this.synced = true;
      this.reconciler.schedule('first lease snapshot applied', true);
    }
  }

  private async repair(): Promise<Repair[]> {
    const repairs: Repair[] = [];
    const routes = await this.nl.listRoutes();
    const ops = repairOps([...this.desired.values()], routes);
    if (this.synced) {
      for (const op of staleRouteOps([...this.desired.values()], routes, this.ctx.network.network!)) {
        await applyOp(this.nl, op);
        repairs.push({ kind: 'route', description: `removed stale route: ${describeOp(op, (i) => (i === this.ctx.extIface.index ? this.ctx.extIface.name : `#${i}`))}` });
      }
    }
    for (const op of ops) {
      if (op.op !== 'replaceRoute') continue;
      const r = this.desired.get(op.route.dst.toString());
      if (r && (await this.add(r))) {
        repairs.push({ kind: 'route', description: `Route recovered ${r.subnet.toString()} : ${formatIpv4(r.gateway)} (${describeOp(op, (i) => (i === this.ctx.extIface.index ? this.ctx.extIface.name : `#${i}`))})` });
      }
    }
    return repairs;
  }

  async status(): Promise<BackendStatus> {
    const routes = await this.queue.run(() => this.nl.listRoutes());
    const desired = [...this.desired.values()];
    return {
      synced: this.synced,
      routesDesired: desired.length,
      routesInstalled: desired.filter((r) => hasRoute(routes, r)).length,
      reconcilers: [this.reconciler],
      leasesWatch: this.watch?.stats,
    };
  }

  async stop(): Promise<void> {
    await this.watch?.stop();
    await this.reconciler.stop();
    await this.queue.drain();
    this.events.close();
    // Routes stay: traffic keeps flowing while flanneld is down (compat §8.7).
    this.nl.close();
  }
}
