/**
 * Rate-limits a repeating failure in a retry loop: the first occurrence of a
 * message is logged, then the same message at most once per `everyMs`
 * (saying how often it recurred); a different message is logged at once.
 */
import { createHash } from 'node:crypto';
import type { Logger } from '../logging';

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
 * each id is kept (24 characters), at most `capacity` of them. Past that the
 * oldest one is forgotten (it may be logged once more if it comes back); the
 * others stay remembered, so a new id never makes the rest be logged again.
 */
export class LogOnce {
  private readonly seen: BoundedSet<string>;

  constructor(capacity = 10_000) {
    this.seen = new BoundedSet(capacity);
  }

  /** True the first time `id` is offered (since it was last forgotten). */
  first(id: string): boolean {
    return this.seen.add(createHash('sha256').update(id).digest('base64').slice(0, LOG_ONCE_DIGEST_CHARS));
  }

  /** Characters of ids retained (for the memory bound's test). */
  get retainedChars(): number {
    let n = 0;
    for (const d of this.seen.values()) n += d.length;
    return n;
  }
}

/**
 * A set of at most `capacity` values: past it, adding a new value forgets
 * the oldest one (first in, first out). Every operation is O(1).
 */
export class BoundedSet<T> {
  private readonly members = new Set<T>();
  private readonly ring: T[] = [];
  private next = 0;

  constructor(private readonly capacity: number) {}

  /** Adds `v`; true when it was not a member. */
  add(v: T): boolean {
    if (this.members.has(v)) return false;
    if (this.ring.length < this.capacity) {
      this.ring.push(v);
    } else {
      this.members.delete(this.ring[this.next]!);
      this.ring[this.next] = v;
      this.next = (this.next + 1) % this.capacity;
    }
    this.members.add(v);
    return true;
  }

  has(v: T): boolean {
    return this.members.has(v);
  }

  get size(): number {
    return this.members.size;
  }

  values(): IterableIterator<T> {
    return this.members.values();
  }
}

/** Characters kept per id: 24 base64 characters carry 144 bits of the SHA-256 digest. */
export const LOG_ONCE_DIGEST_CHARS = 24;
