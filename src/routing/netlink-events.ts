/**
 * Kernel notifications of link, address (IPv4 and IPv6), IPv4 route and neighbour
 * changes (rtnetlink multicast groups), for the reconcilers. Each
 * notification is reported with its kind, whether it is a deletion, and the
 * interface index when the message has one. A receive overflow (ENOBUFS:
 * notifications were lost) is reported as `overflow`, so the owner can
 * reconcile everything.
 *
 * The socket is the addon's (native/linux/netlink_monitor_linux.h), not
 * netlink@0.3.0's: that package aborts the process when its socket reports
 * an error, and ENOBUFS is such an error.
 */
import { EventEmitter } from 'node:events';
import { loadAddon } from '../addon/loader';
import type { Logger } from '../logging';

export type NetlinkEventKind = 'link' | 'address' | 'route' | 'neighbor';

export interface NetlinkEvent {
  kind: NetlinkEventKind;
  deleted: boolean;
  /** From ifinfomsg / ifaddrmsg / ndmsg; undefined for routes. */
  ifindex: number | undefined;
}

/** A receive buffer large enough for bursts (upstream issue #958: lost route events). */
const RECEIVE_BUFFER = 4 * 1024 * 1024;

export interface NetlinkEventSource {
  on(event: 'event', f: (e: NetlinkEvent) => void): this;
  on(event: 'overflow', f: () => void): this;
  off(event: 'event', f: (e: NetlinkEvent) => void): this;
  off(event: 'overflow', f: () => void): this;
  close(): void;
}

/** One rtnetlink notification as the addon reports it (native/linux/netlink_monitor_linux.h). */
interface NativeNotification {
  kind: NetlinkEventKind;
  deleted: boolean;
  /** Absent for routes. */
  ifindex?: number;
}

/**
 * The netlink monitor's face of the addon: `onBatch` gets each wakeup's
 * notifications and the count of ENOBUFS reports (lost notifications), plus
 * an error when a receive failed otherwise.
 */
type NativeNetlinkMonitor = new (
  recvBufferBytes: number,
  onBatch: (events: NativeNotification[], overflows: number, error?: Error) => void,
) => { close(): void };

export class NetlinkEvents extends EventEmitter implements NetlinkEventSource {
  private readonly monitor: { close(): void };
  overflows = 0;

  /** `recvBufferSize` is for tests that need the kernel to drop notifications. */
  constructor(log: Logger, recvBufferSize: number = RECEIVE_BUFFER) {
    super();
    const Monitor = loadAddon().module['NetlinkMonitor'] as NativeNetlinkMonitor;
    this.monitor = new Monitor(recvBufferSize, (events, overflows, error) => {
      for (const e of events) this.emit('event', { kind: e.kind, deleted: e.deleted, ifindex: e.ifindex } satisfies NetlinkEvent);
      if (overflows > 0) {
        this.overflows += overflows;
        log.warn({ overflows }, 'netlink notifications were lost (ENOBUFS); reconciling everything');
        this.emit('overflow');
      }
      if (error) log.warn({ err: error.message }, 'netlink notification socket error');
    });
  }

  close(): void {
    this.monitor.close();
  }
}
