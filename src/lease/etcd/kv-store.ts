/**
 * The few etcd v3 operations the subnet registry is built on: reads, one
 * conditional put or delete per transaction, etcd leases, and watches. The
 * registry's logic (./registry.ts) is written once on top of this; etcd
 * provides it in production (./etcd3-kv.ts) and an in-memory store in tests
 * (test/helpers/memory-kv.ts), so the same logic runs in both.
 *
 * Errors: EtcdUnavailableError when the store could not be reached or did not
 * answer in time; the outcome of a write is then unknown (it may have been
 * applied). EtcdRequestError when the store refused the request.
 */

export interface KvEntry {
  key: string;
  /** The value as text (empty for a value too large to receive: valueBytes Infinity). */
  value: string;
  /** The value's size in bytes, when the store says it (Infinity: too large to receive at all). */
  valueBytes?: number;
  createRevision: bigint;
  modRevision: bigint;
  /** The etcd lease the key is attached to; "0" for none. */
  lease: string;
}

/** What every response says about the store: its revision and identity. */
export interface KvHeader {
  revision: bigint;
  /** etcd's cluster id: a wiped etcd (a new cluster on the same address) has another. */
  clusterId: string;
}

export type KvCondition = { kind: 'absent' } | { kind: 'modRevision'; modRevision: bigint } | { kind: 'value'; value: string };

export type KvEvent = { type: 'put'; entry: KvEntry } | { type: 'delete'; key: string; modRevision: bigint };

export type WatchState = 'connecting' | 'connected' | 'disconnected' | 'compacted' | 'reset' | 'stopped';

export interface KvWatchHandlers {
  /** The events of one response, in revision order. */
  onEvents(events: KvEvent[], header: KvHeader): void;
  /** The resume revision was compacted away: re-list, then call restartFrom(). */
  onCompacted(compactRevision: bigint): void;
  /**
   * The store answering is not the one the watch started on (its cluster id
   * changed, or its revision went back: etcd was wiped). Re-read, then call
   * restartFrom() with the new store's revision + 1.
   */
  onReset(reason: string, header: KvHeader): void;
  onState?(state: WatchState, detail?: string): void;
}

export interface KvWatchOptions {
  key: string;
  /** Watch every key starting with `key`. */
  prefix: boolean;
  startRevision: bigint;
  /** The store the caller read from (so a reset between the read and the watch is seen). */
  clusterId?: string;
  /** How often to ask for a progress notification while connected (default 30 s). */
  progressIntervalMs?: number;
}

/** A watch that resumes by itself after breaks, from the revision after the last one it delivered. */
export interface KvWatch {
  start(): void;
  /** After onCompacted or onReset: continue from `revision`. */
  restartFrom(revision: bigint, clusterId?: string): void;
  stop(): Promise<void>;
  /** Streams opened after a break (not counting the first). */
  readonly reconnects: number;
}

export interface KvStore {
  /** For messages: where the store is. */
  readonly endpoints: readonly string[];
  /** Requests that failed so far (metrics). */
  readonly requestErrors: number;
  get(key: string): Promise<{ entry: KvEntry | undefined; header: KvHeader }>;
  /** Every key starting with `prefix`, in key order. */
  list(prefix: string): Promise<{ entries: KvEntry[]; header: KvHeader }>;
  /** Puts `value` (attached to `lease`, "0" for none) if `condition` holds. */
  putIf(key: string, condition: KvCondition, value: string, lease: string): Promise<{ succeeded: boolean; header: KvHeader }>;
  deleteIf(key: string, condition: KvCondition): Promise<{ succeeded: boolean; header: KvHeader }>;
  /** Grants an etcd lease; returns its id. */
  grant(ttlSeconds: number): Promise<string>;
  revoke(leaseId: string): Promise<void>;
  /** Remaining seconds of an etcd lease; -1 when it has expired or never existed. */
  timeToLive(leaseId: string): Promise<number>;
  watch(options: KvWatchOptions, handlers: KvWatchHandlers): KvWatch;
  close(): void;
}
