/**
 * The stream under every watch of the etcd registry: a resilient etcd v3
 * watch of one key or prefix, over etcd3's raw gRPC
 * watch stream (its Watcher resumes from the create response's revision,
 * which can skip events when a stream breaks during catch-up).
 *
 * States: connecting -> connected -> (disconnected -> backoff -> connecting)
 * ... -> stopped. It resumes after every break from the revision following
 * the last response it processed (header revision + 1, as upstream's
 * watchSubnets), with the etcd retry backoff (./backoff-policy.ts, reset once
 * a stream is healthy), and asks etcd for progress notifications so a stream that
 * silently stops delivering is noticed and replaced.
 *
 * When etcd has compacted the revision it wants to resume from, it stops and
 * reports `onCompacted`; the owner re-lists, diffs, and calls restartFrom().
 */
import type { Etcd3, IEvent, IWatchResponse } from 'etcd3';
import type { Logger } from '../../log';
import { type Backoff, sleep } from '../../util/backoff';
import { errorText } from '../../util/errors';
import { etcdRetryBackoff } from './backoff-policy';
import type { RegistryWatch, WatchState } from './registry';

export interface WatchHandlers {
  /** Events of one response, in revision order; `revision` is the response header's. */
  onEvents(events: IEvent[], revision: bigint): void;
  /** The resume revision was compacted away: re-list, then call restartFrom(). */
  onCompacted(compactRevision: bigint): void;
  onState?(state: WatchState, detail?: string): void;
}

export interface WatchOptions {
  /** Key, and range end for a prefix (etcd3's Range.prefix end). */
  key: Buffer;
  rangeEnd?: Buffer;
  startRevision: bigint;
  /** How often to ask for a progress notification while connected (default 30 s). */
  progressIntervalMs?: number;
  /** A connected stream silent for this long is replaced (default 2.5 x progress interval). */
  stallTimeoutMs?: number;
  backoff?: Backoff;
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

type SessionEnd = { kind: 'compacted'; revision: bigint } | { kind: 'stopped' };

export class EtcdWatchStream implements RegistryWatch {
  private next: bigint;
  private stopped = false;
  private current: { cancel(): void } | undefined;
  private restart: ((revision: bigint) => void) | undefined;
  private readonly backoff: Backoff;
  private readonly progressIntervalMs: number;
  private readonly stallTimeoutMs: number;
  private loop: Promise<void> | undefined;
  /** Streams opened after a break (not counting the first), for metrics. */
  reconnects = 0;

  constructor(
    private readonly client: Etcd3,
    private readonly options: WatchOptions,
    private readonly handlers: WatchHandlers,
    private readonly log: Logger,
  ) {
    this.next = options.startRevision;
    this.backoff = options.backoff ?? etcdRetryBackoff();
    this.progressIntervalMs = options.progressIntervalMs ?? 30_000;
    this.stallTimeoutMs = options.stallTimeoutMs ?? this.progressIntervalMs * 2.5;
  }

  /** The revision the watch resumes from. */
  get nextRevision(): bigint {
    return this.next;
  }

  start(): void {
    if (!this.loop) this.loop = this.run();
  }

  /** After onCompacted: continue from `revision` (the re-list's revision + 1). */
  restartFrom(revision: bigint): void {
    this.next = revision;
    const r = this.restart;
    this.restart = undefined;
    r?.(revision);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.current?.cancel();
    this.restart?.(this.next);
    await this.loop;
    this.setState('stopped');
  }

  private setState(state: WatchState, detail?: string): void {
    this.handlers.onState?.(state, detail);
  }

  private async run(): Promise<void> {
    let first = true;
    while (!this.stopped) {
      if (!first) this.reconnects++;
      first = false;
      this.setState('connecting');
      let end: SessionEnd;
      try {
        end = await this.session();
      } catch (e) {
        if (this.stopped) break;
        const delay = this.backoff.next();
        const detail = errorText(e);
        this.setState('disconnected', detail);
        this.log.warn({ err: detail, retryInMs: delay, fromRevision: this.next.toString() }, 'etcd watch broke; reconnecting');
        try {
          await sleep(delay);
        } catch {
          /* not abortable here */
        }
        continue;
      }
      if (end.kind === 'stopped') break;
      // Compacted: wait for the owner to re-list and give the new revision.
      this.setState('compacted', `compacted at ${end.revision}`);
      await new Promise<bigint>((resolve) => {
        this.restart = resolve;
        this.handlers.onCompacted(end.revision);
      });
    }
  }

  /** One stream: resolves when stopped or compacted, rejects when it breaks. */
  private async session(): Promise<SessionEnd> {
    const stream = await this.client.watchClient.watch();
    return new Promise<SessionEnd>((resolve, reject) => {
      let settled = false;
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
        if (res.compact_revision && res.compact_revision !== '0') {
          const revision = BigInt(res.compact_revision);
          finish(() => resolve({ kind: 'compacted', revision }));
          return;
        }
        if (res.canceled) {
          finish(() => reject(new Error(`watch canceled by etcd: ${res.cancel_reason || 'no reason given'}`)));
          return;
        }
        if (res.created) {
          this.backoff.reset();
          this.setState('connected');
          return; // the create response's revision says nothing about what was delivered
        }
        const revision = BigInt(res.header.revision);
        if (res.events.length > 0) this.handlers.onEvents(res.events, revision);
        // Events up to the header revision have been delivered (etcd sends a
        // watcher's events in order and progress only once it is in sync).
        if (revision + 1n > this.next) this.next = revision + 1n;
      });
      stream.on('error', (err: Error) => finish(() => reject(err)));
      stream.on('end', () => finish(() => reject(new Error('watch stream ended'))));
      stream.write({
        create_request: {
          key: this.options.key,
          ...(this.options.rangeEnd ? { range_end: this.options.rangeEnd } : {}),
          start_revision: this.next.toString(),
          progress_notify: true,
        },
      });
    });
  }
}
