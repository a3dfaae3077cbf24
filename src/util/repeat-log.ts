/**
 * Rate-limits a repeating failure in a retry loop: the first occurrence of a
 * message is logged, then the same message at most once per `everyMs`
 * (saying how often it recurred); a different message is logged at once.
 */
import { createHash } from 'node:crypto';
import type { Logger } from '../log';

export class RepeatLog {
  private lastMsg = '';
  private lastAt = 0;
  private suppressed = 0;

  constructor(private readonly log: Logger, private readonly everyMs = 30_000, private readonly now: () => number = Date.now) {}

  warn(obj: object, msg: string): void {
    const t = this.now();
    if (msg === this.lastMsg && t - this.lastAt < this.everyMs) {
      this.suppressed++;
      return;
    }
    const extra = msg === this.lastMsg && this.suppressed > 0 ? { repeated: this.suppressed } : {};
    this.log.warn({ ...obj, ...extra }, msg);
    this.lastMsg = msg;
    this.lastAt = t;
    this.suppressed = 0;
  }

  /** Forget the last message (call when the condition cleared). */
  reset(): void {
    this.lastMsg = '';
    this.suppressed = 0;
  }
}

/**
 * Remembers which occurrences (by id) were logged, so each is logged once:
 * a bad key or node seen again by a resync or relist stays quiet.
 *
 * Bounded in memory whatever the ids: an id can quote a bad value of up to
 * 1.5 MiB (etcd) or 256 KiB (an annotation), so only a 144-bit digest of
 * each id is kept (24 characters), and past `capacity` digests they are all
 * forgotten (each occurrence may then be logged once more). At most
 * capacity x 24 characters are retained.
 */
export class LogOnce {
  private readonly seen = new Set<string>();

  constructor(private readonly capacity = 10_000) {}

  /** True the first time `id` is offered (since the last forgetting). */
  first(id: string): boolean {
    const digest = createHash('sha256').update(id).digest('base64').slice(0, LOG_ONCE_DIGEST_CHARS);
    if (this.seen.has(digest)) return false;
    if (this.seen.size >= this.capacity) this.seen.clear();
    this.seen.add(digest);
    return true;
  }

  /** Characters of ids retained (for the memory bound's test). */
  get retainedChars(): number {
    let n = 0;
    for (const d of this.seen) n += d.length;
    return n;
  }
}

/** Characters kept per id: 24 base64 characters carry 144 bits of the SHA-256 digest. */
export const LOG_ONCE_DIGEST_CHARS = 24;
