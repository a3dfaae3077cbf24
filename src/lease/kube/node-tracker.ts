/**
 * Other nodes → lease records (docs/compatibility.md §11.6; upstream's
 * pkg/subnet/kube/kube.go handlers and nodeToLease), the pure core of the kube
 * leases watch: the informer's add/update/delete of Node objects go in, lease
 * records keyed by node name come out. The guard (../peer-lease-guard.ts)
 * then decides what is routed, with the same checks as in etcd mode; of two
 * Nodes with overlapping podCIDRs the older creationTimestamp wins, then the
 * name. No API, no clock.
 *
 * Kept from upstream: only gated nodes count (kube-subnet-manager "true");
 * a node that does not convert is skipped with a warning and never touches
 * other nodes' routes.
 * Fixed on purpose (docs/compatibility.md §12, kube mode):
 *  - an update is compared on everything its lease carries, so a change
 *    confined to one address family is not ignored;
 *  - a node whose gate annotation is removed has its routes withdrawn;
 *  - a node whose podCIDR changed moves (its record changes subnet);
 *  - a node whose newer object no longer converts keeps its last good lease.
 */
import { type Lease, type LeaseRecord, type RecordChange, sameAttrs } from '../lease';
import type { AnnotationKeys } from './annotations';
import { type Families, isFlannelNode, type KubeNode, NodeLeaseError, nodeName, nodeToLease } from './node-lease';

export interface SkippedNode {
  node: string;
  resourceVersion: string;
  reason: string;
}

/** The Node's creationTimestamp in ms (0 when absent: such a node sorts first, then by name). */
export function nodeCreatedMs(node: KubeNode): number {
  const t = node.metadata?.creationTimestamp;
  const ms = t === undefined || t === null ? NaN : new Date(t).getTime();
  return Number.isFinite(ms) ? ms : 0;
}

export class NodeLeaseTracker {
  /** The record of each peer node, by node name. */
  private readonly records = new Map<string, LeaseRecord>();

  constructor(
    private readonly ownName: string,
    private readonly families: Families,
    private readonly keys: AnnotationKeys,
    /** Told about every node that is gated but cannot be turned into a lease. */
    private readonly onSkip: (s: SkippedNode) => void,
  ) {}

  /** Every peer node's record now (the first batch a watcher gets). */
  snapshot(): LeaseRecord[] {
    return [...this.records.values()];
  }

  get size(): number {
    return this.records.size;
  }

  /** An ADDED or MODIFIED node (also an initial-list item or a relist re-delivery). */
  upsert(node: KubeNode): RecordChange[] {
    const name = nodeName(node);
    if (name === this.ownName || name === '') return [];
    const before = this.records.get(name);
    if (!isFlannelNode(node, this.keys)) return before ? this.remove(name) : [];
    let lease: Lease;
    try {
      lease = nodeToLease(node, this.families, this.keys);
    } catch (e) {
      if (!(e instanceof NodeLeaseError)) throw e;
      this.onSkip({ node: name, resourceVersion: node.metadata?.resourceVersion ?? '', reason: e.message });
      return [];
    }
    const record: LeaseRecord = { id: name, lease, since: nodeCreatedMs(node) };
    if (before && before.since === record.since && sameLease(before.lease, lease)) return [];
    this.records.set(name, record);
    return [{ type: 'put', record }];
  }

  /** A DELETED node (or one a relist no longer contains). */
  delete(node: KubeNode): RecordChange[] {
    return this.remove(nodeName(node));
  }

  private remove(name: string): RecordChange[] {
    if (!this.records.delete(name)) return [];
    return [{ type: 'delete', id: name }];
  }
}

/** Both subnets and every attribute equal (a node gaining or losing its IPv6 podCIDR is a change). */
function sameLease(a: Lease, b: Lease): boolean {
  return a.subnet.equals(b.subnet) && (a.ipv6Subnet?.toString() ?? '') === (b.ipv6Subnet?.toString() ?? '') && sameAttrs(a.attrs, b.attrs);
}
