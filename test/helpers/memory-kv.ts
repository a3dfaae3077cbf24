/**
 * An in-memory etcd behind the KvStore contract (src/lease/etcd/kv-store.ts),
 * as upstream's pkg/subnet/etcd/mock_registry.go is for its manager: keys with
 * create and mod revisions and etcd leases on an injected clock, one-compare
 * transactions, watches with history, compaction and resume. The registry's
 * real logic (src/lease/etcd/registry.ts) runs on it unchanged, so a test can
 * step into moments a real etcd does not expose:
 *  - `hooks.beforeWrite` fails a write before it is applied, or applies it
 *    and then fails as a lost reply would (the outcome unknown to the caller);
 *  - `hooks.afterList` runs between a listing and the caller's next step (a
 *    put between the initial list and the watch's start);
 *  - `compact()`, `down()`/`up()`, `advance()` (the clock: expired leases
 *    delete their keys) and `wipe()` (a new, empty etcd on the same address:
 *    the revision starts again from 1, and with `newCluster` the cluster id
 *    changes too).
 */
import { EtcdUnavailableError } from '../../src/lease/etcd/errors';
import type { KvCondition, KvEntry, KvEvent, KvHeader, KvStore, KvWatch, KvWatchHandlers, KvWatchOptions } from '../../src/lease/etcd/kv-store';

interface HistoryEvent {
  revision: bigint;
  event: KvEvent;
}

export type WriteKind = 'put' | 'delete' | 'grant' | 'revoke';
/** What a hook makes of a write: proceed, fail before applying, or apply and then fail (reply lost). */
export type WriteFate = 'ok' | 'fail' | 'apply-then-fail';

export interface MemoryKvHooks {
  beforeWrite?(kind: WriteKind, key: string): WriteFate;
  afterList?(): void;
}

class MemoryWatch implements KvWatch {
  reconnects = 0;
  nextRevision: bigint;
  private clusterId: string | undefined;
  private active = false;
  private waiting = false;

  constructor(
    private readonly kv: MemoryKv,
    readonly options: KvWatchOptions,
    private readonly handlers: KvWatchHandlers,
  ) {
    this.nextRevision = options.startRevision;
    this.clusterId = options.clusterId;
  }

  private matches(key: string): boolean {
    return this.options.prefix ? key.startsWith(this.options.key) : key === this.options.key;
  }

  start(): void {
    this.active = true;
    setImmediate(() => this.catchUp());
  }

  restartFrom(revision: bigint, clusterId?: string): void {
    this.nextRevision = revision;
    if (clusterId !== undefined) this.clusterId = clusterId;
    this.waiting = false;
    setImmediate(() => this.catchUp());
  }

  async stop(): Promise<void> {
    this.active = false;
    this.handlers.onState?.('stopped');
  }

  /** Delivers what happened from nextRevision on, or reports compaction or a replaced store. */
  catchUp(): void {
    if (!this.active || this.waiting) return;
    if (!this.kv.isUp) {
      this.handlers.onState?.('disconnected', 'etcd is down');
      return;
    }
    const header = this.kv.header();
    if (this.clusterId !== undefined && (header.clusterId !== this.clusterId || header.revision < this.nextRevision - 1n)) {
      this.waiting = true;
      this.handlers.onState?.('reset');
      this.handlers.onReset(header.clusterId !== this.clusterId ? 'the cluster id changed' : 'the revision went back', header);
      return;
    }
    this.clusterId = header.clusterId;
    if (this.nextRevision <= this.kv.compactedAt) {
      this.waiting = true;
      this.handlers.onState?.('compacted');
      this.handlers.onCompacted(this.kv.compactedAt);
      return;
    }
    this.handlers.onState?.('connected');
    const events = this.kv
      .historyFrom(this.nextRevision)
      .map((h) => h.event)
      .filter((e) => this.matches(e.type === 'put' ? e.entry.key : e.key));
    this.nextRevision = header.revision + 1n;
    if (events.length > 0) this.handlers.onEvents(events, header);
  }
}

export class MemoryKv implements KvStore {
  readonly endpoints = ['memory'];
  /** Requests that failed (down, or a hook's failure). */
  requestErrors = 0;
  revision = 1n;
  compactedAt = 0n;
  clusterId = '14841639068965178418';
  isUp = true;
  hooks: MemoryKvHooks = {};
  private entries = new Map<string, KvEntry>();
  private history: HistoryEvent[] = [];
  private leases = new Map<string, number>();
  private nextLease = 1000;
  private readonly watches = new Set<MemoryWatch>();
  /** Every write attempted, with what the hook made of it. */
  readonly writes: Array<{ kind: WriteKind; key: string; fate: WriteFate }> = [];

  /** `now`: the clock in ms (tests advance it). */
  constructor(public now = Date.now()) {}

  header(): KvHeader {
    return { revision: this.revision, clusterId: this.clusterId };
  }

  // ---------------------------------------------------------------- test API

  /** Writes a key as `etcdctl put` would (optionally attached to a lease). */
  put(key: string, value: string, lease = '0'): bigint {
    this.revision++;
    const before = this.entries.get(key);
    const entry: KvEntry = { key, value, lease, modRevision: this.revision, createRevision: before?.createRevision ?? this.revision };
    this.entries.set(key, entry);
    this.history.push({ revision: this.revision, event: { type: 'put', entry } });
    this.notify();
    return this.revision;
  }

  delete(key: string): void {
    if (!this.entries.delete(key)) return;
    this.revision++;
    this.history.push({ revision: this.revision, event: { type: 'delete', key, modRevision: this.revision } });
    this.notify();
  }

  entry(key: string): KvEntry | undefined {
    return this.entries.get(key);
  }

  keys(): string[] {
    return [...this.entries.keys()].sort();
  }

  grantLease(ttlSeconds: number): string {
    const id = String(this.nextLease++);
    this.leases.set(id, this.now + ttlSeconds * 1000);
    return id;
  }

  /** Moves the clock; keys of expired leases are deleted, as etcd does. */
  advance(ms: number): void {
    this.now += ms;
    for (const [id, expiresAt] of [...this.leases]) {
      if (expiresAt > this.now) continue;
      this.leases.delete(id);
      for (const [key, e] of [...this.entries]) if (e.lease === id) this.delete(key);
    }
  }

  compact(revision: bigint = this.revision): void {
    this.compactedAt = revision;
    this.history = this.history.filter((h) => h.revision > revision);
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

  /** A fresh, empty etcd on the same address. */
  wipe(options: { newCluster?: boolean } = {}): void {
    this.entries = new Map();
    this.history = [];
    this.leases = new Map();
    this.revision = 1n;
    this.compactedAt = 0n;
    if (options.newCluster) this.clusterId = String(BigInt(this.clusterId) + 1n);
    this.notify();
  }

  historyFrom(revision: bigint): HistoryEvent[] {
    return this.history.filter((h) => h.revision >= revision);
  }

  private notify(): void {
    setImmediate(() => {
      for (const w of this.watches) w.catchUp();
    });
  }

  // ---------------------------------------------------------------- KvStore

  private check(op: string): void {
    if (this.isUp) return;
    this.requestErrors++;
    throw new EtcdUnavailableError(op, this.endpoints, new Error('connection refused'));
  }

  private write<T>(kind: WriteKind, key: string, apply: () => T): T {
    this.check(`${kind} ${key}`);
    const fate = this.hooks.beforeWrite?.(kind, key) ?? 'ok';
    this.writes.push({ kind, key, fate });
    if (fate === 'fail') {
      this.requestErrors++;
      throw new EtcdUnavailableError(`${kind} ${key}`, this.endpoints, new Error('deadline exceeded'));
    }
    const result = apply();
    if (fate === 'apply-then-fail') {
      this.requestErrors++;
      throw new EtcdUnavailableError(`${kind} ${key}`, this.endpoints, new Error('deadline exceeded (the reply was lost)'));
    }
    return result;
  }

  async get(key: string): Promise<{ entry: KvEntry | undefined; header: KvHeader }> {
    this.check(`get ${key}`);
    const e = this.entries.get(key);
    return { entry: e ? { ...e } : undefined, header: this.header() };
  }

  async list(prefix: string): Promise<{ entries: KvEntry[]; header: KvHeader }> {
    this.check(`list ${prefix}`);
    const entries = this.keys()
      .filter((k) => k.startsWith(prefix))
      .map((k) => ({ ...this.entries.get(k)! }));
    const header = this.header();
    this.hooks.afterList?.();
    return { entries, header };
  }

  private holds(key: string, c: KvCondition): boolean {
    const e = this.entries.get(key);
    switch (c.kind) {
      case 'absent':
        return e === undefined;
      case 'modRevision':
        return e !== undefined && e.modRevision === c.modRevision;
      case 'value':
        return e !== undefined && e.value === c.value;
    }
  }

  async putIf(key: string, condition: KvCondition, value: string, lease: string): Promise<{ succeeded: boolean; header: KvHeader }> {
    return this.write('put', key, () => {
      if (!this.holds(key, condition)) return { succeeded: false, header: this.header() };
      this.put(key, value, lease);
      return { succeeded: true, header: this.header() };
    });
  }

  async deleteIf(key: string, condition: KvCondition): Promise<{ succeeded: boolean; header: KvHeader }> {
    return this.write('delete', key, () => {
      if (!this.holds(key, condition)) return { succeeded: false, header: this.header() };
      this.delete(key);
      return { succeeded: true, header: this.header() };
    });
  }

  async grant(ttlSeconds: number): Promise<string> {
    return this.write('grant', '', () => this.grantLease(ttlSeconds));
  }

  async revoke(leaseId: string): Promise<void> {
    this.write('revoke', leaseId, () => {
      this.leases.delete(leaseId);
      for (const [key, e] of [...this.entries]) if (e.lease === leaseId) this.delete(key);
    });
  }

  async timeToLive(leaseId: string): Promise<number> {
    this.check(`ttl ${leaseId}`);
    const exp = this.leases.get(leaseId);
    return exp === undefined ? -1 : Math.ceil((exp - this.now) / 1000);
  }

  watch(options: KvWatchOptions, handlers: KvWatchHandlers): KvWatch {
    const w = new MemoryWatch(this, options, handlers);
    this.watches.add(w);
    return w;
  }

  close(): void {
    this.watches.clear();
  }
}
