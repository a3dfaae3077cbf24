/**
 * Turns the datapath's refusals (native/core/forwarding.h IngressPolicy) into
 * log lines: the first datagram refused from each sender for each reason is
 * logged once, naming the inner addresses and the option that would accept
 * it when the traffic is legitimate. Refusals are never answered on the wire.
 */
import type { Refusal } from '../../forwarder/udp-forwarder';
import type { Logger } from '../../log';

export interface RefusalFeed {
  /** Refusals newly seen since the last call (the datapath reports each sender and reason once). */
  drainRefusals(): Refusal[];
}

/** Remembered (sender, reason) pairs, so a datapath restart does not log them again. */
const MAX_REMEMBERED = 4096;

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
    case 'ingress_drop_foreign_destination':
      return (
        `udp backend dropped a packet ${inner} from peer ${r.sender}: its destination is not in this ` +
        "node's subnet (further drops are only counted). A peer that still routes an old subnet of " +
        'this node here corrects itself when it sees the current lease; otherwise the packet is forged.'
      );
  }
}

export class RefusalReporter {
  private readonly logged = new Set<string>();

  constructor(private readonly feed: RefusalFeed, private readonly log: Logger) {}

  /** Logs the refusals reported since the last poll; returns how many were new. */
  poll(): number {
    let fresh = 0;
    for (const r of this.feed.drainRefusals()) {
      const key = `${r.sender} ${r.reason}`;
      if (this.logged.has(key)) continue;
      if (this.logged.size < MAX_REMEMBERED) this.logged.add(key);
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
    return fresh;
  }
}
