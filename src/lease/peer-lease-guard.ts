/**
 * Which of the other nodes' lease records the backends may route, whichever
 * store they come from. Upstream routes whatever its store says; one bad
 * record can then hurt a node: a `0.0.0.0-0` lease became a default route (it
 * replaced the node's own with host-gw; with udp every packet went to that
 * peer), a lease overlapping the node's own subnet was routed away from it,
 * a PublicIP that is the node's own address made udp datagrams loop, a
 * reused VtepMAC re-pointed another node's FDB entry. The rule: a record
 * that a buggy or hostile node writes may cost that record its own routes,
 * never another node's traffic, and never this node's own subnet.
 *
 * This guard stands between the stores' watches (RecordBatch) and the
 * backends (LeaseEvent), and routes a record only when, for each enabled
 * address family separately:
 *
 *  - its subnet lies inside the family's network (Network, IPv6Network);
 *  - it does not overlap this node's own subnet (never routed);
 *  - its public address is one a peer can have: not unspecified, loopback,
 *    multicast, link-local (IPv6), IPv4-mapped (IPv6), the limited broadcast,
 *    the external interface's directed broadcast, an address inside the
 *    family's network (a node that advertises its cni0 address would loop
 *    its own encapsulated packets), or an address of this node (kept
 *    current: setLocalAddresses);
 *  - its backend identity (vxlan's VtepMAC, wireguard's PublicKey:
 *    ./peer-identity.ts) is one a machine can have;
 *  - it does not overlap a record chosen before it, and no record chosen
 *    before it with another public address has its identity. Records are
 *    taken in a fixed order: the network's own subnet size first, then the
 *    older record (etcd create revision, the Node's creationTimestamp), then
 *    the smaller id. The choice does not depend on the order events arrived
 *    in, so it is the same on every node and after every resync or relist.
 *
 * A family that is off is not checked (a v6-only kube cluster writes
 * PublicIP 0.0.0.0 and a 0.0.0.0/0 IPv4 part; both are fine there). The
 * IPv6 part of a record is dropped (and the rest routed) when only it fails.
 *
 * Memory and logs stay bounded whatever the store holds: a record refused
 * on its own is kept as its id, a digest of its contents and the reason (not
 * its data); each record's contents are digested and its identity parsed
 * once, when it arrives; a refusal is logged once per record contents and
 * reason (a relist of unchanged records logs nothing), and
 * refusedSummary() gives the counts for a periodic line.
 *
 * Pure: no store, no clock.
 */
import { createHash } from 'node:crypto';
import type { Logger } from '../logging';
import type { NodeAddresses } from '../util/ip';
import { formatIpv4, Ipv4Net } from '../util/ipv4';
import { formatIpv6, Ipv6Net } from '../util/ipv6';
import { quoteForLog } from '../util/text';
import { describeLease, type Lease, type LeaseEvent, leaseKey, type LeaseRecord, type RecordBatch } from './lease';
import type { NetworkConfig } from './network-config';
import { type PeerIdentity, peerIdentities } from './peer-identity';

/** What the guard knows of this node. */
export interface GuardContext {
  network: Pick<NetworkConfig, 'enableIPv4' | 'enableIPv6' | 'network' | 'ipv6Network' | 'subnetLen' | 'ipv6SubnetLen' | 'backendType'>;
  own: Pick<Lease, 'subnet' | 'ipv6Subnet'>;
  /** Every address of this node, and the external interface's directed broadcasts (kept current: setLocalAddresses). */
  local: NodeAddresses;
}

export type RefusalKind =
  | 'outside_network'
  | 'overlaps_own_subnet'
  | 'overlaps_other'
  | 'bad_public_ip'
  | 'own_address'
  | 'bad_identity'
  | 'duplicate_identity';

export const REFUSAL_KINDS: readonly RefusalKind[] = ['outside_network', 'overlaps_own_subnet', 'overlaps_other', 'bad_public_ip', 'own_address', 'bad_identity', 'duplicate_identity'];

export interface GuardStats {
  /** Records the store holds now (other nodes'). */
  records: number;
  /** Records routed now. */
  routed: number;
  /** Records refused now, by reason. */
  refused: Record<RefusalKind, number>;
}

interface Refusal {
  kind: RefusalKind;
  reason: string;
}

/** A record as the guard keeps it. */
interface Held {
  id: string;
  since: number;
  /** A digest of what the record says: an unchanged record is not checked or logged again. */
  digest: string;
}

/** A record that passed the checks of its own: it competes for its subnets. */
interface Candidate extends Held {
  /** The record's lease as stored, and as it may be routed (its IPv6 part dropped when only that failed). */
  source: Lease;
  lease: Lease;
  identities: PeerIdentity[];
  /** The conflict refusals already logged for these contents. */
  logged: Set<string>;
}

/** A record refused on its own: nothing of its data is kept. */
interface Refused extends Held {
  refusal: Refusal;
}

const IPV4_MULTICAST = Ipv4Net.parse('224.0.0.0/4');
const IPV4_LOOPBACK = Ipv4Net.parse('127.0.0.0/8');
const IPV6_MULTICAST = Ipv6Net.tryParse('ff00::/8')!;
const IPV6_LINK_LOCAL = Ipv6Net.tryParse('fe80::/10')!;
const IPV6_V4_MAPPED = Ipv6Net.tryParse('::ffff:0:0/96')!;
const IPV4_LIMITED_BROADCAST = 0xffffffff;

type Unusable = { kind: 'bad_public_ip' | 'own_address'; why: string } | undefined;

/** Why `ip` cannot be a peer's IPv4 PublicIP, or undefined when it can be. */
export function unusableIpv4(ip: number, local: Pick<NodeAddresses, 'ipv4' | 'directedBroadcasts'>, network?: Ipv4Net): Unusable {
  const bad = (why: string): Unusable => ({ kind: 'bad_public_ip', why });
  if (ip === 0) return bad('it is 0.0.0.0');
  if (IPV4_LOOPBACK.contains(ip)) return bad('it is a loopback address');
  if (IPV4_MULTICAST.contains(ip)) return bad('it is a multicast address');
  if (ip === IPV4_LIMITED_BROADCAST) return bad('it is the limited broadcast address');
  if (network?.contains(ip)) return bad(`it is inside the Network ${network.toString()} (an overlay address, such as a cni0 address, cannot carry the overlay)`);
  if (local.directedBroadcasts.includes(ip)) return { kind: 'own_address', why: "it is the external interface's broadcast address" };
  if (local.ipv4.includes(ip)) return { kind: 'own_address', why: "it is this node's own address" };
  return undefined;
}

/** Why `ip` cannot be a peer's PublicIPv6, or undefined when it can be. Unique-local addresses are fine. */
export function unusableIpv6(ip: bigint, local: Pick<NodeAddresses, 'ipv6'>, network?: Ipv6Net): Unusable {
  const bad = (why: string): Unusable => ({ kind: 'bad_public_ip', why });
  if (ip === 0n) return bad('it is ::');
  if (ip === 1n) return bad('it is the loopback address');
  if (IPV6_MULTICAST.contains(ip)) return bad('it is a multicast address');
  if (IPV6_LINK_LOCAL.contains(ip)) return bad('it is a link-local address (it names no single machine across links)');
  if (IPV6_V4_MAPPED.contains(ip)) return bad('it is an IPv4-mapped address');
  if (network?.contains(ip)) return bad(`it is inside the IPv6Network ${network.toString()}`);
  if (local.ipv6.includes(ip)) return { kind: 'own_address', why: "it is this node's own address" };
  return undefined;
}

/** What a record says, digested (24 base64 characters of SHA-256): equal digests, equal records. */
function digestOf(r: LeaseRecord): string {
  const { lease } = r;
  const a = lease.attrs;
  const text = [lease.subnet.toString(), lease.ipv6Subnet?.toString() ?? '', a.publicIp, a.publicIpv6?.toString() ?? '', a.backendType, a.backendData ?? '\u0000', a.backendV6Data ?? '\u0000'].join('\u0001');
  return createHash('sha256').update(text).digest('base64').slice(0, 24);
}

/** A record as routed: the lease the backends get (possibly without its IPv6 part). */
interface Routed {
  candidate: Candidate;
  lease: Lease;
  /** The candidate's digest, marked when the IPv6 part was dropped. */
  digest: string;
}

export class PeerLeaseGuard {
  private records = new Map<string, Candidate | Refused>();
  /** What the backends were last told, by lease key. */
  private routed = new Map<string, Routed>();
  private delivered = false;
  readonly stats: GuardStats = { records: 0, routed: 0, refused: zeroCounts() };
  /** Called when records refused on their own may need checking again (this node's addresses changed): the store re-lists. */
  onResyncNeeded: ((reason: string) => void) | undefined;

  constructor(
    private readonly ctx: GuardContext,
    private readonly onEvents: (events: LeaseEvent[]) => void,
    private readonly log: Logger,
  ) {}

  /** Takes a batch from the store's watch; hands the backends what changed in the routed set (the first time even when nothing). */
  apply(batch: RecordBatch): LeaseEvent[] {
    if (batch.kind === 'snapshot') {
      const next = new Map<string, Candidate | Refused>();
      for (const r of batch.records) next.set(r.id, this.admit(r, this.records.get(r.id)));
      this.records = next;
    } else {
      for (const c of batch.changes) {
        if (c.type === 'put') this.records.set(c.record.id, this.admit(c.record, this.records.get(c.record.id)));
        else this.records.delete(c.id);
      }
    }
    return this.rechoose();
  }

  /**
   * This node's addresses changed: routed records are checked again now;
   * records refused on their own are checked when the store re-lists them
   * (onResyncNeeded), since their data is not kept.
   */
  setLocalAddresses(local: NodeAddresses): LeaseEvent[] {
    this.ctx.local = local;
    for (const [id, held] of this.records) {
      if ('refusal' in held) continue;
      const checked = this.check(held.source);
      if ('refusal' in checked) this.records.set(id, this.refuse(held, checked.refusal, held.source));
      else held.lease = checked.lease;
    }
    if ([...this.records.values()].some((h) => 'refusal' in h && h.refusal.kind === 'own_address')) {
      this.onResyncNeeded?.("this node's addresses changed");
    }
    if (!this.delivered) return [];
    return this.rechoose();
  }

  /** The records refused now, by reason, for a periodic log line; undefined when none is. */
  refusedSummary(): string | undefined {
    const parts = REFUSAL_KINDS.filter((k) => this.stats.refused[k] > 0).map((k) => `${k} ${this.stats.refused[k]}`);
    return parts.length === 0 ? undefined : parts.join(', ');
  }

  /**
   * A record as kept: the previous entry when its contents did not change
   * (a record refused because of this node's addresses is checked again:
   * they may have changed), else checked; a new refusal is logged.
   */
  private admit(record: LeaseRecord, previous: Candidate | Refused | undefined): Candidate | Refused {
    const digest = digestOf(record);
    const same = previous !== undefined && previous.digest === digest && previous.since === record.since;
    if (same && !('refusal' in previous && previous.refusal.kind === 'own_address')) return previous;
    const held: Held = { id: record.id, since: record.since, digest };
    const checked = this.check(record.lease);
    if ('refusal' in checked) {
      if (same && 'refusal' in previous && previous.refusal.reason === checked.refusal.reason) return previous;
      return this.refuse(held, checked.refusal, record.lease);
    }
    const ids = peerIdentities(this.ctx.network.backendType, checked.lease.attrs);
    if (!ids.ok) return this.refuse(held, { kind: 'bad_identity', reason: ids.reason }, record.lease);
    return { ...held, source: record.lease, lease: checked.lease, identities: ids.identities, logged: new Set() };
  }

  private refuse(held: Held, refusal: Refusal, lease?: Lease): Refused {
    this.log.warn(
      { record: quoteForLog(held.id), refusal: refusal.kind },
      `Ignoring lease ${describeRecord(held.id, lease)}: ${refusal.reason}; it is not routed (other leases are unaffected)`,
    );
    return { id: held.id, since: held.since, digest: held.digest, refusal };
  }

  private rechoose(): LeaseEvent[] {
    const next = this.choose();
    const events = this.diff(next);
    this.routed = next;
    if (events.length > 0 || !this.delivered) this.onEvents(events);
    this.delivered = true;
    return events;
  }

  /** The routed records, by lease key: a pure function of the records held. */
  private choose(): Map<string, Routed> {
    const { network } = this.ctx;
    const refusedNow = zeroCounts();
    const candidates: Candidate[] = [];
    for (const held of this.records.values()) {
      if ('refusal' in held) refusedNow[held.refusal.kind]++;
      else candidates.push(held);
    }
    const preferred = (c: Candidate): number => (network.enableIPv4 && c.lease.subnet.prefixLen === network.subnetLen ? 0 : 1);
    candidates.sort((a, b) => preferred(a) - preferred(b) || a.since - b.since || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    const out = new Map<string, Routed>();
    const taken: Routed[] = [];
    const identityOwners = new Map<string, Routed>();
    for (const c of candidates) {
      let lease = c.lease;
      const v4 = network.enableIPv4 ? taken.find((t) => t.lease.subnet.overlaps(lease.subnet)) : undefined;
      if (v4) {
        refusedNow.overlaps_other++;
        this.refuseOnce(c, { kind: 'overlaps_other', reason: `its subnet ${lease.subnet.toString()} overlaps ${describeRecord(v4.candidate.id, v4.lease)}, which is routed (it is older, or of the network's subnet size)` });
        continue;
      }
      const clash = this.identityClash(c, identityOwners);
      if (clash) {
        refusedNow.duplicate_identity++;
        this.refuseOnce(c, { kind: 'duplicate_identity', reason: clash });
        continue;
      }
      const v6 = lease.ipv6Subnet && network.enableIPv6 ? taken.find((t) => t.lease.ipv6Subnet !== undefined && t.lease.ipv6Subnet.overlaps(lease.ipv6Subnet!)) : undefined;
      if (v6) {
        if (!network.enableIPv4) {
          refusedNow.overlaps_other++;
          this.refuseOnce(c, { kind: 'overlaps_other', reason: `its IPv6 subnet ${lease.ipv6Subnet!.toString()} overlaps ${describeRecord(v6.candidate.id, v6.lease)}, which is routed` });
          continue;
        }
        this.refuseOnce(c, { kind: 'overlaps_other', reason: `its IPv6 subnet ${lease.ipv6Subnet!.toString()} overlaps ${describeRecord(v6.candidate.id, v6.lease)}; only its IPv4 part is routed` });
        lease = withoutIpv6(lease);
      }
      // The same record routed with and without its IPv6 part are different routes.
      const routed: Routed = { candidate: c, lease, digest: lease.ipv6Subnet === undefined && c.source.ipv6Subnet !== undefined ? `${c.digest}-v4` : c.digest };
      taken.push(routed);
      for (const id of c.identities) if (!identityOwners.has(identityKey(id))) identityOwners.set(identityKey(id), routed);
      out.set(leaseKey(c.lease), routed);
    }
    this.stats.records = this.records.size;
    this.stats.routed = out.size;
    this.stats.refused = refusedNow;
    return out;
  }

  /** Why `c` may not have an identity a record chosen before it has (with another public address), or undefined. */
  private identityClash(c: Candidate, owners: ReadonlyMap<string, Routed>): string | undefined {
    for (const id of c.identities) {
      const owner = owners.get(identityKey(id));
      if (!owner) continue;
      const ownerAddress = id.family === 6 ? owner.lease.attrs.publicIpv6 : owner.lease.attrs.publicIp;
      const address = id.family === 6 ? c.lease.attrs.publicIpv6 : c.lease.attrs.publicIp;
      if (ownerAddress === address) continue; // one machine with two records: nothing is redirected
      return `its ${id.name} ${id.value} is that of ${describeRecord(owner.candidate.id, owner.lease)}, which is routed (the older record keeps it)`;
    }
    return undefined;
  }

  /** Logs a refusal that depends on other records once per record contents. */
  private refuseOnce(c: Candidate, r: Refusal): void {
    if (c.logged.has(r.reason)) return;
    c.logged.add(r.reason);
    this.log.warn({ record: quoteForLog(c.id), refusal: r.kind }, `Ignoring lease ${describeRecord(c.id, c.lease)}: ${r.reason}; it is not routed (other leases are unaffected)`);
  }

  /** The record's lease as it may be routed, or why it may not. */
  private check(source: Lease): { lease: Lease } | { refusal: Refusal } {
    const { network, own } = this.ctx;
    let lease = source;
    if (network.enableIPv4) {
      const subnet = lease.subnet.canonical();
      if (!network.network || !network.network.containsNet(subnet)) {
        return { refusal: { kind: 'outside_network', reason: `its subnet ${subnet.toString()} is not inside the Network ${network.network?.toString() ?? '(none)'}` } };
      }
      if (subnet.overlaps(own.subnet.canonical())) {
        return { refusal: { kind: 'overlaps_own_subnet', reason: `its subnet ${subnet.toString()} overlaps this node's own subnet ${own.subnet.canonical().toString()}` } };
      }
      const bad = unusableIpv4(lease.attrs.publicIp, this.ctx.local, network.network);
      if (bad) return { refusal: { kind: bad.kind, reason: `its PublicIP ${formatIpv4(lease.attrs.publicIp)} cannot be a peer's: ${bad.why}` } };
    }
    if (network.enableIPv6 && lease.ipv6Subnet) {
      const refusal = this.checkIpv6(lease);
      if (refusal && !network.enableIPv4) return { refusal };
      if (refusal) {
        this.log.warn({ refusal: refusal.kind }, `Ignoring the IPv6 part of lease ${describeLease(lease)}: ${refusal.reason}; only its IPv4 part is routed`);
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
    const bad = ip6 === undefined ? undefined : unusableIpv6(ip6, this.ctx.local, network.ipv6Network);
    if (bad) return { kind: bad.kind, reason: `its PublicIPv6 ${formatIpv6(ip6!)} cannot be a peer's: ${bad.why}` };
    return undefined;
  }

  /** Removed subnets first, then added or changed ones (a subnet moving between records is one "added"). */
  private diff(next: Map<string, Routed>): LeaseEvent[] {
    const events: LeaseEvent[] = [];
    for (const [key, was] of this.routed) {
      if (!next.has(key)) events.push({ type: 'removed', lease: was.lease });
    }
    for (const [key, now] of next) {
      const was = this.routed.get(key);
      if (!was || was.digest !== now.digest || was.candidate.since !== now.candidate.since) {
        events.push({ type: 'added', lease: now.lease, since: now.candidate.since });
      }
    }
    return events;
  }
}

function zeroCounts(): Record<RefusalKind, number> {
  return Object.fromEntries(REFUSAL_KINDS.map((k) => [k, 0])) as Record<RefusalKind, number>;
}

function identityKey(id: PeerIdentity): string {
  return `${id.name}/${id.family}/${id.value}`;
}

function withoutIpv6(l: Lease): Lease {
  return { ...l, ipv6Subnet: undefined, attrs: { ...l.attrs, publicIpv6: undefined, backendV6Data: undefined } };
}

function describeRecord(id: string, lease: Lease | undefined): string {
  return lease ? `${quoteForLog(id)} (${describeLease(lease)})` : quoteForLog(id);
}
