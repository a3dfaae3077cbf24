/**
 * The other nodes' leases, whichever store reports them: the pure core of
 * watching leases (upstream's pkg/lease/lease.go, LeaseWatcher). It holds the
 * known remote leases and turns snapshots and changes into "added"/"removed"
 * batches for the backends. No store, no clock.
 *
 * Upstream semantics kept:
 *  - the own lease is never reported (compared by subnet);
 *  - an incremental PUT replaces-or-appends by subnet and is emitted as "added";
 *  - a removal is emitted with the *stored* lease, so backends see the old
 *    attributes (PublicIP, VtepMAC) they need to clean up.
 * Fixed on purpose:
 *  - a snapshot re-emits "added" for a lease whose attributes changed
 *    (upstream only diffs by subnet, so it misses a PublicIP or MAC that
 *    changed while the watch was behind a compaction);
 *  - a removal of an unknown subnet emits nothing (upstream emitted an empty
 *    lease that backends cannot act on);
 *  - bad keys and values never reach this class: the registry skips them
 *    (upstream withdrew every route on one bad key), so nothing here can
 *    withdraw unrelated leases.
 */
import { type Lease, type LeaseEvent, sameAttrs, sameSubnets } from './lease';

export type LeaseChange =
  | { type: 'put'; lease: Lease }
  | { type: 'delete'; subnet: Lease['subnet']; ipv6Subnet: Lease['ipv6Subnet'] };

export class RemoteLeaseSet {
  private known: Lease[] = [];

  constructor(private readonly own: Pick<Lease, 'subnet' | 'ipv6Subnet'>) {}

  /** The remote leases currently known. */
  get leases(): readonly Lease[] {
    return this.known;
  }

  private isOwn(l: Pick<Lease, 'subnet' | 'ipv6Subnet'>): boolean {
    return sameSubnets(l, this.own);
  }

  /** A full snapshot: returns what changed since the known set, and adopts the snapshot. */
  reset(snapshot: readonly Lease[]): LeaseEvent[] {
    const remote = snapshot.filter((l) => !this.isOwn(l));
    const events: LeaseEvent[] = [];
    for (const l of remote) {
      const before = this.known.find((k) => sameSubnets(k, l));
      if (!before || !sameAttrs(before.attrs, l.attrs)) events.push({ type: 'added', lease: l });
    }
    for (const k of this.known) {
      if (!remote.some((l) => sameSubnets(k, l))) events.push({ type: 'removed', lease: k });
    }
    this.known = [...remote];
    return events;
  }

  /** Incremental changes from the watch, in order. */
  update(changes: readonly LeaseChange[]): LeaseEvent[] {
    const events: LeaseEvent[] = [];
    for (const c of changes) {
      if (c.type === 'put') {
        if (this.isOwn(c.lease)) continue;
        const i = this.known.findIndex((k) => sameSubnets(k, c.lease));
        if (i >= 0) this.known[i] = c.lease;
        else this.known.push(c.lease);
        events.push({ type: 'added', lease: c.lease });
      } else {
        if (this.isOwn(c)) continue;
        const i = this.known.findIndex((k) => sameSubnets(k, c));
        if (i < 0) continue;
        const [stored] = this.known.splice(i, 1);
        events.push({ type: 'removed', lease: stored! });
      }
    }
    return events;
  }
}
