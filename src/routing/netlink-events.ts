/**
 * Kernel notifications of link, IPv4 address, IPv4 route and neighbour
 * changes (rtnetlink multicast groups), for the reconcilers. Each
 * notification is reported with its kind, whether it is a deletion, and the
 * interface index when the message has one. A receive overflow (ENOBUFS:
 * notifications were lost) is reported as `overflow`, so the owner can
 * reconcile everything (users-and-style A item 26).
 */
import { EventEmitter } from 'node:events';
import { createRtNetlink, type RtNetlinkSocket } from 'netlink';
import type { Logger } from '../log';

export type NetlinkEventKind = 'link' | 'address' | 'route' | 'neighbor';

export interface NetlinkEvent {
  kind: NetlinkEventKind;
  deleted: boolean;
  /** From ifinfomsg / ifaddrmsg / ndmsg; undefined for routes. */
  ifindex: number | undefined;
}

// linux/rtnetlink.h message types.
const TYPES: Record<number, [NetlinkEventKind, boolean]> = {
  16: ['link', false], // RTM_NEWLINK
  17: ['link', true], // RTM_DELLINK
  20: ['address', false], // RTM_NEWADDR
  21: ['address', true], // RTM_DELADDR
  24: ['route', false], // RTM_NEWROUTE
  25: ['route', true], // RTM_DELROUTE
  28: ['neighbor', false], // RTM_NEWNEIGH
  29: ['neighbor', true], // RTM_DELNEIGH
};

/** A receive buffer large enough for bursts (upstream issue #958: lost route events). */
const RECEIVE_BUFFER = 4 * 1024 * 1024;

export interface NetlinkEventSource {
  on(event: 'event', f: (e: NetlinkEvent) => void): this;
  on(event: 'overflow', f: () => void): this;
  off(event: 'event', f: (e: NetlinkEvent) => void): this;
  off(event: 'overflow', f: () => void): this;
  close(): void;
}

export class NetlinkEvents extends EventEmitter implements NetlinkEventSource {
  private readonly sock: RtNetlinkSocket;
  overflows = 0;

  constructor(log: Logger) {
    super();
    this.sock = createRtNetlink({ ref: false, recvBufferSize: RECEIVE_BUFFER, sendBufferSize: 64 * 1024 });
    for (const g of ['LINK', 'IPV4_IFADDR', 'IPV4_ROUTE', 'NEIGH'] as const) this.sock.addMembership(g);
    this.sock.socket.on('message', (msgs) => {
      for (const m of msgs) {
        const t = TYPES[m.type];
        if (!t) continue;
        const [kind, deleted] = t;
        const ifindex = kind !== 'route' && m.data.length >= 8 ? m.data.readInt32LE(4) : undefined;
        this.emit('event', { kind, deleted, ifindex } satisfies NetlinkEvent);
      }
    });
    this.sock.socket.on('error', (e: { code?: string; message: string }) => {
      if (e.code === 'ENOBUFS') {
        this.overflows++;
        log.warn({}, 'netlink notifications were lost (ENOBUFS); reconciling everything');
        this.emit('overflow');
      } else {
        log.warn({ err: e.message }, 'netlink notification socket error');
      }
    });
  }

  close(): void {
    this.sock.socket.close();
  }
}
