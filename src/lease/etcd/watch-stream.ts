/**
 * The stream under every watch of the etcd store: a resilient etcd v3 watch
 * of one key or prefix, over etcd3's raw gRPC watch stream (its Watcher
 * resumes from the create response's revision, which can skip events when a
 * stream breaks during catch-up).
 *
 * States: connecting -> connected -> (disconnected -> backoff -> connecting)
 * ... -> stopped. It resumes after every break from the revision following
 * the last response it processed (header revision + 1, as upstream's
 * watchSubnets), with the etcd retry backoff (./backoff-policy.ts, reset only
 * after a stream stayed up for WATCH_HEALTHY_RESET_MS), and asks etcd for
 * progress notifications so a stream that silently stops delivering is
 * noticed and replaced. It asks etcd to fragment large responses (a
 * revision's events in several answers, each under etcd's request size
 * limit), and moves its resume point only at a revision's last fragment.
 *
 * Two things stop it until the owner re-reads and calls restartFrom():
 *  - compaction of the revision it wants to resume from (onCompacted);
 *  - another store answering (onReset): the cluster id in the response
 *    headers changed, or the revision went back (confirmed by a linearizable
 *    read, since a lagging follower may answer a little behind). That is a
 *    wiped etcd on the same address (a member bootstrapped with the same
 *    flags even gets the same cluster id); a watch from our old revision
 *    would otherwise wait silently for the new store to catch up.
 */
import type { Etcd3, IEvent, IKeyValue, IResponseHeader, IWatchResponse } from 'etcd3';
import type { Logger } from '../../logging';
import { type Backoff, sleep } from '../../util/backoff';
import { errorText } from '../../util/errors';
import { etcdRetryBackoff } from './backoff-policy';
import type { KvEntry, KvEvent, KvHeader, KvWatch, KvWatchHandlers } from './kv-store';

export interface WatchStreamOptions {
  /** Key, and range end for a prefix (etcd3's Range.prefix end). */
  key: Buffer;
  rangeEnd?: Buffer;
  startRevision: bigint;
  /** The store the caller read from; undefined: the first response decides. */
  clusterId?: string;
  /** How often to ask for a progress notification while connected (default 30 s). */
  progressIntervalMs?: number;
  /** A connected stream silent for this long is replaced (default 2.5 x progress interval). */
  stallTimeoutMs?: number;
  backoff?: Backoff;
  /** How long a stream must stay up before the backoff starts over (default WATCH_HEALTHY_RESET_MS). */
  healthyResetMs?: number;
  /** A linearizable read of the store's header, to confirm a revision that went back. */
  confirmHeader: () => Promise<KvHeader>;
}

/** etcd3's prefix range end: the prefix with its last byte incremented (carry over 0xff). */
export function prefixRangeEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]! += 1;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}

export function kvHeader(h: IResponseHeader): KvHeader {
  return { revision: BigInt(h.revision), clusterId: String(h.cluster_id) };
}

/** An etcd key-value as the store interface has it. */
export function entryOf(kv: IKeyValue): KvEntry {
  const size = kv.value.length;
  return {
    key: kv.key.toString(),
    value: kv.value.toString(),
    valueBytes: size,
    createRevision: BigInt(kv.create_revision),
    modRevision: BigInt(kv.mod_revision),
    lease: kv.lease || '0',
  };
}

export function kvEvent(ev: IEvent): KvEvent {
  const kv = ev.kv;
  if (ev.type === 'Delete') return { type: 'delete', key: kv.key.toString(), modRevision: BigInt(kv.mod_revision) };
  return { type: 'put', entry: entryOf(kv) };
}

/**
 * A stream must have delivered for this long before a break counts as a new
 * first failure (the reconnect backoff starts over): a stream that is
 * created and dropped at once would otherwise reconnect every 100 ms. The
 * Kubernetes informer resets its backoff the same way (client-go's
 * wait.BackoffManager, after a period without failures).
 */
export const WATCH_HEALTHY_RESET_MS = 30_000;

type SessionEnd = { kind: 'compacted'; revision: bigint } | { kind: 'reset'; reason: string; header: KvHeader } | { kind: 'stopped' };

export class EtcdWatchStream implements KvWatch {
  private next: bigint;
  private clusterId: string | undefined;
  /** The highest revision any response of this store reported. */
  private highest = 0n;
  private stopped = false;
  private current: { cancel(): void } | undefined;
  private restart: ((revision: bigint) => void) | undefined;
  private readonly backoff: Backoff;
  private readonly progressIntervalMs: number;
  private readonly stallTimeoutMs: number;
  private loop: Promise<void> | undefined;
  /** Streams opened after a break (not counting the first), for metrics. */
  reconnects = 0;
  /** When the current stream was created (undefined until it is). */
  private connectedAt: number | undefined;
  private readonly healthyResetMs: number;

  constructor(
    private readonly client: Etcd3,
    private readonly options: WatchStreamOptions,
    private readonly handlers: KvWatchHandlers,
    private readonly log: Logger,
  ) {
    this.next = options.startRevision;
    this.clusterId = options.clusterId;
    this.highest = options.startRevision - 1n;
    this.backoff = options.backoff ?? etcdRetryBackoff();
    this.progressIntervalMs = options.progressIntervalMs ?? 30_000;
    this.stallTimeoutMs = options.stallTimeoutMs ?? this.progressIntervalMs * 2.5;
    this.healthyResetMs = options.healthyResetMs ?? WATCH_HEALTHY_RESET_MS;
  }

  /** The revision the watch resumes from. */
  get nextRevision(): bigint {
    return this.next;
  }

  start(): void {
    if (!this.loop) this.loop = this.run();
  }

  restartFrom(revision: bigint, clusterId?: string): void {
    this.next = revision;
    this.highest = revision - 1n;
    if (clusterId !== undefined) this.clusterId = clusterId;
    const r = this.restart;
    this.restart = undefined;
    r?.(revision);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.current?.cancel();
    this.restart?.(this.next);
    await this.loop;
    this.handlers.onState?.('stopped');
  }

  private async run(): Promise<void> {
    let first = true;
    while (!this.stopped) {
      if (!first) this.reconnects++;
      first = false;
      this.handlers.onState?.('connecting');
      let end: SessionEnd;
      this.connectedAt = undefined;
      try {
        end = await this.session();
      } catch (e) {
        if (this.stopped) break;
        if (this.connectedAt !== undefined && Date.now() - this.connectedAt >= this.healthyResetMs) this.backoff.reset();
        const delay = this.backoff.next();
        const detail = errorText(e);
        this.handlers.onState?.('disconnected', detail);
        this.log.warn({ err: detail, retryInMs: delay, fromRevision: this.next.toString() }, 'etcd watch broke; reconnecting');
        await sleep(delay).catch(() => undefined);
        continue;
      }
      if (end.kind === 'stopped') break;
      // Compacted or reset: wait for the owner to re-read and give the new revision.
      const waiting = new Promise<bigint>((resolve) => (this.restart = resolve));
      if (end.kind === 'compacted') {
        this.handlers.onState?.('compacted', `compacted at ${end.revision}`);
        this.handlers.onCompacted(end.revision);
      } else {
        this.handlers.onState?.('reset', end.reason);
        this.handlers.onReset(end.reason, end.header);
      }
      await waiting;
    }
  }

  /** Why `h` is not from the store this watch follows, or undefined when it is. */
  private replaced(h: KvHeader): string | undefined {
    if (this.clusterId === undefined || this.clusterId === '0') {
      this.clusterId = h.clusterId;
      return undefined;
    }
    if (h.clusterId !== this.clusterId) return `the etcd cluster id changed from ${this.clusterId} to ${h.clusterId}`;
    if (h.revision < this.highest) return `the etcd revision went back from ${this.highest} to ${h.revision}`;
    return undefined;
  }

  /** Whether a linearizable read confirms the store is not the one we followed. */
  private async confirmReplaced(): Promise<{ reason: string; header: KvHeader } | undefined> {
    const h = await this.options.confirmHeader();
    const why = h.clusterId !== this.clusterId ? `the etcd cluster id changed from ${this.clusterId} to ${h.clusterId}` : h.revision < this.highest ? `the etcd revision went back from ${this.highest} to ${h.revision}` : undefined;
    return why ? { reason: why, header: h } : undefined;
  }

  /** One stream: resolves when stopped, compacted or reset; rejects when it breaks. */
  private async session(): Promise<SessionEnd> {
    const stream = await this.client.watchClient.watch();
    return new Promise<SessionEnd>((resolve, reject) => {
      let settled = false;
      let confirming = false;
      let lastHeard = Date.now();
      const finish = (f: () => void): void => {
        if (settled) return;
        settled = true;
        clearInterval(ticker);
        this.current = undefined;
        try {
          stream.cancel();
        } catch {
          /* already closed */
        }
        f();
      };
      this.current = { cancel: () => finish(() => resolve({ kind: 'stopped' })) };
      const ticker = setInterval(() => {
        if (Date.now() - lastHeard > this.stallTimeoutMs) {
          finish(() => reject(new Error(`no response for ${this.stallTimeoutMs} ms`)));
          return;
        }
        try {
          stream.write({ progress_request: {} });
        } catch (e) {
          finish(() => reject(e));
        }
      }, this.progressIntervalMs);
      ticker.unref();

      stream.on('data', (res: IWatchResponse) => {
        if (settled) return;
        lastHeard = Date.now();
        const header = kvHeader(res.header);
        // etcd's compaction notice carries revision 0 in its header: handled first, never taken for a reset.
        if (res.compact_revision && res.compact_revision !== '0') {
          const revision = BigInt(res.compact_revision);
          finish(() => resolve({ kind: 'compacted', revision }));
          return;
        }
        if (res.canceled) {
          finish(() => reject(new Error(`watch canceled by etcd: ${res.cancel_reason || 'no reason given'}`)));
          return;
        }
        if (header.revision > 0n && this.replaced(header)) {
          // Nothing from a store we cannot vouch for is delivered; a lagging
          // follower is told apart from a wiped etcd by a linearizable read.
          if (!confirming) {
            confirming = true;
            this.confirmReplaced().then(
              (r) => {
                confirming = false;
                if (r) finish(() => resolve({ kind: 'reset', reason: r.reason, header: r.header }));
              },
              (e: unknown) => finish(() => reject(e)),
            );
          }
          return;
        }
        if (header.revision > this.highest) this.highest = header.revision;
        if (res.created) {
          this.connectedAt = Date.now();
          this.handlers.onState?.('connected');
          return; // the create response's revision says nothing about what was delivered
        }
        if (res.events.length > 0) this.handlers.onEvents(res.events.map(kvEvent), header);
        // Events up to the header revision have been delivered (etcd sends a
        // watcher's events in order and progress only once it is in sync),
        // unless more fragments of that revision follow.
        if (!res.fragment && header.revision + 1n > this.next) this.next = header.revision + 1n;
      });
      stream.on('error', (err: Error) => finish(() => reject(err)));
      stream.on('end', () => finish(() => reject(new Error('watch stream ended'))));
      stream.write({
        create_request: {
          key: this.options.key,
          ...(this.options.rangeEnd ? { range_end: this.options.rangeEnd } : {}),
          start_revision: this.next.toString(),
          progress_notify: true,
          fragment: true,
        },
      });
    });
  }
}
