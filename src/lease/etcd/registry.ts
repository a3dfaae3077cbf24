/**
 * The etcd store of a flannel network (upstream's
 * pkg/subnet/etcd/registry.go): `<prefix>/config` and
 * `<prefix>/subnets/<subnet key>` keys holding lease JSON, attached to etcd
 * leases with a 24 h TTL, or to none (a reservation, docs/compatibility.md
 * §3.4). Written once over a KvStore (./kv-store.ts): etcd in production, an
 * in-memory store in tests, the same logic in both.
 *
 * Writes are transactions: create only if the key does not exist; rewrite
 * only if the key is unchanged since it was read; renew only if it still
 * holds our value. A lost race is a LeaseTakenError (retryable), a renewal of
 * a key that changed a LeaseLostError.
 *
 * A write whose reply is lost (etcd unreachable or the deadline passed after
 * the commit) has an unknown outcome. The etcd lease granted for it is then
 * revoked only after reading the key back shows the write did not land:
 * revoking it blindly would delete our own key when it did (and the watch
 * would report the loss of the lease we still hold).
 */
import type { Logger } from '../../logging';
import { errorText } from '../../util/errors';
import type { Ipv4Net } from '../../util/ipv4';
import type { Ipv6Net } from '../../util/ipv6';
import type { Lease, LeaseAttrs } from '../lease';
import { EtcdUnavailableError, LeaseLostError, LeaseTakenError } from './errors';
import type { KvCondition, KvEntry, KvHeader, KvStore, KvWatch, KvWatchOptions, WatchState } from './kv-store';
import { decodeLeaseAttrs, encodeLeaseAttrs } from './lease-value';
import { joinKey, subnetKeyOfEtcdKey, subnetKeyPath, subnetsPrefix } from './subnet-key';

/** A lease as stored: the lease, its key, raw value, revisions and etcd lease. */
export interface StoredLease {
  key: string;
  lease: Lease;
  value: string;
  modRevision: bigint;
  /** When the key was created: the older of two overlapping leases wins. */
  createRevision: bigint;
  /** The etcd lease the key is attached to ("0": none, a reservation). */
  etcdLeaseId: string;
}

export interface SkippedKey {
  key: string;
  reason: string;
  /** The version skipped: the same key rewritten is reported (and logged) again. */
  modRevision?: bigint;
}

export type ParsedKv = { ok: true; stored: StoredLease } | { ok: false; skipped: SkippedKey };

/** Upstream's 24 h lease TTL (pkg/subnet/etcd/local_manager.go, subnetTTL). */
export const SUBNET_TTL_SECONDS = 86400;

/**
 * The largest lease value read (docs/reliability.md): upstream's lease JSON
 * is a few hundred bytes, and a backend's data adds little. A larger value
 * is skipped before it is parsed.
 */
export const MAX_LEASE_VALUE_BYTES = 64 * 1024;

/** A key-value under `<prefix>/subnets/` as a lease, or why it is skipped (a bad key never withdraws other leases). */
export function parseLeaseEntry(prefix: string, e: KvEntry): ParsedKv {
  const parsed = subnetKeyOfEtcdKey(prefix, e.key);
  if (!parsed.ok) return { ok: false, skipped: { key: e.key, reason: parsed.reason, modRevision: e.modRevision } };
  const size = e.valueBytes ?? Buffer.byteLength(e.value);
  if (size > MAX_LEASE_VALUE_BYTES) {
    const what = Number.isFinite(size) ? `${size} bytes` : `larger than flanneld receives`;
    return { ok: false, skipped: { key: e.key, reason: `its value is ${what}, above the ${MAX_LEASE_VALUE_BYTES}-byte limit of a lease record; not read`, modRevision: e.modRevision } };
  }
  let attrs: LeaseAttrs;
  try {
    attrs = decodeLeaseAttrs(e.value);
  } catch (err) {
    return { ok: false, skipped: { key: e.key, reason: `bad lease value: ${errorText(err)}`, modRevision: e.modRevision } };
  }
  return {
    ok: true,
    stored: {
      key: e.key,
      value: e.value,
      modRevision: e.modRevision,
      createRevision: e.createRevision,
      etcdLeaseId: e.lease,
      lease: { subnet: parsed.subnet, ipv6Subnet: parsed.ipv6Subnet, attrs, expiration: undefined },
    },
  };
}

/** A change seen by a watch: a put (parsed, or why it is skipped) or a delete of a key. */
export type RegistryEvent = { type: 'put'; kv: ParsedKv; modRevision: bigint } | { type: 'delete'; key: string; modRevision: bigint };

export interface RegistryWatchHandlers {
  /** The events of one response, in revision order. */
  onEvents(events: RegistryEvent[], header: KvHeader): void;
  /** The resume revision was compacted away: re-list, then call restartFrom(). */
  onCompacted(compactRevision: bigint): void;
  /** Another store answers (etcd was wiped): re-read, then call restartFrom(). */
  onReset(reason: string, header: KvHeader): void;
  onState?(state: WatchState, detail?: string): void;
}

export class SubnetRegistry {
  /** `<prefix>/subnets/`: what is listed and watched. */
  readonly subnetsPrefix: string;
  readonly configKey: string;

  constructor(
    readonly kv: KvStore,
    readonly prefix: string,
    private readonly log: Logger,
  ) {
    // With the slash: `<prefix>/subnets-old/...` is not ours to read.
    this.subnetsPrefix = `${subnetsPrefix(prefix)}/`;
    this.configKey = joinKey(prefix, 'config');
  }

  keyOf(subnet: Ipv4Net, ipv6Subnet?: Ipv6Net): string {
    return subnetKeyPath(this.prefix, subnet, ipv6Subnet);
  }

  /** The config value, or undefined when the key does not exist. */
  async getConfig(): Promise<string | undefined> {
    return (await this.kv.get(this.configKey)).entry?.value;
  }

  /** Every lease, in key order, with the header of the listing; bad entries are skipped. */
  async listLeases(): Promise<{ leases: StoredLease[]; header: KvHeader; skipped: SkippedKey[] }> {
    const res = await this.kv.list(this.subnetsPrefix);
    const leases: StoredLease[] = [];
    const skipped: SkippedKey[] = [];
    for (const e of res.entries) {
      const p = parseLeaseEntry(this.prefix, e);
      if (p.ok) leases.push(p.stored);
      else skipped.push(p.skipped);
    }
    return { leases, header: res.header, skipped };
  }

  /** One lease key, or undefined when it does not exist; with the header of the read. */
  async getLease(key: string): Promise<{ stored: StoredLease | undefined; header: KvHeader }> {
    const res = await this.kv.get(key);
    if (!res.entry) return { stored: undefined, header: res.header };
    const p = parseLeaseEntry(this.prefix, res.entry);
    if (!p.ok) throw new LeaseLostError(key, p.skipped.reason);
    return { stored: p.stored, header: res.header };
  }

  /** Remaining seconds of an etcd lease (-1 when it has expired or never existed). */
  async leaseTtlSeconds(leaseId: string): Promise<number> {
    if (leaseId === '0') return -1;
    return this.kv.timeToLive(leaseId);
  }

  private async revokeQuietly(leaseId: string): Promise<void> {
    if (leaseId === '0') return;
    try {
      await this.kv.revoke(leaseId);
    } catch (e) {
      // The lease then simply expires on its own; no key is attached to it.
      this.log.debug({ leaseId, err: errorText(e) }, 'could not revoke an unused etcd lease');
    }
  }

  /**
   * Puts `value` on `key` attached to `leaseId` if `condition` holds. When the
   * outcome is unknown, the key is read back: our value on our etcd lease means
   * the write landed. The new etcd lease is revoked only when it surely
   * carries no key of ours.
   */
  private async commit(key: string, condition: KvCondition, value: string, leaseId: string): Promise<{ succeeded: boolean; modRevision: bigint }> {
    let res;
    try {
      res = await this.kv.putIf(key, condition, value, leaseId);
    } catch (e) {
      if (!(e instanceof EtcdUnavailableError)) {
        await this.revokeQuietly(leaseId);
        throw e;
      }
      let now: KvEntry | undefined;
      try {
        now = (await this.kv.get(key)).entry;
      } catch {
        // Still unknown: keep the etcd lease (it expires on its own if unused).
        throw e;
      }
      if (now && now.value === value && now.lease === leaseId) {
        this.log.info({ key, leaseId }, `the write of ${key} landed although its reply was lost`);
        return { succeeded: true, modRevision: now.modRevision };
      }
      await this.revokeQuietly(leaseId);
      throw e;
    }
    if (!res.succeeded) await this.revokeQuietly(leaseId);
    return { succeeded: res.succeeded, modRevision: res.header.revision };
  }

  private stored(key: string, value: string, lease: Omit<Lease, 'expiration'>, leaseId: string, ttl: number | undefined, modRevision: bigint, createRevision: bigint): StoredLease {
    return {
      key,
      value,
      modRevision,
      createRevision,
      etcdLeaseId: leaseId,
      lease: { ...lease, expiration: ttl === undefined ? undefined : new Date(Date.now() + ttl * 1000) },
    };
  }

  /** Creates a lease key that must not exist yet (upstream's createSubnet); LeaseTakenError when it does. */
  async createLease(subnet: Ipv4Net, ipv6Subnet: Ipv6Net | undefined, attrs: LeaseAttrs, ttlSeconds: number): Promise<StoredLease> {
    const key = this.keyOf(subnet, ipv6Subnet);
    const value = encodeLeaseAttrs(attrs);
    const leaseId = await this.kv.grant(ttlSeconds);
    const r = await this.commit(key, { kind: 'absent' }, value, leaseId);
    if (!r.succeeded) throw new LeaseTakenError(key);
    return this.stored(key, value, { subnet, ipv6Subnet, attrs }, leaseId, ttlSeconds, r.modRevision, r.modRevision);
  }

  /**
   * Writes `attrs` over an existing lease we read (reuse by PublicIP), only
   * if it is unchanged since. A reservation (no etcd lease) stays one
   * (upstream gives it a 24 h TTL); anything else gets a fresh 24 h lease.
   */
  async rewriteLease(existing: StoredLease, attrs: LeaseAttrs, ttlSeconds: number): Promise<StoredLease> {
    return this.putWithLease(existing, attrs, ttlSeconds, { kind: 'modRevision', modRevision: existing.modRevision }, () => new LeaseTakenError(existing.key));
  }

  /**
   * Renews our lease (upstream's updateSubnet): a fresh 24 h etcd lease for
   * the key, so its remaining TTL is ~24 h again, only if the key still holds
   * our value; the previous etcd lease is revoked (upstream leaks one per
   * renewal).
   */
  async renewLease(current: StoredLease, ttlSeconds: number): Promise<StoredLease> {
    return this.putWithLease(current, current.lease.attrs, ttlSeconds, { kind: 'value', value: current.value }, () => new LeaseLostError(current.key, "the key no longer holds this node's lease"));
  }

  private async putWithLease(existing: StoredLease, attrs: LeaseAttrs, ttlSeconds: number, condition: KvCondition, onConflict: () => Error): Promise<StoredLease> {
    const key = existing.key;
    const value = encodeLeaseAttrs(attrs);
    const reservation = existing.etcdLeaseId === '0';
    const leaseId = reservation ? '0' : await this.kv.grant(ttlSeconds);
    const r = await this.commit(key, condition, value, leaseId);
    if (!r.succeeded) throw onConflict();
    if (!reservation && existing.etcdLeaseId !== leaseId) await this.revokeQuietly(existing.etcdLeaseId);
    const { subnet, ipv6Subnet } = existing.lease;
    return this.stored(key, value, { subnet, ipv6Subnet, attrs }, leaseId, reservation ? undefined : ttlSeconds, r.modRevision, existing.createRevision);
  }

  /** Deletes a lease we read, only if it is unchanged since (reuse found an incompatible lease). */
  async deleteLease(existing: StoredLease): Promise<boolean> {
    return (await this.kv.deleteIf(existing.key, { kind: 'modRevision', modRevision: existing.modRevision })).succeeded;
  }

  /** A watch of one lease key or of every lease; its events parsed (bad keys are skipped events). */
  watch(options: KvWatchOptions, handlers: RegistryWatchHandlers): KvWatch {
    return this.kv.watch(options, {
      onEvents: (events, header) =>
        handlers.onEvents(
          events.map((ev) => (ev.type === 'put' ? { type: 'put', kv: parseLeaseEntry(this.prefix, ev.entry), modRevision: ev.entry.modRevision } : ev)),
          header,
        ),
      onCompacted: (rev) => handlers.onCompacted(rev),
      onReset: (reason, header) => handlers.onReset(reason, header),
      ...(handlers.onState ? { onState: handlers.onState } : {}),
    });
  }

  close(): void {
    this.kv.close();
  }
}
