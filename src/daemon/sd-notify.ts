/**
 * systemd notifications (compat §8.8): READY=1 to $NOTIFY_SOCKET, sent by
 * the addon (no libsystemd). Without $NOTIFY_SOCKET this does nothing;
 * failures are only logged, as upstream.
 */
import { isNativeSystemError } from '../forwarder/errors';
import { loadNativeAddon } from '../forwarder/native-binding';
import type { Logger } from '../log';

export type NotifySender = (socketPath: string, message: string) => void;

export class SystemdNotifier {
  constructor(
    private readonly socketPath: string | undefined,
    private readonly log: Logger,
    private readonly send: NotifySender = (p, m) => loadNativeAddon().sdNotify(p, m),
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
      const detail = isNativeSystemError(e) ? `${e.syscall}: ${e.code}` : e instanceof Error ? e.message : String(e);
      this.log.warn({ socket: this.socketPath, message, err: detail }, `failed to notify systemd (${message})`);
      return false;
    }
  }
}
