/**
 * Watching the other nodes' leases in etcd (upstream's
 * pkg/subnet/etcd/registry.go, watchSubnets and resyncWatch): a listing as
 * the first batch, then a watch of `<prefix>/subnets` from the listing's
 * revision + 1 (so a put between the listing and the watch's start is
 * delivered). After a compaction it re-lists (the guard re-emits leases whose
 * attributes changed), and it re-lists every `resyncIntervalMs` as
 * anti-entropy. etcd going away only pauses it: the known leases stay in
 * force and the watch resumes.
 *
 * A wiped etcd (another store answers on the same address: its cluster id
 * changed or its revision went back) starts empty until the nodes re-create
 * their leases. Withdrawing every route because the first listing is empty
 * would cut the pods off for nothing, so after a wipe the listing only adds:
 * a lease missing from it stays routed until it returns or the grace period
 * (`wipeGraceMs`, default ETCD_WIPE_GRACE_MS) has passed, after which a full
 * listing removes what did not come back.
 *
 * A key that is not a (canonical) subnet key, or a value that is not lease
 * JSON, is skipped and logged once; it never withdraws other leases
 * (upstream withdraws every remote route on such an event). Records are
 * reported with their etcd key and create revision; the guard
 * (../peer-lease-guard.ts) decides what is routed.
 */
import type { Logger } from '../../logging';
import { sleep } from '../../util/backoff';
import { errorText } from '../../util/errors';
import { LogOnce } from '../../util/repeat-log';
import { quoteForLog } from '../../util/text';
import type { LeaseRecord, RecordBatch, RecordChange } from '../lease';
import type { LeasesWatch, LeasesWatchStats } from '../subnet-manager';
import { etcdRetryBackoff } from './backoff-policy';
import type { KvHeader, KvWatch } from './kv-store';
import type { RegistryEvent, SkippedKey, StoredLease, SubnetRegistry } from './registry';

/**
 * How long routes to leases missing after an etcd wipe are kept: every node
 * re-creates its own lease as soon as its keeper sees the new store (within
 * seconds, ./own-lease-keeper.ts), so two minutes leaves a wide margin for
 * nodes that are slow to reconnect while a node that really left is
 * withdrawn soon after.
 */
export const ETCD_WIPE_GRACE_MS = 2 * 60_000;

export interface PeerLeasesWatchOptions {
  resyncIntervalMs: number;
  watchProgressMs?: number;
  wipeGraceMs?: number;
}

export function recordOf(s: StoredLease): LeaseRecord {
  return { id: s.key, lease: s.lease, since: Number(s.createRevision) };
}

export class EtcdPeerLeasesWatch implements LeasesWatch {
  private watch: KvWatch | undefined;
  private stopped = false;
  private resyncTimer: NodeJS.Timeout | undefined;
  private readonly loggedSkips = new LogOnce();
  private starting: Promise<void> | undefined;
  /** The store the records came from, and the highest revision it reported. */
  private clusterId: string | undefined;
  private highest = 0n;
  /** After a wipe, until this time (ms), a listing only adds. */
  private graceUntil = 0;
  readonly stats: LeasesWatchStats = { reconnects: 0, resyncs: 0, skippedKeys: 0, connected: false, snapshotApplied: false, resets: 0 };

  constructor(
    private readonly registry: SubnetRegistry,
    /** The own lease's key: never reported. */
    private readonly ownKey: string,
    private readonly onBatch: (batch: RecordBatch) => void,
    private readonly options: PeerLeasesWatchOptions,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  start(): void {
    this.starting ??= this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.resyncTimer) clearTimeout(this.resyncTimer);
    await this.starting;
    await this.watch?.stop();
  }

  private emit(batch: RecordBatch): void {
    if (this.stopped) return;
    this.onBatch(batch);
    this.stats.snapshotApplied = true;
  }

  private skip(s: SkippedKey): void {
    this.stats.skippedKeys++;
    if (!this.loggedSkips.first(`${s.key}\u0000${s.modRevision ?? ''}\u0000${s.reason}`)) return;
    this.log.warn({ key: quoteForLog(s.key), reason: quoteForLog(s.reason) }, `Ignoring bad subnet node: ${quoteForLog(s.key)}: ${quoteForLog(s.reason)} (other leases are unaffected)`);
  }

  /** Whether `h` comes from another store than the records (a wiped etcd). */
  private wiped(h: KvHeader): string | undefined {
    if (this.clusterId === undefined) return undefined;
    if (h.clusterId !== this.clusterId) return `the etcd cluster id changed from ${this.clusterId} to ${h.clusterId}`;
    if (h.revision < this.highest) return `the etcd revision went back from ${this.highest} to ${h.revision}`;
    return undefined;
  }

  private noteHeader(h: KvHeader): void {
    this.clusterId = h.clusterId;
    if (h.revision > this.highest) this.highest = h.revision;
  }

  /**
   * Lists every lease (retrying until etcd answers) and hands it over: as
   * the full set, or, after a wipe and during its grace period, as additions
   * only. Returns the listing's header.
   */
  private async relist(): Promise<KvHeader | undefined> {
    const backoff = etcdRetryBackoff();
    while (!this.stopped) {
      try {
        const { leases, header, skipped } = await this.registry.listLeases();
        const wipe = this.wiped(header);
        if (wipe) this.noteWipe(wipe);
        this.clusterId = header.clusterId;
        this.highest = header.revision;
        for (const s of skipped) this.skip(s);
        const records = leases.filter((l) => l.key !== this.ownKey).map(recordOf);
        if (this.now() < this.graceUntil) this.emit({ kind: 'changes', changes: records.map((record): RecordChange => ({ type: 'put', record })) });
        else this.emit({ kind: 'snapshot', records });
        return header;
      } catch (e) {
        this.log.warn({ err: errorText(e) }, 'cannot list the leases; retrying');
        await sleep(backoff.next()).catch(() => undefined);
      }
    }
    return undefined;
  }

  private noteWipe(reason: string): void {
    this.stats.resets++;
    const grace = this.options.wipeGraceMs ?? ETCD_WIPE_GRACE_MS;
    this.graceUntil = this.now() + grace;
    this.log.warn(
      { reason, graceMs: grace },
      `etcd was replaced or wiped (${reason}): keeping every route for up to ${Math.round(grace / 1000)} s while the nodes re-create their leases`,
    );
    if (this.resyncTimer) clearTimeout(this.resyncTimer);
    this.resyncTimer = setTimeout(() => void this.relistNow('the grace period after an etcd wipe is over', 'none'), grace + 1);
    this.resyncTimer.unref();
  }

  private async run(): Promise<void> {
    const header = await this.relist();
    if (header === undefined) return;
    this.watch = this.registry.watch(
      {
        key: this.registry.subnetsPrefix,
        prefix: true,
        startRevision: header.revision + 1n,
        clusterId: header.clusterId,
        ...(this.options.watchProgressMs ? { progressIntervalMs: this.options.watchProgressMs } : {}),
      },
      {
        onEvents: (events, h) => this.apply(events, h),
        onCompacted: (rev) => void this.relistNow(`the watch fell behind compaction at revision ${rev}`, 'restart'),
        onReset: (reason) => {
          this.noteWipe(reason);
          void this.relistNow('etcd was replaced or wiped', 'restart');
        },
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

  private apply(events: readonly RegistryEvent[], header: KvHeader): void {
    this.noteHeader(header);
    const changes: RecordChange[] = [];
    for (const ev of events) {
      if (ev.type === 'put') {
        if (!ev.kv.ok) this.skip(ev.kv.skipped);
        else if (ev.kv.stored.key !== this.ownKey) changes.push({ type: 'put', record: recordOf(ev.kv.stored) });
        continue;
      }
      if (ev.key !== this.ownKey) changes.push({ type: 'delete', id: ev.key });
    }
    if (changes.length > 0) this.emit({ kind: 'changes', changes });
  }

  private scheduleResync(): void {
    if (this.stopped || this.options.resyncIntervalMs <= 0) return;
    if (this.resyncTimer) clearTimeout(this.resyncTimer);
    this.resyncTimer = setTimeout(() => void this.relistNow('periodic resync', 'none'), this.options.resyncIntervalMs);
    this.resyncTimer.unref();
  }

  resync(reason: string): void {
    if (this.watch) void this.relistNow(reason, 'none');
  }

  /** Re-lists; after a compaction or a wipe also restarts the watch from the listing. */
  private async relistNow(why: string, watch: 'restart' | 'none'): Promise<void> {
    if (this.stopped) return;
    this.stats.resyncs++;
    this.log.info({ reason: why }, 'resyncing leases');
    const header = await this.relist();
    if (header !== undefined && watch === 'restart') this.watch?.restartFrom(header.revision + 1n, header.clusterId);
    if (this.now() >= this.graceUntil) this.scheduleResync();
  }
}
