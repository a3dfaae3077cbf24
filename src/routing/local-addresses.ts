/**
 * This node's own addresses, kept current: read at start, then read again
 * after every address notification (and after lost notifications), so an
 * address added later (cni0's, a second underlay address) counts as the
 * node's own as soon as the kernel has it.
 *
 * Two users: the lease guard (no peer may advertise one of them as its
 * PublicIP: src/lease/peer-lease-guard.ts) and the udp datapath (no inner
 * packet may come from one: native/core/forwarding.h LocalAddrs).
 */
import { EventEmitter } from 'node:events';
import type { Logger } from '../logging';
import { formatIpv4, Ipv4Net } from '../util/ipv4';
import { formatIpv6 } from '../util/ipv6';
import { errorText } from '../util/errors';
import type { NodeAddresses } from '../util/ip';
import type { NetlinkEvent, NetlinkEventSource } from './netlink-events';
import type { DetailedAddress } from './rtnetlink';

export type LocalAddressSet = NodeAddresses;

/** The set `addresses` make, with the directed broadcasts of interface `extIndex`'s IPv4 networks (RFC 919). */
export function localAddressSet(addresses: readonly DetailedAddress[], extIndex: number): LocalAddressSet {
  const ipv4: number[] = [];
  const ipv6: bigint[] = [];
  const directedBroadcasts: number[] = [];
  for (const a of addresses) {
    if (a.family === 4) {
      ipv4.push(a.address as number);
      if (a.index === extIndex && a.prefixLen < 31) directedBroadcasts.push(new Ipv4Net(a.address as number, a.prefixLen).broadcast);
    } else {
      ipv6.push(a.address as bigint);
    }
  }
  const sorted = <T extends number | bigint>(xs: T[]): T[] => [...new Set(xs)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return { ipv4: sorted(ipv4), ipv6: sorted(ipv6), directedBroadcasts: sorted(directedBroadcasts) };
}

/** The set's addresses as text, IPv4 first (what the udp datapath takes). */
export function localAddressTexts(set: LocalAddressSet): string[] {
  return [...set.ipv4.map(formatIpv4), ...set.ipv6.map(formatIpv6)];
}

function sameSet(a: LocalAddressSet, b: LocalAddressSet): boolean {
  const same = <T>(x: readonly T[], y: readonly T[]): boolean => x.length === y.length && x.every((v, i) => v === y[i]);
  return same(a.ipv4, b.ipv4) && same(a.ipv6, b.ipv6) && same(a.directedBroadcasts, b.directedBroadcasts);
}

/** Notifications arriving within this window cause one listing. */
export const LOCAL_ADDRESS_SETTLE_MS = 50;

export interface LocalAddressSource {
  current(): LocalAddressSet;
  on(event: 'change', f: (set: LocalAddressSet) => void): this;
  off(event: 'change', f: (set: LocalAddressSet) => void): this;
}

/** Emits `change` with the new set whenever it differs from the last one. */
export class LocalAddresses extends EventEmitter implements LocalAddressSource {
  private set: LocalAddressSet;
  private timer: NodeJS.Timeout | undefined;
  private reading: Promise<void> | undefined;
  private again = false;
  private closed = false;
  private readonly onEvent = (e: NetlinkEvent): void => {
    if (e.kind === 'address') this.schedule();
  };
  private readonly onOverflow = (): void => this.schedule();

  constructor(
    initial: LocalAddressSet,
    private readonly extIndex: number,
    private readonly list: () => Promise<DetailedAddress[]>,
    private readonly events: NetlinkEventSource,
    private readonly log: Logger,
  ) {
    super();
    this.set = initial;
    events.on('event', this.onEvent);
    events.on('overflow', this.onOverflow);
  }

  current(): LocalAddressSet {
    return this.set;
  }

  /** Reads the addresses now (tests; the notifications call it after LOCAL_ADDRESS_SETTLE_MS). */
  async refresh(): Promise<void> {
    if (this.reading) {
      this.again = true;
      return this.reading;
    }
    this.reading = (async () => {
      do {
        this.again = false;
        let next: LocalAddressSet;
        try {
          next = localAddressSet(await this.list(), this.extIndex);
        } catch (e) {
          this.log.warn({ err: errorText(e) }, `could not list this node's addresses: ${errorText(e)}; keeping the last known set`);
          return;
        }
        if (this.closed || sameSet(next, this.set)) continue;
        const before = this.set;
        this.set = next;
        const added = localAddressTexts(next).filter((a) => !localAddressTexts(before).includes(a));
        const removed = localAddressTexts(before).filter((a) => !localAddressTexts(next).includes(a));
        this.log.info({ added, removed }, `this node's addresses changed: added [${added.join(', ')}], removed [${removed.join(', ')}]`);
        this.emit('change', next);
      } while (this.again && !this.closed);
    })().finally(() => {
      this.reading = undefined;
    });
    return this.reading;
  }

  private schedule(): void {
    if (this.closed || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.refresh();
    }, LOCAL_ADDRESS_SETTLE_MS);
    this.timer.unref();
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.events.off('event', this.onEvent);
    this.events.off('overflow', this.onOverflow);
  }
}

/** A source whose set never changes (tests, and tools that run once). */
export function fixedLocalAddresses(set: LocalAddressSet = { ipv4: [], ipv6: [], directedBroadcasts: [] }): LocalAddressSource {
  const emitter = new EventEmitter();
  return Object.assign(emitter, { current: () => set }) as unknown as LocalAddressSource;
}
