/**
 * Other nodes → lease events (docs/compatibility.md §11.6), the pure core of the kube
 * leases watch: the informer's add/update/delete of Node objects go in,
 * "added"/"removed" lease events for the backends come out. No API, no clock.
 *
 * Kept from upstream: only gated nodes count (kube-subnet-manager "true");
 * an update emits "added" only when what the lease carries changed; a
 * removal carries the last known lease; a node that does not convert is
 * skipped with a warning and never touches other nodes' routes.
 * Fixed on purpose (docs/compatibility.md §12, kube mode):
 *  - a change confined to one address family is not ignored (the whole lease
 *    is compared);
 *  - a node whose gate annotation is removed has its routes withdrawn;
 *  - a node whose podCIDR changed is withdrawn at the old subnet and added
 *    at the new one;
 *  - a removal uses the lease we routed, so a final object that no longer
 *    converts still withdraws it.
 */
import { describeLease, type Lease, type LeaseEvent, sameAttrs } from '../lease';
import type { AnnotationKeys } from './annotations';
import { type Families, isFlannelNode, type KubeNode, NodeLeaseError, nodeName, nodeToLease } from './node-lease';

export interface SkippedNode {
  node: string;
  resourceVersion: string;
  reason: string;
}

export class NodeLeaseTracker {
  /** The lease routed for each peer node, by node name. */
  private readonly leases = new Map<string, Lease>();

  constructor(
    private readonly ownName: string,
    private readonly families: Families,
    private readonly keys: AnnotationKeys,
    /** Told about every node that is gated but cannot be turned into a lease. */
    private readonly onSkip: (s: SkippedNode) => void,
  ) {}

  /** The leases currently known, as a snapshot of "added" events (the first batch a watcher gets). */
  snapshot(): LeaseEvent[] {
    return [...this.leases.values()].map((lease) => ({ type: 'added', lease }));
  }

  get size(): number {
    return this.leases.size;
  }

  /** An ADDED or MODIFIED node (also an initial-list item or a relist re-delivery). */
  upsert(node: KubeNode): LeaseEvent[] {
    const name = nodeName(node);
    if (name === this.ownName || name === '') return [];
    const before = this.leases.get(name);
    if (!isFlannelNode(node, this.keys)) return before ? this.remove(name) : [];
    let lease: Lease;
    try {
      lease = nodeToLease(node, this.families, this.keys);
    } catch (e) {
      if (!(e instanceof NodeLeaseError)) throw e;
      this.onSkip({ node: name, resourceVersion: node.metadata?.resourceVersion ?? '', reason: e.message });
      return [];
    }
    if (before && sameLease(before, lease)) return [];
    const events: LeaseEvent[] = [];
    if (before && !sameSubnet(before, lease)) events.push(...this.remove(name));
    for (const [other, l] of this.leases) {
      if (other !== name && sameSubnet(l, lease)) {
        this.onSkip({ node: name, resourceVersion: node.metadata?.resourceVersion ?? '', reason: `its pod CIDR ${describeLease(lease)} is already routed to node "${other}"` });
        return events;
      }
    }
    this.leases.set(name, lease);
    events.push({ type: 'added', lease });
    return events;
  }

  /** A DELETED node (or one a relist no longer contains). */
  delete(node: KubeNode): LeaseEvent[] {
    return this.remove(nodeName(node));
  }

  private remove(name: string): LeaseEvent[] {
    const lease = this.leases.get(name);
    if (!lease) return [];
    this.leases.delete(name);
    return [{ type: 'removed', lease }];
  }
}

/**
 * Both subnets equal, IPv6 included even when one side has none (stricter
 * than lease.ts's sameSubnets, which lets a missing IPv6 subnet match: here
 * a node gaining or losing its IPv6 podCIDR is a move).
 */
function sameSubnet(a: Lease, b: Lease): boolean {
  return a.subnet.equals(b.subnet) && (a.ipv6Subnet?.toString() ?? '') === (b.ipv6Subnet?.toString() ?? '');
}

function sameLease(a: Lease, b: Lease): boolean {
  return sameSubnet(a, b) && sameAttrs(a.attrs, b.attrs);
}
