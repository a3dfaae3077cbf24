/**
 * The network of a backend whose forwarding the kernel does (vxlan, host-gw):
 * one engine, after upstream's pkg/backend/route_network.go (RouteNetwork,
 * shared by host-gw and ipip), that follows lease events and keeps the
 * kernel in the state the backend's plan describes.
 *
 * The engine owns the desired peers, the order of operations, the rollback of
 * a failed add, the "ignored lease" log-once, the reconciler (netlink
 * notifications, lost notifications, a periodic check), status() and stop().
 * A backend supplies only a plan: lease -> desired peer, peer -> kernel
 * operations, desired vs actual kernel state -> operations, and optionally a
 * device hook (vxlan's flannel.<VNI>). Kernel access goes through a
 * KernelPort, so the engine runs against an in-memory kernel in tests.
 *
 * Guarantees:
 *  - operations on the kernel run one at a time, in lease-event order;
 *  - a peer's operations are applied in the plan's order; if one fails, the
 *    ones already applied are undone (newest first), the failure is logged
 *    once per peer and reason, and the reconciler retries;
 *  - a peer replaced by another lease for the same subnet is made before the
 *    old one is broken: the new entries first, then the old entries the new
 *    ones did not overwrite;
 *  - nothing is removed as stale before the first lease batch is applied, so
 *    a restart never deletes what a peer still needs;
 *  - a failure that concerns one peer never fails the reconciler (a rogue or
 *    misconfigured peer cannot make this node unready); a failure of the
 *    device hook does.
 *  - stop() leaves the kernel state in place: traffic keeps flowing while
 *    flanneld is down (docs/compatibility.md, "Signals and shutdown").
 */
import { type Lease, type LeaseEvent, leaseKey } from '../lease/lease';
import type { Logger } from '../logging';
import { describeOp, type KernelOp, opTarget } from '../routing/kernel-ops';
import type { KernelPort } from '../routing/kernel-port';
import type { NetlinkEvent } from '../routing/netlink-events';
import { Reconciler, type Repair } from '../routing/reconciler';
import { isNetlinkError, type NeighborEntry, type RouteInfo } from '../routing/rtnetlink';
import { sleep } from '../util/backoff';
import type { IpAddr, IpFamily, IpNet } from '../util/ip';
import { errorText } from '../util/errors';
import { LogOnce } from '../util/repeat-log';
import { SerialQueue } from '../util/serial';
import type { BackendNetwork, BackendNetworkStatus } from './backend';

/**
 * A lease as a backend's peer, or why not. `silent`: the lease has nothing
 * for this network (no part of its address family), so nothing is logged.
 * A lease that stops qualifying withdraws the peer it was.
 */
export type PeerParse<P> = { ok: true; peer: P } | { ok: false; reason: string; silent?: boolean };

/** An operation a repair plan wants, and why. */
export interface PlannedOp {
  op: KernelOp;
  /** What kind of state: "neighbor", "fdb", "route", ... (repair counters). */
  kind: string;
  /** "restore" (missing or different) or "remove" (stale). */
  why: 'restore' | 'remove';
  /** The subnet (KernelNetworkPlan.peerSubnet) of the desired peer this op restores, when it restores one (failures then concern only that peer). */
  peer?: string;
}

/** The kernel state a repair compares with (what the plan asks for; the rest stays empty). */
export interface KernelState {
  routes: ReadonlyArray<RouteInfo<IpNet>>;
  neighbors: ReadonlyArray<NeighborEntry<IpAddr>>;
  fdb: ReadonlyArray<NeighborEntry<IpAddr>>;
}

/**
 * What a kernel backend supplies. `P` is its peer (the desired state for one
 * remote lease), `D` the devices its operations refer to.
 */
export interface KernelNetworkPlan<P, D> {
  /** For logs and the reconciler, e.g. "vxlan", "host-gw routes". */
  readonly name: string;
  /** The address family of the routes it installs (status reads that family's routes). */
  readonly family: IpFamily;
  /** The periodic check without notifications. */
  readonly checkIntervalMs: number;
  /** Whether a netlink notification can concern this network. */
  relevant(e: NetlinkEvent, device: D): boolean;
  /** Device names for log lines. */
  deviceName(ifindex: number, device: D): string;

  /** A remote lease as the desired peer; a lease this backend does not route gives the reason (logged once). */
  peerFromLease(lease: Lease): PeerParse<P>;
  /** The log line for an ignored lease (upstream's wording). */
  ignoredMessage(lease: Lease, reason: string): string;
  /** Refines a peer with what only the kernel knows (vxlan DirectRouting: is the peer on-link?). */
  resolvePeer?(peer: P, kernel: KernelPort, device: D): Promise<P>;
  samePeer(a: P, b: P): boolean;
  describePeer(p: P): string;
  /** The peer's subnet of this plan's family, as text: what PlannedOp.peer names. */
  peerSubnet(p: P): string;
  /** The operations that install a peer, in order. */
  addOps(p: P, device: D): KernelOp[];
  /** The operations that remove a peer; each is applied on its own (a failure does not stop the others). */
  removeOps(p: P, device: D): KernelOp[];

  /** What the repair needs to read. */
  readKernel(kernel: KernelPort, device: D): Promise<KernelState>;
  /**
   * The operations that bring the kernel back to `desired`. With
   * `removeStale` (only once the first lease batch is applied) it also removes
   * entries of ours that no peer wants.
   */
  repairOps(desired: readonly P[], kernel: KernelState, device: D, removeStale: boolean): PlannedOp[];
  /** The repair's log text for an op (default: "restored: <op>" / "removed stale: <op>"). */
  describeRepair?(planned: PlannedOp, names: (ifindex: number) => string, peer: P | undefined): string;
  /** Whether a peer's route is in `routes` (status: routes installed). */
  routeInstalled(p: P, routes: ReadonlyArray<RouteInfo<IpNet>>, device: D): boolean;

  /** The device hook, run before every repair: makes the backend's devices exist as wanted. */
  ensureDevice?(kernel: KernelPort): Promise<{ device: D; repairs: Repair[] }>;
  /** The log line for a peer whose operations failed (default: "failed to add <peer>: <error>"). */
  addFailureMessage?(p: P, op: KernelOp, error: unknown, names: (ifindex: number) => string): string;
}

/** errnos that retrying the same request does not fix. */
const PERMANENT = new Set(['ENETUNREACH', 'EHOSTUNREACH', 'EINVAL', 'ENODEV', 'EPERM', 'EACCES', 'EOPNOTSUPP', 'ERANGE']);
/** Attempts per operation (upstream wraps each netlink call in a retry). */
const ATTEMPTS = 3;

export interface KernelNetworkOptions {
  /** Wait before the nth retry of an operation (default 100 ms x n). */
  retryDelayMs?: (attempt: number) => number;
}

export class KernelNetwork<P, D> implements FamilyEngine {
  private readonly desired = new Map<string, P>();
  private readonly ignored = new LogOnce();
  /** Peers whose last attempt failed, with the reason already logged. */
  private readonly failing = new Map<string, string>();
  private readonly queue = new SerialQueue();
  readonly reconciler: Reconciler;
  /** True once the first lease batch is applied: only then may stale entries be removed. */
  private synced = false;

  constructor(
    private readonly plan: KernelNetworkPlan<P, D>,
    private readonly kernel: KernelPort,
    private device: D,
    private readonly log: Logger,
    private readonly options: KernelNetworkOptions = {},
  ) {
    this.reconciler = new Reconciler(
      { name: plan.name, intervalMs: plan.checkIntervalMs, relevant: (e) => plan.relevant(e, this.device) },
      () => this.queue.run(() => this.repair()),
      kernel.events,
      log,
    );
  }

  private names = (i: number): string => this.plan.deviceName(i, this.device);

  start(): void {
    this.reconciler.start();
  }

  /** Applies a batch of lease events (queued behind any kernel work in progress). */
  applyLeases(events: readonly LeaseEvent[]): Promise<void> {
    return this.queue.run(() => this.apply(events));
  }

  /** The desired peers, by subnet (for tests and status). */
  get peers(): ReadonlyMap<string, P> {
    return this.desired;
  }

  private async exec(op: KernelOp): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.kernel.apply(op);
        return;
      } catch (e) {
        if (attempt >= ATTEMPTS || (isNetlinkError(e) && PERMANENT.has(e.code))) throw e;
        await sleep(this.options.retryDelayMs?.(attempt) ?? 100 * attempt);
      }
    }
  }

  /** Applies every op on its own; failures are logged, not fatal (upstream's removal). */
  private async bestEffort(ops: readonly KernelOp[]): Promise<void> {
    for (const op of ops) {
      await this.kernel.apply(op).catch((e: unknown) => this.log.warn({ op: describeOp(op, this.names), err: errorText(e) }, `could not undo ${describeOp(op, this.names)}: ${errorText(e)}`));
    }
  }

  private async apply(events: readonly LeaseEvent[]): Promise<void> {
    for (const ev of events) {
      const key = leaseKey(ev.lease);
      if (ev.type === 'removed') {
        await this.withdraw(key);
        continue;
      }
      const parsed = this.plan.peerFromLease(ev.lease);
      if (!parsed.ok) {
        if (!parsed.silent && this.ignored.first(`${key}:${ev.lease.attrs.backendType}:${parsed.reason}`)) {
          this.log.warn({ subnet: key, reason: parsed.reason }, this.plan.ignoredMessage(ev.lease, parsed.reason));
        }
        // A lease that stopped qualifying (its type or its part of this family changed) withdraws its peer.
        await this.withdraw(key);
        continue;
      }
      const peer = this.plan.resolvePeer ? await this.plan.resolvePeer(parsed.peer, this.kernel, this.device) : parsed.peer;
      const before = this.desired.get(key);
      this.desired.set(key, peer);
      if (before && this.plan.samePeer(before, peer) && !this.failing.has(key)) continue;
      if (await this.install(key, peer)) {
        if (before && !this.plan.samePeer(before, peer)) await this.bestEffort(this.superseded(before, peer));
        this.log.info({ subnet: key }, `Subnet added: ${this.plan.describePeer(peer)}`);
      }
    }
    if (!this.synced) {
      this.synced = true;
      this.reconciler.schedule('first lease batch applied', true);
    }
  }

  /** Removes the peer of lease `key`, if there is one. */
  private async withdraw(key: string): Promise<void> {
    const p = this.desired.get(key);
    if (!p) return;
    this.desired.delete(key);
    this.failing.delete(key);
    await this.bestEffort(this.unshared(this.plan.removeOps(p, this.device)));
    this.log.info({ subnet: key }, `Subnet removed: ${this.plan.describePeer(p)}`);
  }

  /**
   * `ops` without those whose object another desired peer still installs:
   * two leases of one machine (the same PublicIP, and with vxlan the same
   * VtepMAC: a stale lease beside a new one) share an FDB entry, and the
   * removal of one must not take it from the other.
   */
  private unshared(ops: readonly KernelOp[]): KernelOp[] {
    const wanted = new Set([...this.desired.values()].flatMap((p) => this.plan.addOps(p, this.device).map(opTarget)));
    return ops.filter((op) => !wanted.has(opTarget(op)));
  }

  /** The removal ops of `before` whose objects `after` (or another peer) does not install (make before break). */
  private superseded(before: P, after: P): KernelOp[] {
    const kept = new Set(this.plan.addOps(after, this.device).map(opTarget));
    return this.unshared(this.plan.removeOps(before, this.device).filter((op) => !kept.has(opTarget(op))));
  }

  /**
   * The peer's add ops in order; on a failure those already applied are undone
   * (newest first). Returns whether it is installed.
   */
  private async install(key: string, peer: P): Promise<boolean> {
    const adds = this.plan.addOps(peer, this.device);
    const undo = new Map(this.plan.removeOps(peer, this.device).map((op) => [opTarget(op), op]));
    const done: KernelOp[] = [];
    for (const op of adds) {
      try {
        await this.exec(op);
        done.push(op);
      } catch (e) {
        for (const d of done.reverse()) {
          const u = undo.get(opTarget(d));
          if (u) await this.kernel.apply(u).catch(() => undefined);
        }
        this.noteFailure(key, peer, op, e);
        return false;
      }
    }
    if (this.failing.delete(key)) this.log.info({ subnet: key }, `${this.plan.describePeer(peer)} is installed now`);
    return true;
  }

  private noteFailure(key: string, peer: P, op: KernelOp, e: unknown): void {
    const msg = this.plan.addFailureMessage?.(peer, op, e, this.names) ?? `failed to add ${this.plan.describePeer(peer)} (${describeOp(op, this.names)}): ${errorText(e)}; the reconciler retries`;
    if (this.failing.get(key) !== msg) this.log.error({ subnet: key, err: errorText(e) }, msg);
    this.failing.set(key, msg);
  }

  /** The device hook, then every planned op; ops for one peer fail alone. */
  private async repair(): Promise<Repair[]> {
    const repairs: Repair[] = [];
    if (this.plan.ensureDevice) {
      const r = await this.plan.ensureDevice(this.kernel);
      this.device = r.device;
      repairs.push(...r.repairs);
    }
    const state = await this.plan.readKernel(this.kernel, this.device);
    // Plans name a peer by its subnet of their family; the engine keys peers by lease.
    const keyOf = new Map([...this.desired].map(([key, p]) => [this.plan.peerSubnet(p), key]));
    const failedPeers = new Set<string>();
    for (const planned of this.plan.repairOps([...this.desired.values()], state, this.device, this.synced)) {
      const key = planned.peer !== undefined ? keyOf.get(planned.peer) : undefined;
      if (key !== undefined && failedPeers.has(key)) continue;
      const peer = key !== undefined ? this.desired.get(key) : undefined;
      try {
        await this.exec(planned.op);
      } catch (e) {
        if (key === undefined || peer === undefined) throw e;
        failedPeers.add(key);
        this.noteFailure(key, peer, planned.op, e);
        continue;
      }
      if (key !== undefined && this.failing.delete(key) && peer) {
        this.log.info({ subnet: key }, `${this.plan.describePeer(peer)} is installed now`);
      }
      const description =
        this.plan.describeRepair?.(planned, this.names, peer) ?? `${planned.why === 'restore' ? 'restored' : 'removed stale'}: ${describeOp(planned.op, this.names)}`;
      repairs.push({ kind: planned.kind, description });
    }
    return repairs;
  }

  async status(): Promise<BackendNetworkStatus> {
    const routes = await this.queue.run(
      (): Promise<ReadonlyArray<RouteInfo<IpNet>>> => (this.plan.family === 6 ? this.kernel.listRoutes6() : this.kernel.listRoutes()),
    );
    const desired = [...this.desired.values()];
    return {
      synced: this.synced,
      routesDesired: desired.length,
      routesInstalled: desired.filter((p) => this.plan.routeInstalled(p, routes, this.device)).length,
      reconcilers: [this.reconciler],
    };
  }

  /** Stops the reconciler and waits for kernel work in progress; the kernel state stays. */
  async stop(): Promise<void> {
    await this.reconciler.stop();
    await this.queue.drain();
    this.kernel.close();
  }
}

/** What a kernel backend's network needs of an engine, whatever its plan. */
export interface FamilyEngine {
  readonly reconciler: Reconciler;
  start(): void;
  applyLeases(events: readonly LeaseEvent[]): Promise<void>;
  status(): Promise<BackendNetworkStatus>;
  stop(): Promise<void>;
}

/** A kernel backend's network: the lease, the MTU and one engine per address family. */
export class KernelBackendNetwork implements BackendNetwork {
  readonly engines: readonly FamilyEngine[];

  constructor(
    readonly lease: Lease,
    readonly mtu: number,
    ...engines: FamilyEngine[]
  ) {
    this.engines = engines;
  }

  /** The first engine (the IPv4 one when there is one). */
  get engine(): FamilyEngine {
    return this.engines[0]!;
  }

  start(): void {
    for (const e of this.engines) e.start();
  }

  applyLeases(events: readonly LeaseEvent[]): void {
    for (const e of this.engines) void e.applyLeases(events);
  }

  async status(): Promise<BackendNetworkStatus> {
    const all = await Promise.all(this.engines.map((e) => e.status()));
    return {
      synced: all.every((s) => s.synced),
      routesDesired: all.reduce((n, s) => n + s.routesDesired, 0),
      routesInstalled: all.reduce((n, s) => n + s.routesInstalled, 0),
      reconcilers: all.flatMap((s) => s.reconcilers),
    };
  }

  async stop(): Promise<void> {
    for (const e of this.engines) await e.stop();
  }
}
