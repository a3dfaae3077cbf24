/**
 * systemd notifications (sd_notify(3); upstream's main.go sends READY=1):
 * READY=1, WATCHDOG=1, STOPPING=1, STATUS= and, while starting,
 * EXTEND_TIMEOUT_USEC to $NOTIFY_SOCKET, sent by the addon (no libsystemd).
 * Without $NOTIFY_SOCKET this does nothing; failures are only logged, as
 * upstream.
 */
import { loadAddon } from '../addon/loader';
import { isNativeSystemError } from '../addon/system-error';
import type { Logger } from '../logging';
import { errorText } from '../util/errors';

export type NotifySender = (socketPath: string, message: string) => void;

/** The addon's sd_notify face: one datagram to a unix socket (native/linux/sd_notify_linux.h); throws {syscall, code}. */
const addonSend: NotifySender = (p, m) => (loadAddon().module['sdNotify'] as NotifySender)(p, m);

export class SystemdNotifier {
  constructor(
    private readonly socketPath: string | undefined,
    private readonly log: Logger,
    private readonly send: NotifySender = addonSend,
  ) {}

  get enabled(): boolean {
    return this.socketPath !== undefined && this.socketPath !== '';
  }

  /** Sends `message` (e.g. "READY=1"); returns whether it was sent. */
  notify(message: string): boolean {
    if (!this.enabled) return false;
    try {
      this.send(this.socketPath!, message);
      this.log.debug({ message }, 'notified systemd');
      return true;
    } catch (e) {
      const detail = isNativeSystemError(e) ? `${e.syscall}: ${e.code}` : errorText(e);
      this.log.warn({ socket: this.socketPath, message, err: detail }, `failed to notify systemd (${message})`);
      return false;
    }
  }
}

/**
 * systemd's watchdog period, as sd_watchdog_enabled(3) reads it:
 * WATCHDOG_USEC set to a positive number, and WATCHDOG_PID unset or this
 * process. Returns the period in ms, or undefined when there is no watchdog.
 */
export function watchdogPeriodMs(env: NodeJS.ProcessEnv, pid: number = process.pid): number | undefined {
  const usec = Number(env['WATCHDOG_USEC'] ?? '');
  if (!Number.isFinite(usec) || usec <= 0) return undefined;
  const forPid = env['WATCHDOG_PID'];
  if (forPid !== undefined && forPid !== '' && Number(forPid) !== pid) return undefined;
  return usec / 1000;
}

/**
 * Sends WATCHDOG=1 every half period while `live()` reports no problem (a
 * stuck event loop sends nothing either, so systemd restarts the unit). The
 * first withheld ping and the recovery are logged.
 */
export class Watchdog {
  private timer: NodeJS.Timeout | undefined;
  private withholding = false;

  constructor(
    private readonly notifier: SystemdNotifier,
    private readonly periodMs: number,
    private readonly live: () => Promise<string | undefined>,
    private readonly log: Logger,
  ) {}

  start(): void {
    const tick = async (): Promise<void> => {
      const problem = await this.live().catch((e: unknown) => (errorText(e)));
      if (problem === undefined) {
        if (this.withholding) this.log.info({}, 'healthy again: resuming systemd watchdog pings');
        this.withholding = false;
        this.notifier.notify('WATCHDOG=1');
      } else if (!this.withholding) {
        this.withholding = true;
        this.log.error({ problem }, `not healthy, withholding WATCHDOG=1 (systemd restarts the unit after ${this.periodMs / 1000} s): ${problem}`);
      }
    };
    void tick();
    this.timer = setInterval(() => void tick(), Math.max(1, Math.floor(this.periodMs / 2)));
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }
}

/** How often the start timeout is extended while flanneld is not ready, and by how much. */
export const START_EXTEND_INTERVAL_MS = 20_000;
export const START_EXTEND_BY_USEC = 60_000_000;

/**
 * Until READY=1: EXTEND_TIMEOUT_USEC (systemd 236 and later) every
 * START_EXTEND_INTERVAL_MS, so systemd's start timeout (90 s by default)
 * never kills a flanneld that is waiting for etcd or its config, and STATUS=
 * with what it is waiting for (`systemctl status flanneld` shows it).
 */
export class StartTimeoutExtender {
  private timer: NodeJS.Timeout | undefined;
  private text = '';

  constructor(
    private readonly notifier: SystemdNotifier,
    private readonly intervalMs = START_EXTEND_INTERVAL_MS,
  ) {}

  start(text: string): void {
    if (!this.notifier.enabled) return;
    this.status(text);
    this.extend();
    this.timer = setInterval(() => this.extend(), this.intervalMs);
    this.timer.unref();
  }

  /** What flanneld waits for now. */
  status(text: string): void {
    if (!this.notifier.enabled || text === this.text) return;
    this.text = text;
    this.notifier.notify(`STATUS=${text}`);
  }

  private extend(): void {
    this.notifier.notify(`EXTEND_TIMEOUT_USEC=${START_EXTEND_BY_USEC}`);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}
