/**
 * Which of the other nodes' lease records the backends may route, whichever
 * store they come from. Upstream routes whatever its store says; one bad
 * record can then hurt a node: a `0.0.0.0-0` lease became a default route (it
 * replaced the node's own with host-gw; with udp every packet went to that
 * peer), a lease overlapping the node's own subnet was routed away from it,
 * a PublicIP that is the node's own address made udp datagrams loop. This
 * guard stands between the stores' watches (RecordBatch) and the backends
 * (LeaseEvent), and routes a record only when, for each enabled address
 * family separately:
 *
 *  - its subnet lies inside the family's network (Network, IPv6Network);
 *  - it does not overlap this node's own subnet (never routed);
 *  - its public address is one a peer can have: not unspecified, loopback,
 *    multicast, the limited broadcast, the external interface's directed
 *    broadcast, or an address of this node;
 *  - it does not overlap a record chosen before it. Records are taken in a
 *    fixed order: the network's own subnet size first, then the older
 *    record, then the smaller id. The choice does not depend on the order
 *    events arrived in, so it is the same after every resync or relist.
 *
 * A family that is off is not checked (a v6-only kube cluster writes
 * PublicIP 0.0.0.0 and a 0.0.0.0/0 IPv4 part; both are fine there). The
 * IPv6 part of a record is dropped (and the rest routed) when only it fails.
 * Every refusal is logged once, naming the record and why; the log-once
 * memory is bounded (../util/repeat-log.ts).
 *
 * Pure: no store, no clock.
 */
import type { Logger } from '../log';
import type { NodeAddresses } from '../util/ip';
import { formatIpv4, Ipv4Net } from '../util/ipv4';
import { formatIpv6, Ipv6Net } from '../util/ipv6';
import { LogOnce } from '../util/repeat-log';
import { quoteForLog } from '../util/text';
import { describeLease, type Lease, type LeaseEvent, leaseKey, type LeaseRecord, type RecordBatch, sameAttrs } from './lease';
import type { NetworkConfig } from './network-config';

/** What the guard knows of this node. */
export interface GuardContext {
  network: Pick<NetworkConfig, 'enableIPv4' | 'enableIPv6' | 'network' | 'ipv6Network' | 'subnetLen' | 'ipv6SubnetLen'>;
  own: Pick<Lease, 'subnet' | 'ipv6Subnet'>;
  /** Every address of this node, and the external interface's directed broadcasts (kept current: setLocalAddresses). */
  local: NodeAddresses;
}

export interface GuardStats {
  /** Records the store holds now (other nodes'). */
  records: number;
  /** Records routed now. */
  routed: number;
  /** Records refused now, by reason. */
  refused: Record<RefusalKind, number>;
}

export type RefusalKind = 'outside_network' | 'overlaps_own_subnet' | 'overlaps_other' | 'bad_public_ip';

interface Refusal {
  kind: RefusalKind;
  reason: string;
}

const IPV4_MULTICAST = Ipv4Net.parse('224.0.0.0/4');
const IPV4_LOOPBACK = Ipv4Net.parse('127.0.0.0/8');
const IPV6_MULTICAST = Ipv6Net.tryParse('ff00::/8')!;
const IPV4_LIMITED_BROADCAST = 0xffffffff;

/** Why `ip` cannot be a peer's IPv4 PublicIP, or undefined when it can be. */
export function unusableIpv4(ip: number, local: Pick<NodeAddresses, 'ipv4' | 'directedBroadcasts'>): string | undefined {
  if (ip === 0) return 'it is 0.0.0.0';
  if (IPV4_LOOPBACK.contains(ip)) return 'it is a loopback address';
  if (IPV4_MULTICAST.contains(ip)) return 'it is a multicast address';
  if (ip === IPV4_LIMITED_BROADCAST) return 'it is the limited broadcast address';
  if (local.directedBroadcasts.includes(ip)) return "it is the external interface's broadcast address";
  if (local.ipv4.includes(ip)) return "it is this node's own address";
  return undefined;
}

/** Why `ip` cannot be a peer's PublicIPv6, or undefined when it can be. */
export function unusableIpv6(ip: bigint, local: Pick<NodeAddresses, 'ipv6'>): string | undefined {
  if (ip === 0n) return 'it is ::';
  if (ip === 1n) return 'it is the loopback address';
  if (IPV6_MULTICAST.contains(ip)) return 'it is a multicast address';
  if (local.ipv6.includes(ip)) return "it is this node's own address";
  return undefined;
}

/** A record as routed: the lease the backends get (possibly without its IPv6 part). */
interface Routed {
  record: LeaseRecord;
  lease: Lease;
}

export class PeerLeaseGuard {
  private readonly records = new Map<string, LeaseRecord>();
  /** What the backends were last told, by IPv4 subnet. */
  private routed = new Map<string, Routed>();
  private readonly logged = new LogOnce();
  private delivered = false;
  readonly stats: GuardStats = { records: 0, routed: 0, refused: { outside_network: 0, overlaps_own_subnet: 0, overlaps_other: 0, bad_public_ip: 0 } };

  constructor(
    private readonly ctx: GuardContext,
    private readonly onEvents: (events: LeaseEvent[]) => void,
    private readonly log: Logger,
  ) {}

  /** Takes a batch from the store's watch; hands the backends what changed in the routed set (the first time even when nothing). */
  apply(batch: RecordBatch): LeaseEvent[] {
    if (batch.kind === 'snapshot') {
      this.records.clear();
      for (const r of batch.records) this.records.set(r.id, r);
    } else {
      for (const c of batch.changes) {
        if (c.type === 'put') this.records.set(c.record.id, c.record);
        else this.records.delete(c.id);
      }
    }
    return this.rechoose();
  }

  /** This node's addresses changed: records are checked again, and the backends told what that changed. */
  setLocalAddresses(local: NodeAddresses): LeaseEvent[] {
    this.ctx.local = local;
    if (!this.delivered) return [];
    return this.rechoose();
  }

  private rechoose(): LeaseEvent[] {
    const next = this.choose();
    const events = this.diff(next);
    this.routed = next;
    if (events.length > 0 || !this.delivered) this.onEvents(events);
    this.delivered = true;
    return events;
  }

  /** The routed records, by IPv4 subnet: a pure function of the records held. */
  private choose(): Map<string, Routed> {
    const { network } = this.ctx;
    const refusedNow: GuardStats['refused'] = { outside_network: 0, overlaps_own_subnet: 0, overlaps_other: 0, bad_public_ip: 0 };
    const candidates: Routed[] = [];
    for (const record of this.records.values()) {
      const checked = this.check(record);
      if ('refusal' in checked) {
        refusedNow[checked.refusal.kind]++;
        this.refuse(record, checked.refusal);
        continue;
      }
      candidates.push({ record, lease: checked.lease });
    }
    const preferred = (r: Routed): number => (network.enableIPv4 && r.lease.subnet.prefixLen === network.subnetLen ? 0 : 1);
    candidates.sort((a, b) => preferred(a) - preferred(b) || a.record.since - b.record.since || (a.record.id < b.record.id ? -1 : a.record.id > b.record.id ? 1 : 0));
    const out = new Map<string, Routed>();
    const taken: Routed[] = [];
    for (const c of candidates) {
      let lease = c.lease;
      const v4 = network.enableIPv4 ? taken.find((t) => t.lease.subnet.overlaps(lease.subnet)) : undefined;
      if (v4) {
        refusedNow.overlaps_other++;
        this.refuse(c.record, { kind: 'overlaps_other', reason: `its subnet ${lease.subnet.toString()} overlaps ${describeRecord(v4.record)}, which is routed (it is older, or of the network's subnet size)` });
        continue;
      }
      const v6 = lease.ipv6Subnet && network.enableIPv6 ? taken.find((t) => t.lease.ipv6Subnet !== undefined && t.lease.ipv6Subnet.overlaps(lease.ipv6Subnet!)) : undefined;
      if (v6) {
        if (!network.enableIPv4) {
          refusedNow.overlaps_other++;
          this.refuse(c.record, { kind: 'overlaps_other', reason: `its IPv6 subnet ${lease.ipv6Subnet!.toString()} overlaps ${describeRecord(v6.record)}, which is routed` });
          continue;
        }
        this.refuse(c.record, { kind: 'overlaps_other', reason: `its IPv6 subnet ${lease.ipv6Subnet!.toString()} overlaps ${describeRecord(v6.record)}; only its IPv4 part is routed` });
        lease = withoutIpv6(lease);
      }
      const routed = { record: c.record, lease };
      taken.push(routed);
      out.set(leaseKey(c.lease), routed);
    }
    this.stats.records = this.records.size;
    this.stats.routed = out.size;
    this.stats.refused = refusedNow;
    return out;
  }

  /** The record's lease as it may be routed, or why it may not. */
  private check(record: LeaseRecord): { lease: Lease } | { refusal: Refusal } {
    const { network, own } = this.ctx;
    let lease = record.lease;
    if (network.enableIPv4) {
      const subnet = lease.subnet.canonical();
      if (!network.network || !network.network.containsNet(subnet)) {
        return { refusal: { kind: 'outside_network', reason: `its subnet ${subnet.toString()} is not inside the Network ${network.network?.toString() ?? '(none)'}` } };
      }
      if (subnet.overlaps(own.subnet.canonical())) {
        return { refusal: { kind: 'overlaps_own_subnet', reason: `its subnet ${subnet.toString()} overlaps this node's own subnet ${own.subnet.canonical().toString()}` } };
      }
      const bad = unusableIpv4(lease.attrs.publicIp, this.ctx.local);
      if (bad) return { refusal: { kind: 'bad_public_ip', reason: `its PublicIP ${formatIpv4(lease.attrs.publicIp)} cannot be a peer's: ${bad}` } };
    }
    if (network.enableIPv6 && lease.ipv6Subnet) {
      const refusal = this.checkIpv6(lease);
      if (refusal && !network.enableIPv4) return { refusal };
      if (refusal) {
        this.refuse(record, { kind: refusal.kind, reason: `${refusal.reason}; only its IPv4 part is routed` });
        lease = withoutIpv6(lease);
      }
    }
    return { lease };
  }

  /** The IPv6 part's checks (the same as IPv4's, against IPv6Network and PublicIPv6). */
  private checkIpv6(lease: Lease): Refusal | undefined {
    const { network, own } = this.ctx;
    const subnet6 = lease.ipv6Subnet!.canonical();
    if (!network.ipv6Network || !network.ipv6Network.containsNet(subnet6)) {
      return { kind: 'outside_network', reason: `its IPv6 subnet ${subnet6.toString()} is not inside the IPv6Network ${network.ipv6Network?.toString() ?? '(none)'}` };
    }
    if (own.ipv6Subnet && subnet6.overlaps(own.ipv6Subnet.canonical())) {
      return { kind: 'overlaps_own_subnet', reason: `its IPv6 subnet ${subnet6.toString()} overlaps this node's own ${own.ipv6Subnet.canonical().toString()}` };
    }
    const ip6 = lease.attrs.publicIpv6;
    const bad = ip6 === undefined ? undefined : unusableIpv6(ip6, this.ctx.local);
    if (bad) return { kind: 'bad_public_ip', reason: `its PublicIPv6 ${formatIpv6(ip6!)} cannot be a peer's: ${bad}` };
    return undefined;
  }

  private refuse(record: LeaseRecord, r: Refusal): void {
    if (!this.logged.first(`${record.id}\u0000${record.since}\u0000${r.reason}`)) return;
    this.log.warn({ record: quoteForLog(record.id), refusal: r.kind }, `Ignoring lease ${describeRecord(record)}: ${r.reason}; it is not routed (other leases are unaffected)`);
  }

  /** Removed subnets first, then added or changed ones (a subnet moving between records is one "added"). */
  private diff(next: Map<string, Routed>): LeaseEvent[] {
    const events: LeaseEvent[] = [];
    for (const [subnet, was] of this.routed) {
      if (!next.has(subnet)) events.push({ type: 'removed', lease: was.lease });
    }
    for (const [subnet, now] of next) {
      const was = this.routed.get(subnet);
      if (!was || was.record.since !== now.record.since || !sameRoutedLease(was.lease, now.lease)) {
        events.push({ type: 'added', lease: now.lease, since: now.record.since });
      }
    }
    return events;
  }
}

function withoutIpv6(l: Lease): Lease {
  return { ...l, ipv6Subnet: undefined, attrs: { ...l.attrs, publicIpv6: undefined, backendV6Data: undefined } };
}

function sameRoutedLease(a: Lease, b: Lease): boolean {
  return a.subnet.canonical().equals(b.subnet.canonical()) && (a.ipv6Subnet?.canonical().toString() ?? '') === (b.ipv6Subnet?.canonical().toString() ?? '') && sameAttrs(a.attrs, b.attrs);
}

function describeRecord(r: LeaseRecord): string {
  return `${quoteForLog(r.id)} (${describeLease(r.lease)})`;
}
