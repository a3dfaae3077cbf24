/**
 * Rate-limits a repeating failure in a retry loop: the first occurrence of a
 * message is logged, then the same message at most once per `everyMs`
 * (saying how often it recurred); a different message is logged at once.
 */
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
 * a bad key or node seen again by a resync or relist stays quiet. Bounded:
 * past `capacity` ids it forgets them all (and may log each once more).
 */
export class LogOnce {
  private readonly seen = new Set<string>();

  constructor(private readonly capacity = 10_000) {}

  /** True the first time `id` is offered (since the last forgetting). */
  first(id: string): boolean {
    if (this.seen.has(id)) return false;
    if (this.seen.size > this.capacity) this.seen.clear();
    this.seen.add(id);
    return true;
  }
}
