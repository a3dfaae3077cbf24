/** Exponential backoff with jitter, and sleeps that an AbortSignal cancels. */
import { NamedError } from './errors';

export class Backoff {
  private current: number;

  /**
   * Delays start at `initialMs`, grow by `factor` up to `maxMs`, and are
   * spread by +/- `jitter` (a fraction) so that many nodes retrying against
   * one etcd do not do so in lockstep.
   */
  constructor(
    private readonly initialMs: number,
    private readonly maxMs: number,
    private readonly factor = 2,
    private readonly jitter = 0.2,
    private readonly random: () => number = Math.random,
  ) {
    this.current = initialMs;
  }

  /** The next delay. */
  next(): number {
    const base = this.current;
    this.current = Math.min(this.maxMs, this.current * this.factor);
    const spread = base * this.jitter * (2 * this.random() - 1);
    return Math.max(0, Math.round(base + spread));
  }

  reset(): void {
    this.current = this.initialMs;
  }
}

/** Thrown by sleep() and by loops when their signal is aborted. */
export class AbortedError extends NamedError {
  constructor() {
    super('aborted');
  }
}

export function isAborted(e: unknown): boolean {
  return e instanceof AbortedError;
}

export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new AbortedError();
}

/** Resolves after `ms`, or rejects with AbortedError as soon as `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new AbortedError());
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(new AbortedError());
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
