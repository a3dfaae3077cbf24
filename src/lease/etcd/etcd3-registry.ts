/**
 * The etcd v3 store of a flannel network (upstream's
 * pkg/subnet/etcd/registry.go): `<prefix>/config` and
 * `<prefix>/subnets/<subnet-key>` keys holding lease JSON, attached to etcd
 * leases with a 24 h TTL (or to none: a reservation, docs/compatibility.md
 * "Reservations").
 *
 * Writes are transactions: create only if the key does not exist, rewrite
 * only if the key is still what we read, renew only if it still holds our
 * value (./registry.ts states the contract).
 */
import type { Etcd3, IKeyValue } from 'etcd3';
import type { Logger } from '../../log';
import { errorText } from '../../util/errors';
import type { Ipv4Net } from '../../util/ipv4';
import type { Ipv6Net } from '../../util/ipv6';
import type { Lease, LeaseAttrs } from '../lease';
import { classifyEtcdError, LeaseLostError, LeaseTakenError } from './errors';
import { encodeLeaseAttrs } from './lease-value';
import {
  type ParsedKv,
  parseLeaseKv,
  type RegistryEvent,
  type RegistryWatch,
  type RegistryWatchHandlers,
  type RegistryWatchOptions,
  type SkippedKey,
  type StoredLease,
  type SubnetRegistry,
} from './registry';
import { joinKey, subnetKeyPath, subnetsPrefix } from './subnet-key';
import { EtcdWatchStream, prefixRangeEnd } from './watch-stream';

export class Etcd3Registry implements SubnetRegistry {
  readonly subnetsPrefix: string;

  constructor(
    readonly client: Etcd3,
    readonly prefix: string,
    private readonly endpoints: readonly string[],
    private readonly log: Logger,
  ) {
    this.subnetsPrefix = subnetsPrefix(prefix);
  }

  get configKey(): string {
    return joinKey(this.prefix, 'config');
  }

  keyOf(subnet: Ipv4Net, ipv6Subnet?: Ipv6Net): string {
    return subnetKeyPath(this.prefix, subnet, ipv6Subnet);
  }

  private async call<T>(op: string, f: () => Promise<T>): Promise<T> {
    try {
      return await f();
    } catch (e) {
      throw classifyEtcdError(e, op, this.endpoints);
    }
  }

  /** The config value, or undefined when the key does not exist. */
  async getConfig(): Promise<string | undefined> {
    const v = await this.call(`get ${this.configKey}`, () => this.client.get(this.configKey).string());
    return v ?? undefined;
  }

  /** A key-value under the subnets prefix as a lease, or why it is skipped. */
  private parseKv(kv: IKeyValue): ParsedKv {
    return parseLeaseKv(this.prefix, kv.key.toString(), kv.value.toString(), BigInt(kv.mod_revision), kv.lease || '0');
  }

  /** Every lease, in key order, with the store revision of the listing; bad entries are skipped. */
  async listLeases(): Promise<{ leases: StoredLease[]; revision: bigint; skipped: SkippedKey[] }> {
    const res = await this.call(`list ${this.subnetsPrefix}`, () => this.client.getAll().prefix(this.subnetsPrefix).exec());
    const leases: StoredLease[] = [];
    const skipped: SkippedKey[] = [];
    for (const kv of res.kvs) {
      const p = this.parseKv(kv);
      if (p.ok) leases.push(p.stored);
      else skipped.push(p.skipped);
    }
    return { leases, revision: BigInt(res.header.revision), skipped };
  }

  /** One lease key, or undefined when it does not exist; with the revision of the read. */
  async getLease(key: string): Promise<{ stored: StoredLease | undefined; revision: bigint }> {
    const res = await this.call(`get ${key}`, () => this.client.get(key).exec());
    const kv = res.kvs[0];
    if (!kv) return { stored: undefined, revision: BigInt(res.header.revision) };
    const p = this.parseKv(kv);
    if (!p.ok) throw new LeaseLostError(key, p.skipped.reason);
    return { stored: p.stored, revision: BigInt(res.header.revision) };
  }

  /** Remaining seconds of an etcd lease (-1 when it has expired or never existed). */
  async leaseTtlSeconds(leaseId: string): Promise<number> {
    if (leaseId === '0') return -1;
    const res = await this.call(`time-to-live of lease ${leaseId}`, () =>
      this.client.leaseClient.leaseTimeToLive({ ID: leaseId }),
    );
    return Number(res.TTL);
  }

  private async grant(ttlSeconds: number): Promise<string> {
    const res = await this.call(`grant a ${ttlSeconds} s lease`, () => this.client.leaseClient.leaseGrant({ TTL: ttlSeconds }));
    return res.ID;
  }

  private async revokeQuietly(leaseId: string): Promise<void> {
    if (leaseId === '0') return;
    try {
      await this.client.leaseClient.leaseRevoke({ ID: leaseId });
    } catch (e) {
      // The lease then simply expires on its own; nothing depends on it.
      this.log.debug({ leaseId, err: errorText(e) }, 'could not revoke an unused etcd lease');
    }
  }

  private stored(key: string, value: string, lease: Omit<Lease, 'expiration'>, leaseId: string, ttl: number | undefined, revision: bigint): StoredLease {
    return {
      key,
      value,
      modRevision: revision,
      etcdLeaseId: leaseId,
      lease: { ...lease, expiration: ttl === undefined ? undefined : new Date(Date.now() + ttl * 1000) },
    };
  }

  /** Creates a lease key that must not exist yet (upstream's createSubnet); LeaseTakenError when it does. */
  async createLease(subnet: Ipv4Net, ipv6Subnet: Ipv6Net | undefined, attrs: LeaseAttrs, ttlSeconds: number): Promise<StoredLease> {
    const key = this.keyOf(subnet, ipv6Subnet);
    const value = encodeLeaseAttrs(attrs);
    const leaseId = await this.grant(ttlSeconds);
    let res;
    try {
      res = await this.call(`create ${key}`, () =>
        this.client.if(key, 'Version', '==', 0).then(this.client.put(key).value(value).lease(leaseId)).commit(),
      );
    } catch (e) {
      await this.revokeQuietly(leaseId);
      throw e;
    }
    if (!res.succeeded) {
      await this.revokeQuietly(leaseId);
      throw new LeaseTakenError(key);
    }
    return this.stored(key, value, { subnet, ipv6Subnet, attrs }, leaseId, ttlSeconds, BigInt(res.header.revision));
  }

  /**
   * Writes `attrs` over an existing lease we read (reuse by PublicIP), only
   * if it is unchanged since. A reservation (no etcd lease) stays one
   * (upstream gives it a 24 h TTL); anything else gets a fresh 24 h lease.
   */
  async rewriteLease(existing: StoredLease, attrs: LeaseAttrs, ttlSeconds: number): Promise<StoredLease> {
    return this.putWithLease(existing, attrs, ttlSeconds, 'Mod', existing.modRevision.toString(), () => new LeaseTakenError(existing.key));
  }

  /**
   * Renews our lease (upstream's updateSubnet): a fresh 24 h etcd lease for the key, so
   * its remaining TTL is ~24 h again, only if the key still holds our value;
   * the previous etcd lease is revoked (upstream leaked one per renewal).
   */
  async renewLease(current: StoredLease, ttlSeconds: number): Promise<StoredLease> {
    return this.putWithLease(current, current.lease.attrs, ttlSeconds, 'Value', current.value, () =>
      new LeaseLostError(current.key, 'the key no longer holds this node\'s lease'),
    );
  }

  private async putWithLease(
    existing: StoredLease,
    attrs: LeaseAttrs,
    ttlSeconds: number,
    compare: 'Mod' | 'Value',
    expected: string,
    onConflict: () => Error,
  ): Promise<StoredLease> {
    const key = existing.key;
    const value = encodeLeaseAttrs(attrs);
    const reservation = existing.etcdLeaseId === '0';
    const leaseId = reservation ? '0' : await this.grant(ttlSeconds);
    const put = this.client.put(key).value(value);
    if (!reservation) put.lease(leaseId);
    let res;
    try {
      res = await this.call(`write ${key}`, () =>
        (compare === 'Mod' ? this.client.if(key, 'Mod', '==', expected) : this.client.if(key, 'Value', '==', expected)).then(put).commit(),
      );
    } catch (e) {
      await this.revokeQuietly(leaseId);
      throw e;
    }
    if (!res.succeeded) {
      await this.revokeQuietly(leaseId);
      throw onConflict();
    }
    if (!reservation && existing.etcdLeaseId !== leaseId) await this.revokeQuietly(existing.etcdLeaseId);
    const { subnet, ipv6Subnet } = existing.lease;
    return this.stored(key, value, { subnet, ipv6Subnet, attrs }, leaseId, reservation ? undefined : ttlSeconds, BigInt(res.header.revision));
  }

  /** Deletes a lease we read, only if it is unchanged since (reuse found an incompatible lease). */
  async deleteLease(existing: StoredLease): Promise<boolean> {
    const res = await this.call(`delete ${existing.key}`, () =>
      this.client.if(existing.key, 'Mod', '==', existing.modRevision.toString()).then(this.client.delete().key(existing.key)).commit(),
    );
    return res.succeeded;
  }

  watch(options: RegistryWatchOptions, handlers: RegistryWatchHandlers): RegistryWatch {
    const key = Buffer.from(options.key);
    return new EtcdWatchStream(
      this.client,
      {
        key,
        ...(options.prefix ? { rangeEnd: prefixRangeEnd(key) } : {}),
        startRevision: options.startRevision,
        ...(options.progressIntervalMs ? { progressIntervalMs: options.progressIntervalMs } : {}),
      },
      {
        onEvents: (events, revision) => {
          const out: RegistryEvent[] = [];
          for (const ev of events) {
            const modRevision = BigInt(ev.kv.mod_revision);
            if (ev.type === 'Put') out.push({ type: 'put', kv: this.parseKv(ev.kv), modRevision });
            else if (ev.type === 'Delete') out.push({ type: 'delete', key: ev.kv.key.toString(), modRevision });
          }
          handlers.onEvents(out, revision);
        },
        onCompacted: (rev) => handlers.onCompacted(rev),
        ...(handlers.onState ? { onState: handlers.onState } : {}),
      },
      this.log.child({ watch: options.key }),
    );
  }

  close(): void {
    this.client.close();
  }
}
