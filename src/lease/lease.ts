/**
 * Subnet leases, whichever store keeps them (etcd: ./etcd/, the Kubernetes
 * Node objects: ./kube/): the node's subnets and the attributes it
 * advertises (upstream's pkg/lease/lease.go, Lease and LeaseAttrs).
 */
import { formatIpv4, type Ipv4Net } from '../util/ipv4';
import type { Ipv6Net } from '../util/ipv6';

export interface LeaseAttrs {
  /** The node's advertised IPv4 address (host order); 0 is "0.0.0.0". */
  publicIp: number;
  publicIpv6: bigint | undefined;
  /** "vxlan", "host-gw"; empty for udp (upstream's udp backend sets none). */
  backendType: string;
  /** Raw JSON text of BackendData; undefined when absent. */
  backendData: string | undefined;
  backendV6Data: string | undefined;
}

export interface Lease {
  subnet: Ipv4Net;
  ipv6Subnet: Ipv6Net | undefined;
  attrs: LeaseAttrs;
  /** When the lease runs out; undefined when it does not (an etcd reservation, kube mode). */
  expiration: Date | undefined;
}

/**
 * What the backends are told about the other nodes' leases. An added lease
 * carries its record's age in its store (LeaseRecord.since) when the store
 * has one: of two leases with one address, the newer one speaks for it.
 */
export type LeaseEvent = { type: 'added'; lease: Lease; since?: number } | { type: 'removed'; lease: Lease };

/** One lease as its store holds it: the store's watch reports these (./peer-lease-guard.ts chooses what is routed). */
export interface LeaseRecord {
  /** The record's identity in its store: the etcd key, or the Node's name. */
  id: string;
  lease: Lease;
  /**
   * The record's age in its store (etcd: the key's create revision; kube: the
   * Node's creationTimestamp in ms): of two overlapping records the older
   * (smaller) one is routed, then the smaller id. Stable across relists.
   */
  since: number;
}

export type RecordChange = { type: 'put'; record: LeaseRecord } | { type: 'delete'; id: string };

/**
 * What a store's lease watch reports: the whole set of other records (the
 * first batch, and after a relist), or changes to it.
 */
export type RecordBatch = { kind: 'snapshot'; records: LeaseRecord[] } | { kind: 'changes'; changes: RecordChange[] };

/**
 * A lease's identity among the others: its IPv4 subnet, or its IPv6 subnet
 * when it has no IPv4 part (a v6-only cluster's leases carry 0.0.0.0/0).
 */
export function leaseKey(l: Pick<Lease, 'subnet' | 'ipv6Subnet'>): string {
  const v4 = l.subnet.canonical();
  if (v4.prefixLen === 0 && v4.network === 0 && l.ipv6Subnet) return l.ipv6Subnet.canonical().toString();
  return v4.toString();
}

/** A raw JSON value in compact form, so differently spaced texts of one value compare equal. */
function compactJson(raw: string | undefined): string | undefined {
  if (raw === undefined) return undefined;
  try {
    return JSON.stringify(JSON.parse(raw));
  } catch {
    return raw;
  }
}

export function sameAttrs(a: LeaseAttrs, b: LeaseAttrs): boolean {
  return (
    a.publicIp === b.publicIp &&
    a.publicIpv6 === b.publicIpv6 &&
    a.backendType === b.backendType &&
    compactJson(a.backendData) === compactJson(b.backendData) &&
    compactJson(a.backendV6Data) === compactJson(b.backendV6Data)
  );
}

export function describeLease(l: Pick<Lease, 'subnet' | 'ipv6Subnet' | 'attrs'>): string {
  const v6 = l.ipv6Subnet ? ` ${l.ipv6Subnet.toString()}` : '';
  return `${l.subnet.toString()}${v6} (PublicIP ${formatIpv4(l.attrs.publicIp)}${l.attrs.backendType ? `, ${l.attrs.backendType}` : ''})`;
}
