/**
 * Keeps kernel state equal to what a backend wants (devices and routes
 * that vanish after an interface flap, or stay stale after downtime, are
 * upstream issues flannel-io/flannel#869, #1070, #2554; docs/compatibility.md
 * §10): a backend gives a `repair` function that
 * compares the desired state with the kernel and fixes what differs, and
 * the Reconciler runs it on kernel notifications (debounced), on a timer,
 * and after lost notifications. Runs never overlap. Every repair is counted
 * and logged; a failure is logged once until the state recovers, then
 * retried on the next trigger.
 */
import type { Logger } from '../logging';
import type { NetlinkEvent, NetlinkEventSource } from './netlink-events';
import { NamedError, errorText } from '../util/errors';

export interface Repair {
  /** What kind of state: "device", "address", "route", "neighbor", "fdb", "mtu", ... */
  kind: string;
  /** What was done, e.g. "restored route 10.5.2.0/24 via 10.5.2.0 dev flannel.1 onlink". */
  description: string;
}

/** A run that repaired some things and failed at others: `done` still counts. */
export class PartialRepairError extends NamedError {
  constructor(
    message: string,
    readonly done: readonly Repair[],
  ) {
    super(message);
  }
}

export interface ReconcilerOptions {
  name: string;
  /** The periodic check (host-gw keeps upstream's 10 s). */
  intervalMs: number;
  /** Notifications within this window are handled by one run. */
  debounceMs?: number;
  /** Which notifications can concern this backend (default: all). */
  relevant?: (e: NetlinkEvent) => boolean;
}

export interface ReconcilerStats {
  runs: number;
  repairs: number;
  failures: number;
  repairsByKind: Record<string, number>;
}

export class Reconciler {
  readonly stats: ReconcilerStats = { runs: 0, repairs: 0, failures: 0, repairsByKind: {} };
  private timer: NodeJS.Timeout | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private pendingReasons = new Set<string>();
  private failing = '';
  private stopped = false;
  private readonly onEvent = (e: NetlinkEvent): void => {
    if (!this.opts.relevant || this.opts.relevant(e)) this.schedule(`${e.kind} ${e.deleted ? 'deleted' : 'changed'}`);
  };
  private readonly onOverflow = (): void => this.schedule('lost netlink notifications', true);

  constructor(
    private readonly opts: ReconcilerOptions,
    private readonly repair: () => Promise<Repair[]>,
    private readonly events: NetlinkEventSource | undefined,
    private readonly log: Logger,
  ) {}

  /** The error of the last run, or "" when it succeeded (or none ran yet). */
  get lastFailure(): string {
    return this.failing;
  }

  get name(): string {
    return this.opts.name;
  }

  start(): void {
    this.events?.on('event', this.onEvent);
    this.events?.on('overflow', this.onOverflow);
    this.timer = setInterval(() => this.schedule('periodic check', true), this.opts.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.events?.off('event', this.onEvent);
    this.events?.off('overflow', this.onOverflow);
    if (this.timer) clearInterval(this.timer);
    if (this.debounce) clearTimeout(this.debounce);
    await this.running;
  }

  /** Requests a run (after the debounce window unless `now`). */
  schedule(reason: string, now = false): void {
    if (this.stopped) return;
    this.pendingReasons.add(reason);
    if (now) {
      if (this.debounce) clearTimeout(this.debounce);
      this.debounce = undefined;
      void this.runNow();
      return;
    }
    if (this.debounce) return;
    this.debounce = setTimeout(() => {
      this.debounce = undefined;
      void this.runNow();
    }, this.opts.debounceMs ?? 100);
  }

  /** Runs the repair now (or right after the current run); resolves when done. */
  runNow(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = this.loop().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async loop(): Promise<void> {
    do {
      this.again = false;
      const reasons = [...this.pendingReasons];
      this.pendingReasons.clear();
      if (this.stopped) return;
      this.stats.runs++;
      const count = (repairs: readonly Repair[]): void => {
        for (const r of repairs) {
          this.stats.repairs++;
          this.stats.repairsByKind[r.kind] = (this.stats.repairsByKind[r.kind] ?? 0) + 1;
          this.log.warn({ reconciler: this.opts.name, kind: r.kind, trigger: reasons.join(', ') }, `repaired: ${r.description}`);
        }
      };
      try {
        count(await this.repair());
        if (this.failing) this.log.info({ reconciler: this.opts.name }, 'kernel state reconciled again');
        this.failing = '';
      } catch (e) {
        if (e instanceof PartialRepairError) count(e.done);
        this.stats.failures++;
        const msg = errorText(e);
        if (msg !== this.failing) this.log.error({ reconciler: this.opts.name, err: msg }, `cannot reconcile kernel state (will retry): ${msg}`);
        this.failing = msg;
      }
    } while (this.again && !this.stopped);
  }
}
