/**
 * Watching the other nodes' leases in etcd (upstream's
 * pkg/subnet/etcd/registry.go, watchSubnets and resyncWatch): a listing as
 * the first batch, then a watch of `<prefix>/subnets` from the listing's
 * revision + 1. After a compaction it re-lists and diffs (re-emitting
 * leases whose attributes changed), and it re-lists every
 * `resyncIntervalMs` as anti-entropy. etcd going away only pauses it: the
 * known leases stay in force and the watch resumes.
 *
 * A key that is not a subnet key, or a value that is not lease JSON, is
 * skipped and logged once; it never withdraws other leases (upstream
 * withdrew every remote route on such an event).
 */
import type { Logger } from '../../log';
import { sleep } from '../../util/backoff';
import { errorText } from '../../util/errors';
import { LogOnce } from '../../util/repeat-log';
import type { Lease, LeaseEvent } from '../lease';
import { type LeaseChange, RemoteLeaseSet } from '../remote-leases';
import type { LeasesWatch, LeasesWatchStats } from '../subnet-manager';
import { etcdRetryBackoff } from './backoff-policy';
import type { RegistryEvent, RegistryWatch, SkippedKey, SubnetRegistry } from './registry';
import { subnetKeyOfEtcdKey } from './subnet-key';

export interface PeerLeasesWatchOptions {
  resyncIntervalMs: number;
  watchProgressMs?: number;
}

export class EtcdPeerLeasesWatch implements LeasesWatch {
  private readonly leases: RemoteLeaseSet;
  private watch: RegistryWatch | undefined;
  private stopped = false;
  private resyncTimer: NodeJS.Timeout | undefined;
  private readonly loggedSkips = new LogOnce();
  private starting: Promise<void> | undefined;
  readonly stats: LeasesWatchStats = { reconnects: 0, resyncs: 0, skippedKeys: 0, connected: false, snapshotApplied: false };

  constructor(
    private readonly registry: SubnetRegistry,
    own: Lease,
    private readonly onEvents: (events: LeaseEvent[]) => void,
    private readonly options: PeerLeasesWatchOptions,
    private readonly log: Logger,
  ) {
    this.leases = new RemoteLeaseSet(own);
  }

  start(): void {
    this.starting ??= this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.resyncTimer) clearTimeout(this.resyncTimer);
    await this.starting;
    await this.watch?.stop();
  }

  /** Hands a batch to the backend; the first listing even when empty, so the backend knows it is in sync. */
  private emit(events: LeaseEvent[]): void {
    if (this.stopped) return;
    if (events.length > 0 || !this.stats.snapshotApplied) this.onEvents(events);
    this.stats.snapshotApplied = true;
  }

  private skip(s: SkippedKey, revision?: bigint): void {
    const id = `${s.key}@${revision ?? ''}:${s.reason}`;
    this.stats.skippedKeys++;
    if (!this.loggedSkips.first(id)) return;
    this.log.warn({ key: s.key, reason: s.reason }, `Ignoring bad subnet node: ${s.key}: ${s.reason} (other leases are unaffected)`);
  }

  /** Lists every lease (retrying until etcd answers) and applies it as a snapshot; returns the listing's revision. */
  private async snapshot(): Promise<bigint | undefined> {
    const backoff = etcdRetryBackoff();
    while (!this.stopped) {
      try {
        const { leases, revision, skipped } = await this.registry.listLeases();
        for (const s of skipped) this.skip(s);
        this.emit(this.leases.reset(leases.map((l) => l.lease)));
        return revision;
      } catch (e) {
        this.log.warn({ err: errorText(e) }, 'cannot list the leases; retrying');
        await sleep(backoff.next()).catch(() => undefined);
      }
    }
    return undefined;
  }

  private async run(): Promise<void> {
    const revision = await this.snapshot();
    if (revision === undefined) return;
    this.watch = this.registry.watch(
      {
        key: this.registry.subnetsPrefix,
        prefix: true,
        startRevision: revision + 1n,
        ...(this.options.watchProgressMs ? { progressIntervalMs: this.options.watchProgressMs } : {}),
      },
      {
        onEvents: (events) => this.apply(events),
        onCompacted: (rev) => void this.resync(`the watch fell behind compaction at revision ${rev}`, true),
        onState: (state, detail) => {
          this.stats.connected = state === 'connected';
          this.stats.reconnects = this.watch?.reconnects ?? 0;
          if (state === 'connected') this.log.info({}, 'watching leases');
          if (state === 'disconnected') this.log.debug({ detail }, 'lease watch disconnected');
        },
      },
    );
    this.watch.start();
    this.scheduleResync();
  }

  private apply(events: readonly RegistryEvent[]): void {
    const changes: LeaseChange[] = [];
    for (const ev of events) {
      if (ev.type === 'put') {
        if (ev.kv.ok) changes.push({ type: 'put', lease: ev.kv.stored.lease });
        else this.skip(ev.kv.skipped, ev.modRevision);
        continue;
      }
      const parsed = subnetKeyOfEtcdKey(this.registry.prefix, ev.key);
      if (parsed) changes.push({ type: 'delete', subnet: parsed.subnet, ipv6Subnet: parsed.ipv6Subnet });
      else this.skip({ key: ev.key, reason: 'not a subnet key' }, ev.modRevision);
    }
    this.emit(this.leases.update(changes));
  }

  private scheduleResync(): void {
    if (this.stopped || this.options.resyncIntervalMs <= 0) return;
    this.resyncTimer = setTimeout(() => void this.resync('periodic resync', false), this.options.resyncIntervalMs);
    this.resyncTimer.unref();
  }

  /** Re-lists and diffs; after a compaction also restarts the watch from the listing. */
  private async resync(why: string, compacted: boolean): Promise<void> {
    if (this.stopped) return;
    if (this.resyncTimer) clearTimeout(this.resyncTimer);
    this.stats.resyncs++;
    this.log.info({ reason: why }, 'resyncing leases');
    const revision = await this.snapshot();
    if (revision !== undefined && compacted) this.watch?.restartFrom(revision + 1n);
    this.scheduleResync();
  }
}
