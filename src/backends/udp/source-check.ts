/**
 * Turns the datapath's refusals (native/core/forwarding.h IngressPolicy) into
 * log lines: the first datagram refused from each sender for each reason is
 * logged once, naming the inner addresses and the option that would accept
 * it when the traffic is legitimate. Memory is bounded: the pairs logged are
 * remembered up to MAX_REMEMBERED (the oldest forgotten first), and a
 * summary (counts by reason from the datapath's counters, and the newest
 * refusals) is logged every SUMMARY_INTERVAL_MS while refusals go on, so a
 * flood of distinct senders, or an attack after one, is never silent.
 * Refusals are never answered on the wire.
 */
import type { Refusal } from '../../forwarder/udp-forwarder';
import type { Logger } from '../../logging';
import { BoundedSet } from '../../util/repeat-log';

export interface RefusalFeed {
  /** Refusals newly seen since the last call (the datapath reports each sender and reason once while it remembers it). */
  drainRefusals(): Refusal[];
  /** The datapath's counters (the ingress_drop_* of REFUSAL_REASONS). */
  stats(): { get(name: Refusal['reason']): number };
}

/** The (sender, reason) pairs remembered as logged; the oldest is forgotten first. */
export const MAX_REMEMBERED = 4096;
/** How often a summary is logged while datagrams are refused. */
export const SUMMARY_INTERVAL_MS = 60_000;
/** The newest refusals a summary quotes. */
const SUMMARY_EXAMPLES = 5;

/** The refusal reasons, as their drop counters are named. */
export const REFUSAL_REASONS: readonly Refusal['reason'][] = [
  'ingress_drop_unknown_source',
  'ingress_drop_spoofed_source',
  'ingress_drop_foreign_destination',
  'ingress_drop_martian_source',
  'ingress_drop_ipv6_sender_incapable',
];

/** The log line's reason field: the drop counter's name without the direction prefix. */
export function refusalReason(r: Refusal): string {
  return r.reason.replace(/^ingress_drop_/, '');
}

/** Why the datagram was refused and what to set if it is legitimate. */
export function refusalMessage(r: Refusal): string {
  const inner = `${r.innerSource ?? '?'} -> ${r.innerDestination ?? '?'}`;
  switch (r.reason) {
    case 'ingress_drop_unknown_source':
      return (
        `udp backend dropped a datagram from ${r.sender}: it is not the PublicIP of any known peer ` +
        '(further drops from it are only counted). If your nodes send from an address other than ' +
        'their PublicIP (NAT, several addresses), set "SourceCheck": false in the udp Backend config.'
      );
    case 'ingress_drop_spoofed_source':
      return (
        `udp backend dropped a packet ${inner} from peer ${r.sender}: its source is neither that peer's ` +
        'PublicIP nor in a subnet leased to it, so it may be forged (further drops are only counted). ' +
        'If that peer routes clients from outside the Network to pods without masquerading them ' +
        '(-ip-masq off), set "AllowExternalSources": true in the udp Backend config; if nodes reach ' +
        'each other through NAT, set "SourceCheck": false.'
      );
    case 'ingress_drop_ipv6_sender_incapable':
      return (
        `udp backend dropped an IPv6 packet from peer ${r.sender}: its lease does not say it carries IPv6 ` +
        '(further drops are only counted). An upstream flanneld node carries IPv4 only; a flannel-ts node ' +
        'advertises "ipv6" when its network config has EnableIPv6, so check that every node runs with the same config.'
      );
    case 'ingress_drop_martian_source':
      return (
        `udp backend dropped a packet ${inner} from peer ${r.sender}: its source is a loopback, link-local, ` +
        "multicast, reserved or IPv4-mapped address, or one of this node's own, which no overlay packet may carry " +
        '(further drops are only counted; no option accepts these).'
      );
    case 'ingress_drop_foreign_destination':
      return (
        `udp backend dropped a packet ${inner} from peer ${r.sender}: its destination is not in this ` +
        "node's subnet (further drops are only counted). A peer that still routes an old subnet of " +
        'this node here corrects itself when it sees the current lease; otherwise the packet is forged.'
      );
  }
}

function describeRefusal(r: Refusal): string {
  return `${r.sender}: ${refusalReason(r)}${r.innerSource !== undefined ? ` ${r.innerSource} -> ${r.innerDestination}` : ''}`;
}

export class RefusalReporter {
  /** Pairs logged (the oldest forgotten first). */
  private readonly logged = new BoundedSet<string>(MAX_REMEMBERED);
  private readonly newest: Refusal[] = [];
  private lastCounts: Record<string, number>;
  private nextSummaryAt: number;

  constructor(
    private readonly feed: RefusalFeed,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {
    this.lastCounts = this.counts();
    this.nextSummaryAt = now() + SUMMARY_INTERVAL_MS;
  }

  private counts(): Record<string, number> {
    const stats = this.feed.stats();
    return Object.fromEntries(REFUSAL_REASONS.map((r) => [r, stats.get(r)]));
  }

  /** Logs the refusals reported since the last poll, and the summary when it is due; returns how many were logged on their own. */
  poll(): number {
    let fresh = 0;
    for (const r of this.feed.drainRefusals()) {
      this.newest.push(r);
      if (this.newest.length > SUMMARY_EXAMPLES) this.newest.shift();
      if (!this.logged.add(`${r.sender} ${r.reason}`)) continue;
      fresh++;
      this.log.warn(
        {
          source: r.sender,
          reason: refusalReason(r),
          ...(r.innerSource !== undefined ? { innerSource: r.innerSource, innerDestination: r.innerDestination } : {}),
        },
        refusalMessage(r),
      );
    }
    if (this.now() >= this.nextSummaryAt) this.summarize();
    return fresh;
  }

  /** Logs how many datagrams were refused since the last summary, by reason, with the newest; nothing when none were. */
  summarize(): void {
    this.nextSummaryAt = this.now() + SUMMARY_INTERVAL_MS;
    const counts = this.counts();
    const delta: Record<string, number> = {};
    let total = 0;
    for (const reason of REFUSAL_REASONS) {
      const d = counts[reason]! - (this.lastCounts[reason] ?? 0);
      if (d > 0) {
        delta[reason.replace(/^ingress_drop_/, '')] = d;
        total += d;
      }
    }
    this.lastCounts = counts;
    if (total === 0) return;
    const newest = this.newest.map(describeRefusal);
    this.log.warn(
      { refused: delta, newest },
      `udp backend refused ${total} datagram(s) since the last summary: ${Object.entries(delta).map(([k, v]) => `${k} ${v}`).join(', ')}; ` +
        `newest: ${newest.join('; ')}`,
    );
  }
}
