/**
 * An in-memory SubnetRegistry (src/lease/etcd/registry.ts), as upstream's
 * pkg/subnet/etcd/mock_registry.go is for its manager: keys with values,
 * revisions and etcd leases on an injected clock, transactional writes with
 * the real registry's compare rules, watches with history, compaction and
 * resume. It lets the etcd subnet manager's logic run deterministically
 * without etcd, and lets a test step into the moments a real etcd does not
 * expose:
 *  - `hooks.beforeWrite` can fail a write before it is applied, or apply it
 *    and then fail (the reply lost after the commit);
 *  - `hooks.afterList` runs between a listing and the caller's next step
 *    (a put between the initial list and the watch start);
 *  - `compact()`, `down()`/`up()` and `advance()` (the clock; expired
 *    leases delete their keys) drive the rest.
 */
import { EtcdUnavailableError, LeaseLostError, LeaseTakenError } from '../../src/lease/etcd/errors';
import { encodeLeaseAttrs } from '../../src/lease/etcd/lease-value';
import {
  parseLeaseKv,
  type RegistryEvent,
  type RegistryWatch,
  type RegistryWatchHandlers,
  type RegistryWatchOptions,
  type SkippedKey,
  type StoredLease,
  type SubnetRegistry,
} from '../../src/lease/etcd/registry';
import { joinKey, subnetKeyPath, subnetsPrefix } from '../../src/lease/etcd/subnet-key';
import type { LeaseAttrs } from '../../src/lease/lease';
import type { Ipv4Net } from '../../src/util/ipv4';
import type { Ipv6Net } from '../../src/util/ipv6';

interface Kv {
  value: string;
  lease: string;
  modRevision: bigint;
}

interface HistoryEvent {
  revision: bigint;
  type: 'put' | 'delete';
  key: string;
  value: string;
  lease: string;
}

export type WriteKind = 'create' | 'rewrite' | 'renew' | 'delete' | 'grant' | 'revoke';
/** What a hook makes of a write: proceed, fail before applying, or apply and then fail (reply lost). */
export type WriteFate = 'ok' | 'fail' | 'apply-then-fail';

export interface MemoryRegistryHooks {
  beforeWrite?(kind: WriteKind, key: string): WriteFate;
  afterList?(): void;
}

class MemoryWatch implements RegistryWatch {
  reconnects = 0;
  nextRevision: bigint;
  private active = false;
  private waitingRestart = false;

  constructor(
    private readonly registry: MemoryRegistry,
    readonly options: RegistryWatchOptions,
    private readonly handlers: RegistryWatchHandlers,
  ) {
    this.nextRevision = options.startRevision;
  }

  matches(key: string): boolean {
    return this.options.prefix ? key.startsWith(this.options.key) : key === this.options.key;
  }

  start(): void {
    this.active = true;
    setImmediate(() => this.catchUp());
  }

  restartFrom(revision: bigint): void {
    this.nextRevision = revision;
    this.waitingRestart = false;
    setImmediate(() => this.catchUp());
  }

  async stop(): Promise<void> {
    this.active = false;
    this.handlers.onState?.('stopped');
  }

  /** Delivers what happened from nextRevision on (or reports compaction), if connected. */
  catchUp(): void {
    if (!this.active || this.waitingRestart) return;
    if (!this.registry.isUp) {
      this.handlers.onState?.('disconnected', 'etcd is down');
      return;
    }
    if (this.nextRevision <= this.registry.compactedAt) {
      this.waitingRestart = true;
      this.handlers.onState?.('compacted');
      this.handlers.onCompacted(this.registry.compactedAt);
      return;
    }
    this.handlers.onState?.('connected');
    const events: RegistryEvent[] = this.registry
      .historyFrom(this.nextRevision)
      .filter((e) => this.matches(e.key))
      .map((e) =>
        e.type === 'put'
          ? { type: 'put', kv: parseLeaseKv(this.registry.prefix, e.key, e.value, e.revision, e.lease), modRevision: e.revision }
          : { type: 'delete', key: e.key, modRevision: e.revision },
      );
    const revision = this.registry.revision;
    this.nextRevision = revision + 1n;
    if (events.length > 0) this.handlers.onEvents(events, revision);
  }
}

export class MemoryRegistry implements SubnetRegistry {
  readonly subnetsPrefix: string;
  readonly configKey: string;
  revision = 1n;
  compactedAt = 0n;
  isUp = true;
  hooks: MemoryRegistryHooks = {};
  private readonly kvs = new Map<string, Kv>();
  private readonly history: HistoryEvent[] = [];
  private readonly leases = new Map<string, { expiresAt: number }>();
  private nextLease = 1000;
  private readonly watches = new Set<MemoryWatch>();
  /** Every write attempted, for assertions. */
  readonly writes: Array<{ kind: WriteKind; key: string; fate: WriteFate }> = [];
  closed = false;

  constructor(
    readonly prefix = '/coreos.com/network',
    /** The clock, in ms (tests advance it). */
    public now = 0,
  ) {
    this.subnetsPrefix = subnetsPrefix(prefix);
    this.configKey = joinKey(prefix, 'config');
  }

  keyOf(subnet: Ipv4Net, ipv6Subnet?: Ipv6Net): string {
    return subnetKeyPath(this.prefix, subnet, ipv6Subnet);
  }

  // ---------------------------------------------------------------- test API

  /** Writes a key as `etcdctl put` would (optionally attached to a lease). */
  put(key: string, value: string, lease = '0'): bigint {
    this.revision++;
    this.kvs.set(key, { value, lease, modRevision: this.revision });
    this.history.push({ revision: this.revision, type: 'put', key, value, lease });
    this.notify();
    return this.revision;
  }

  delete(key: string): void {
    if (!this.kvs.delete(key)) return;
    this.revision++;
    this.history.push({ revision: this.revision, type: 'delete', key, value: '', lease: '0' });
    this.notify();
  }

  get(key: string): Kv | undefined {
    return this.kvs.get(key);
  }

  keys(): string[] {
    return [...this.kvs.keys()].sort();
  }

  /** A lease granted now with `ttlSeconds`. */
  grantLease(ttlSeconds: number): string {
    const id = String(this.nextLease++);
    this.leases.set(id, { expiresAt: this.now + ttlSeconds * 1000 });
    return id;
  }

  /** Moves the clock; keys of expired leases are deleted, as etcd does. */
  advance(ms: number): void {
    this.now += ms;
    for (const [id, l] of this.leases) {
      if (l.expiresAt > this.now) continue;
      this.leases.delete(id);
      for (const [key, kv] of [...this.kvs]) if (kv.lease === id) this.delete(key);
    }
  }

  compact(revision: bigint = this.revision): void {
    this.compactedAt = revision;
    while (this.history.length > 0 && this.history[0]!.revision <= revision) this.history.shift();
  }

  down(): void {
    this.isUp = false;
    this.notify();
  }

  up(): void {
    this.isUp = true;
    for (const w of this.watches) w.reconnects++;
    this.notify();
  }

  historyFrom(revision: bigint): HistoryEvent[] {
    return this.history.filter((e) => e.revision >= revision);
  }

  private notify(): void {
    setImmediate(() => {
      for (const w of this.watches) w.catchUp();
    });
  }

  // ------------------------------------------------------- SubnetRegistry

  private check(op: string): void {
    if (!this.isUp) throw new EtcdUnavailableError(op, ['memory'], new Error('connection refused'));
  }

  /** Runs a write through the hook: the fate decides whether `apply` runs and whether the caller sees an error. */
  private write<T>(kind: WriteKind, key: string, apply: () => T): T {
    this.check(`${kind} ${key}`);
    const fate = this.hooks.beforeWrite?.(kind, key) ?? 'ok';
    this.writes.push({ kind, key, fate });
    if (fate === 'fail') throw new EtcdUnavailableError(`${kind} ${key}`, ['memory'], new Error('deadline exceeded'));
    const result = apply();
    if (fate === 'apply-then-fail') throw new EtcdUnavailableError(`${kind} ${key}`, ['memory'], new Error('deadline exceeded (the reply was lost)'));
    return result;
  }

  async getConfig(): Promise<string | undefined> {
    this.check('get config');
    return this.kvs.get(this.configKey)?.value;
  }

  private stored(key: string, kv: Kv): ReturnType<typeof parseLeaseKv> {
    return parseLeaseKv(this.prefix, key, kv.value, kv.modRevision, kv.lease);
  }

  async listLeases(): Promise<{ leases: StoredLease[]; revision: bigint; skipped: SkippedKey[] }> {
    this.check('list');
    const leases: StoredLease[] = [];
    const skipped: SkippedKey[] = [];
    for (const key of this.keys()) {
      if (!key.startsWith(this.subnetsPrefix)) continue;
      const p = this.stored(key, this.kvs.get(key)!);
      if (p.ok) leases.push(p.stored);
      else skipped.push(p.skipped);
    }
    const revision = this.revision;
    this.hooks.afterList?.();
    return { leases, revision, skipped };
  }

  async getLease(key: string): Promise<{ stored: StoredLease | undefined; revision: bigint }> {
    this.check(`get ${key}`);
    const kv = this.kvs.get(key);
    if (!kv) return { stored: undefined, revision: this.revision };
    const p = this.stored(key, kv);
    if (!p.ok) throw new LeaseLostError(key, p.skipped.reason);
    return { stored: p.stored, revision: this.revision };
  }

  async leaseTtlSeconds(leaseId: string): Promise<number> {
    this.check(`ttl ${leaseId}`);
    const l = this.leases.get(leaseId);
    return l ? Math.ceil((l.expiresAt - this.now) / 1000) : -1;
  }

  private result(key: string, attrs: LeaseAttrs, lease: string, ttl: number | undefined, base: StoredLease['lease']): StoredLease {
    return {
      key,
      value: this.kvs.get(key)!.value,
      modRevision: this.kvs.get(key)!.modRevision,
      etcdLeaseId: lease,
      lease: { ...base, attrs, expiration: ttl === undefined ? undefined : new Date(this.now + ttl * 1000) },
    };
  }

  async createLease(subnet: Ipv4Net, ipv6Subnet: Ipv6Net | undefined, attrs: LeaseAttrs, ttlSeconds: number): Promise<StoredLease> {
    const key = this.keyOf(subnet, ipv6Subnet);
    const value = encodeLeaseAttrs(attrs);
    const lease = this.write('grant', key, () => this.grantLease(ttlSeconds));
    const created = this.write('create', key, () => {
      if (this.kvs.has(key)) return false;
      this.put(key, value, lease);
      return true;
    });
    if (!created) throw new LeaseTakenError(key);
    return this.result(key, attrs, lease, ttlSeconds, { subnet, ipv6Subnet, attrs, expiration: undefined });
  }

  private putWith(kind: WriteKind, existing: StoredLease, attrs: LeaseAttrs, ttlSeconds: number, unchanged: (kv: Kv) => boolean, conflict: () => Error): StoredLease {
    const key = existing.key;
    const reservation = existing.etcdLeaseId === '0';
    const lease = reservation ? '0' : this.write('grant', key, () => this.grantLease(ttlSeconds));
    const value = encodeLeaseAttrs(attrs);
    const ok = this.write(kind, key, () => {
      const kv = this.kvs.get(key);
      if (!kv || !unchanged(kv)) return false;
      this.put(key, value, lease);
      return true;
    });
    if (!ok) throw conflict();
    if (!reservation && existing.etcdLeaseId !== lease) this.leases.delete(existing.etcdLeaseId);
    return this.result(key, attrs, lease, reservation ? undefined : ttlSeconds, existing.lease);
  }

  async rewriteLease(existing: StoredLease, attrs: LeaseAttrs, ttlSeconds: number): Promise<StoredLease> {
    return this.putWith('rewrite', existing, attrs, ttlSeconds, (kv) => kv.modRevision === existing.modRevision, () => new LeaseTakenError(existing.key));
  }

  async renewLease(current: StoredLease, ttlSeconds: number): Promise<StoredLease> {
    return this.putWith('renew', current, current.lease.attrs, ttlSeconds, (kv) => kv.value === current.value, () => new LeaseLostError(current.key, "the key no longer holds this node's lease"));
  }

  async deleteLease(existing: StoredLease): Promise<boolean> {
    return this.write('delete', existing.key, () => {
      const kv = this.kvs.get(existing.key);
      if (!kv || kv.modRevision !== existing.modRevision) return false;
      this.delete(existing.key);
      return true;
    });
  }

  watch(options: RegistryWatchOptions, handlers: RegistryWatchHandlers): RegistryWatch {
    const w = new MemoryWatch(this, options, handlers);
    this.watches.add(w);
    return w;
  }

  close(): void {
    this.closed = true;
    this.watches.clear();
  }
}
