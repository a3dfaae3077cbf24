/**
 * Keeping the own lease (upstream's pkg/subnet/etcd/local_manager.go,
 * RenewLease and WatchLease): renew it `margin` before it expires, and watch
 * its key so that a deletion (by hand, or the etcd lease expiring) or a
 * takeover by another node is reported as lease loss.
 *
 * States: held -> (renewing -> held)* -> lost | stopped. A reservation (a
 * key without an etcd lease) is held without renewal (upstream turns it into
 * a 24 h lease). Upstream's silent failure mode (the monitor failing to start
 * disabled renewal) is replaced by retrying with backoff and saying so.
 *
 * A renewal that fails because etcd cannot be reached is retried on the etcd
 * retry schedule (./backoff-policy.ts), so it happens as soon as etcd is back;
 * any other failure waits upstream's minute. A renewal whose reply was lost is
 * read back before anything is revoked (./registry.ts).
 *
 * A wiped etcd (another store answers on the same address) has no key of
 * ours: the keeper re-creates it with the same subnet and a fresh etcd lease.
 * If another node took the subnet first, the lease is lost (exit, as upstream
 * does when its lease disappears).
 *
 * When the lease's expiry passes without a renewal (etcd unreachable all
 * that time), that is logged and reported (`problem`, which fails /readyz),
 * but routing goes on: the data path is still right for the peers it knows.
 * Once etcd answers, a key that is gone is a lease loss as any other; a key
 * still there (etcd was down too, so its TTL did not run) is renewed.
 */
import type { Logger } from '../../logging';
import { sleep } from '../../util/backoff';
import { errorText } from '../../util/errors';
import { formatIpv4 } from '../../util/ipv4';
import { quoteForLog } from '../../util/text';
import { RepeatLog } from '../../util/repeat-log';
import { type LeaseAttrs, sameAttrs } from '../lease';
import type { HeldLease, LeaseLoss } from '../subnet-manager';
import { etcdRetryBackoff } from './backoff-policy';
import { EtcdUnavailableError, LeaseLostError, LeaseTakenError } from './errors';
import type { KvWatch } from './kv-store';
import type { RegistryEvent, StoredLease, SubnetRegistry } from './registry';

export interface KeeperTiming {
  /** TTL of the etcd lease written on renewal (upstream: 86400 s). */
  ttlSeconds: number;
  /** Renew this long before expiry (-subnet-lease-renew-margin). */
  renewMarginMs: number;
  /** Wait after a failed renewal (upstream: 1 min). */
  renewRetryMs: number;
  /** The own-key watch's progress interval (tests shorten it). */
  watchProgressMs?: number;
}

export class OwnLeaseKeeper implements HeldLease {
  private current: StoredLease;
  private timer: NodeJS.Timeout | undefined;
  private expiryTimer: NodeJS.Timeout | undefined;
  /** Set when the expiry passed without a renewal. */
  private expiredAt: Date | undefined;
  private watch: KvWatch | undefined;
  private readonly renewBackoff = etcdRetryBackoff();
  private stopped = false;
  private resolveLost!: (l: LeaseLoss) => void;
  readonly lost: Promise<LeaseLoss>;
  private monitorLoop: Promise<void> | undefined;
  private readonly repeat: RepeatLog;

  constructor(
    private readonly registry: SubnetRegistry,
    stored: StoredLease,
    private readonly timing: KeeperTiming,
    private readonly log: Logger,
  ) {
    this.current = stored;
    this.repeat = new RepeatLog(log);
    this.lost = new Promise((resolve) => {
      this.resolveLost = resolve;
    });
  }

  get lease(): StoredLease['lease'] {
    return this.current.lease;
  }

  get expiresAt(): Date | undefined {
    return this.current.lease.expiration;
  }

  /** Why the lease is in doubt (its expiry passed without a renewal), or undefined. */
  get problem(): string | undefined {
    return this.expiredAt
      ? `the lease expired at ${this.expiredAt.toISOString()} without a renewal (etcd unreachable); routing continues until etcd answers`
      : undefined;
  }

  start(): void {
    this.arm();
    this.monitorLoop = this.monitor();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    await this.watch?.stop();
    await this.monitorLoop;
  }

  private lose(reason: string): void {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    this.log.error({ key: this.current.key, reason }, `Lease has been revoked. Shutting down daemon. (${reason})`);
    this.resolveLost({ key: this.current.key, reason });
    void this.watch?.stop();
  }

  // ------------------------------------------------------------- renewal

  private arm(delayMs?: number): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    const exp = this.current.lease.expiration;
    if (this.current.etcdLeaseId === '0' || exp === undefined) {
      this.log.info({ key: this.current.key }, 'the lease is a reservation (no TTL): nothing to renew');
      return;
    }
    const delay = delayMs ?? Math.max(0, exp.getTime() - Date.now() - this.timing.renewMarginMs);
    this.log.info({ key: this.current.key, renewInMs: delay, expiration: exp.toISOString() }, `Waiting for ${Math.round(delay / 1000)} s to renew lease`);
    this.timer = setTimeout(() => void this.renew(), delay);
    this.armExpiry(exp);
  }

  /** Notes (once) when `exp` passes while the lease still ends then. */
  private armExpiry(exp: Date): void {
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    if (this.expiredAt) return;
    this.expiryTimer = setTimeout(() => {
      if (this.stopped || this.current.lease.expiration?.getTime() !== exp.getTime()) return;
      this.expiredAt = exp;
      this.log.error(
        { key: this.current.key, expiration: exp.toISOString() },
        `the lease ${this.current.key} expired at ${exp.toISOString()} and could not be renewed: etcd has been unreachable. ` +
          'Routing continues for the peers known; /readyz fails until etcd answers. If the key is gone then, flanneld exits as on a lost lease.',
      );
    }, Math.max(0, exp.getTime() - Date.now()));
    this.expiryTimer.unref();
  }

  private async renew(): Promise<void> {
    if (this.stopped) return;
    try {
      this.current = await this.registry.renewLease(this.current, this.timing.ttlSeconds);
      this.repeat.reset();
      this.renewBackoff.reset();
      if (this.expiredAt) {
        this.log.warn({ key: this.current.key }, `the lease ${this.current.key} was renewed after it had expired locally: etcd still held it`);
        this.expiredAt = undefined;
      }
      this.log.info({ key: this.current.key, expiration: this.current.lease.expiration?.toISOString() }, `Lease renewed, new expiration: ${this.current.lease.expiration?.toISOString()}`);
      this.arm();
    } catch (e) {
      if (e instanceof LeaseLostError) return this.lose(e.reason);
      const retryMs = e instanceof EtcdUnavailableError ? Math.min(this.renewBackoff.next(), this.timing.renewRetryMs) : this.timing.renewRetryMs;
      this.repeat.warn({ key: this.current.key, err: errorText(e) }, `Error renewing lease (trying again in ${(retryMs / 1000).toFixed(1)} s)`);
      this.arm(retryMs);
    }
  }

  // ------------------------------------------------------------- monitor

  /** Reads the key, then watches it; retried until it runs (never silently given up). */
  private async monitor(): Promise<void> {
    const backoff = etcdRetryBackoff();
    while (!this.stopped) {
      let header;
      try {
        const r = await this.registry.getLease(this.current.key);
        if (!r.stored) return this.lose('the lease key was deleted');
        if (!this.checkOwner(r.stored)) return;
        header = r.header;
      } catch (e) {
        if (e instanceof LeaseLostError) return this.lose(e.reason);
        this.repeat.warn({ key: this.current.key, err: errorText(e) }, 'cannot start monitoring the own lease; retrying');
        await sleep(backoff.next()).catch(() => undefined);
        continue;
      }
      this.repeat.reset();
      this.watch = this.registry.watch(
        {
          key: this.current.key,
          prefix: false,
          startRevision: header.revision + 1n,
          clusterId: header.clusterId,
          ...(this.timing.watchProgressMs ? { progressIntervalMs: this.timing.watchProgressMs } : {}),
        },
        {
          onEvents: (events) => this.onEvents(events),
          onCompacted: () => void this.reread('compaction'),
          onReset: (reason) => void this.reread(`wipe: ${reason}`),
        },
      );
      this.watch.start();
      return;
    }
  }

  /**
   * False (and the lease lost) when the key now belongs to another node: its
   * PublicIP is another's, or (written under another etcd lease or none) its
   * attributes are not ours. A foreign write with our PublicIP and other
   * attributes would otherwise be adopted and then renewed with them.
   */
  private checkOwner(stored: StoredLease): boolean {
    const mine = this.current.lease.attrs.publicIp;
    if (stored.lease.attrs.publicIp !== mine) {
      this.lose(`the key now holds PublicIP ${formatIpv4(stored.lease.attrs.publicIp)}, not this node's ${formatIpv4(mine)}`);
      return false;
    }
    if (stored.etcdLeaseId !== this.current.etcdLeaseId && !sameAttrs(stored.lease.attrs, this.current.lease.attrs)) {
      this.lose(`the key was rewritten by someone else with other attributes (${describeAttrs(stored.lease.attrs)}); taken over`);
      return false;
    }
    return true;
  }

  private onEvents(events: readonly RegistryEvent[]): void {
    for (const ev of events) {
      if (this.stopped) return;
      if (ev.type === 'delete') return this.lose('the lease key was deleted (by hand, or its etcd lease expired)');
      if (!ev.kv.ok) return this.lose(ev.kv.skipped.reason);
      if (!this.checkOwner(ev.kv.stored)) return;
      const ours = ev.kv.stored.etcdLeaseId === this.current.etcdLeaseId;
      if (!ours) void this.adopt(ev.kv.stored);
    }
  }

  /** Someone rewrote our key (same owner) with another etcd lease: follow its TTL (upstream resets the timer the same way). */
  private async adopt(stored: StoredLease): Promise<void> {
    try {
      const ttl = await this.registry.leaseTtlSeconds(stored.etcdLeaseId);
      const expiration = stored.etcdLeaseId === '0' ? undefined : new Date(Date.now() + Math.max(0, ttl) * 1000);
      this.current = { ...stored, lease: { ...stored.lease, expiration } };
      this.arm();
    } catch (e) {
      this.log.warn({ key: stored.key, err: errorText(e) }, 'could not read the TTL of the rewritten own lease; keeping the current renewal schedule');
    }
  }

  /**
   * After a compaction (or a wiped etcd) the watch cannot resume: re-read the
   * key, re-create it after a wipe if it is gone, and watch again from there.
   */
  private async reread(why: 'compaction' | `wipe: ${string}`): Promise<void> {
    const backoff = etcdRetryBackoff();
    const wiped = why.startsWith('wipe');
    if (wiped) this.log.warn({ key: this.current.key, reason: why }, `etcd was replaced or wiped (${why.slice(6)}); checking the own lease ${this.current.key}`);
    while (!this.stopped) {
      try {
        const r = await this.registry.getLease(this.current.key);
        if (!r.stored && !wiped) return this.lose('the lease key was deleted while the watch was behind a compaction');
        if (!r.stored) {
          const { subnet, ipv6Subnet, attrs } = this.current.lease;
          try {
            this.current = await this.registry.createLease(subnet, ipv6Subnet, attrs, this.timing.ttlSeconds);
          } catch (e) {
            if (e instanceof LeaseTakenError) continue; // someone wrote it meanwhile: read it again
            throw e;
          }
          this.log.warn({ key: this.current.key }, `re-created the own lease ${this.current.key} in the new etcd (same subnet)`);
          this.arm();
          this.watch?.restartFrom(this.current.modRevision + 1n, r.header.clusterId);
          return;
        }
        if (!this.checkOwner(r.stored)) return;
        if (r.stored.etcdLeaseId !== this.current.etcdLeaseId) await this.adopt(r.stored);
        this.watch?.restartFrom(r.header.revision + 1n, r.header.clusterId);
        return;
      } catch (e) {
        if (e instanceof LeaseLostError) return this.lose(e.reason);
        this.repeat.warn({ err: errorText(e) }, `cannot re-read the own lease after a ${wiped ? 'wipe' : 'compaction'}; retrying`);
        await sleep(backoff.next()).catch(() => undefined);
      }
    }
  }
}

function describeAttrs(a: LeaseAttrs): string {
  return `PublicIP ${formatIpv4(a.publicIp)}${a.backendType ? `, ${a.backendType}` : ''}${a.backendData ? `, BackendData ${quoteForLog(a.backendData, 120)}` : ''}`;
}
