/**
 * What the etcd subnet manager needs from the store (upstream's
 * pkg/subnet/etcd/registry.go, Registry): the network config, the lease keys
 * with their values and etcd leases, transactional writes, and watches. The
 * real registry speaks etcd v3 (./etcd3-registry.ts); tests also run the
 * manager against an in-memory registry (test/helpers/memory-registry.ts, as
 * upstream's mock_registry.go).
 *
 * Contract of the writes: create only if the key does not exist; rewrite
 * only if the key is unchanged since it was read; renew only if it still
 * holds our value. A lost race is a LeaseTakenError (retryable), a renewal of
 * a key that changed a LeaseLostError; a store that cannot be reached is an
 * EtcdUnavailableError.
 */
import type { Ipv4Net } from '../../util/ipv4';
import type { Ipv6Net } from '../../util/ipv6';
import type { Lease, LeaseAttrs } from '../lease';
import { errorText } from '../../util/errors';
import { decodeLeaseAttrs } from './lease-value';
import { subnetKeyOfEtcdKey } from './subnet-key';

/** A lease as stored: the lease, its key, raw value, revision and etcd lease. */
export interface StoredLease {
  key: string;
  lease: Lease;
  value: string;
  modRevision: bigint;
  /** The etcd lease the key is attached to ("0": none, a reservation). */
  etcdLeaseId: string;
}

export interface SkippedKey {
  key: string;
  reason: string;
}

export type ParsedKv = { ok: true; stored: StoredLease } | { ok: false; skipped: SkippedKey };

/** Upstream's 24 h lease TTL (pkg/subnet/etcd/local_manager.go, subnetTTL). */
export const SUBNET_TTL_SECONDS = 86400;

/** A key-value under `<prefix>/subnets` as a lease, or why it is skipped (a bad key never withdraws other leases). */
export function parseLeaseKv(prefix: string, key: string, value: string, modRevision: bigint, etcdLeaseId: string): ParsedKv {
  const parsed = subnetKeyOfEtcdKey(prefix, key);
  if (!parsed) return { ok: false, skipped: { key, reason: 'not a subnet key' } };
  let attrs: LeaseAttrs;
  try {
    attrs = decodeLeaseAttrs(value);
  } catch (e) {
    return { ok: false, skipped: { key, reason: `bad lease value: ${errorText(e)}` } };
  }
  return {
    ok: true,
    stored: { key, value, modRevision, etcdLeaseId, lease: { subnet: parsed.subnet, ipv6Subnet: parsed.ipv6Subnet, attrs, expiration: undefined } },
  };
}

/** A change seen by a watch: a put (parsed, or why it is skipped) or a delete of a key. */
export type RegistryEvent = { type: 'put'; kv: ParsedKv; modRevision: bigint } | { type: 'delete'; key: string; modRevision: bigint };

export type WatchState = 'connecting' | 'connected' | 'disconnected' | 'compacted' | 'stopped';

export interface RegistryWatchHandlers {
  /** The events of one response, in revision order; `revision` is the store's revision at that response. */
  onEvents(events: RegistryEvent[], revision: bigint): void;
  /** The resume revision was compacted away: re-list, then call restartFrom(). */
  onCompacted(compactRevision: bigint): void;
  onState?(state: WatchState, detail?: string): void;
}

export interface RegistryWatchOptions {
  key: string;
  /** Watch every key starting with `key`. */
  prefix: boolean;
  startRevision: bigint;
  /** How often to ask for a progress notification while connected (default 30 s). */
  progressIntervalMs?: number;
}

/** A watch that resumes by itself after breaks, from the revision after the last one it delivered. */
export interface RegistryWatch {
  start(): void;
  /** After onCompacted: continue from `revision` (the re-list's revision + 1). */
  restartFrom(revision: bigint): void;
  stop(): Promise<void>;
  /** Streams opened after a break (not counting the first). */
  readonly reconnects: number;
  readonly nextRevision: bigint;
}

export interface SubnetRegistry {
  /** -etcd-prefix. */
  readonly prefix: string;
  /** `<prefix>/subnets`. */
  readonly subnetsPrefix: string;
  /** `<prefix>/config`. */
  readonly configKey: string;
  keyOf(subnet: Ipv4Net, ipv6Subnet?: Ipv6Net): string;
  /** The config value, or undefined when the key does not exist. */
  getConfig(): Promise<string | undefined>;
  /** Every lease, in key order, with the store revision of the listing; bad entries are skipped. */
  listLeases(): Promise<{ leases: StoredLease[]; revision: bigint; skipped: SkippedKey[] }>;
  /** One lease key, or undefined when it does not exist; with the revision of the read. */
  getLease(key: string): Promise<{ stored: StoredLease | undefined; revision: bigint }>;
  /** Remaining seconds of an etcd lease (-1 when it has expired or never existed). */
  leaseTtlSeconds(leaseId: string): Promise<number>;
  /** Creates a lease key that must not exist yet; LeaseTakenError when it does. */
  createLease(subnet: Ipv4Net, ipv6Subnet: Ipv6Net | undefined, attrs: LeaseAttrs, ttlSeconds: number): Promise<StoredLease>;
  /** Writes `attrs` over a lease we read, only if unchanged since; a reservation stays one. */
  rewriteLease(existing: StoredLease, attrs: LeaseAttrs, ttlSeconds: number): Promise<StoredLease>;
  /** Attaches our key to a fresh etcd lease, only if it still holds our value; LeaseLostError otherwise. */
  renewLease(current: StoredLease, ttlSeconds: number): Promise<StoredLease>;
  /** Deletes a lease we read, only if unchanged since; false when it changed. */
  deleteLease(existing: StoredLease): Promise<boolean>;
  watch(options: RegistryWatchOptions, handlers: RegistryWatchHandlers): RegistryWatch;
  close(): void;
}
