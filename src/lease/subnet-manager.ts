/**
 * What the daemon and the backends need from a subnet manager, whichever
 * store keeps the leases: etcd (./etcd/subnet-manager.ts) or the Kubernetes
 * Node objects (./kube/kube-subnet-manager.ts). Upstream's
 * pkg/subnet/subnet.go, Manager.
 */
import type { Lease, LeaseAttrs, RecordBatch } from './lease';
import type { NetworkConfig } from './network-config';

export interface LeaseLoss {
  key: string;
  reason: string;
}

/** The own lease while it is held: renewed and monitored until lost or stopped. */
export interface HeldLease {
  readonly lease: Lease;
  /** Resolves when the lease is lost (deleted, expired, taken); never rejects. */
  readonly lost: Promise<LeaseLoss>;
  /** When the current etcd lease runs out; undefined for a reservation. */
  readonly expiresAt: Date | undefined;
  /** Why the lease is in doubt although not lost (it expired while the store was unreachable), or undefined. */
  readonly problem?: string | undefined;
  stop(): Promise<void>;
}

export interface LeasesWatchStats {
  reconnects: number;
  resyncs: number;
  skippedKeys: number;
  connected: boolean;
  /** The first listing of all leases has been handed over. */
  snapshotApplied: boolean;
  /** Times the store was found replaced or wiped (etcd). */
  resets: number;
}

/** The remote leases, as a stream of change batches. */
export interface LeasesWatch {
  readonly stats: LeasesWatchStats;
  /** Hands over the whole set again soon (a re-list), e.g. when the guard must check every record again. */
  resync(reason: string): void;
  stop(): Promise<void>;
}

export interface SubnetManager {
  /** Fetches and validates the network config, retrying until it is usable or `signal` aborts. */
  getNetworkConfig(signal: AbortSignal): Promise<NetworkConfig>;
  /** Acquires the own lease (reuse, previous subnet, or a new one). */
  acquireLease(attrs: LeaseAttrs, signal: AbortSignal): Promise<Lease>;
  /** Starts renewing and monitoring the acquired lease. */
  holdLease(lease: Lease): HeldLease;
  /**
   * Starts watching the other nodes' lease records: `onBatch` gets the whole
   * set first (even when empty), then changes; the own record never.
   * The guard (./peer-lease-guard.ts) decides what the backends route.
   */
  watchLeases(own: Lease, onBatch: (batch: RecordBatch) => void): LeasesWatch;
  close(): Promise<void>;
  /** Kube mode: addresses the node object asks this node to use instead of -public-ip(v6) (upstream's GetStoredPublicIP). */
  publicIpHints?(): Promise<{ publicIp: string | undefined; publicIpv6: string | undefined }>;
  /** Kube mode: the VtepMAC this node published before, so a vxlan restart keeps it (upstream's GetStoredMacAddresses). */
  storedVtepMac?(family?: 4 | 6): Promise<string | undefined>;
  /** Kube mode: called once the node is up (READY=1): the NetworkUnavailable=False condition (upstream's CompleteLease). */
  completeLease?(): Promise<void>;
  /** Which store it talks to, and how many of its requests failed so far (metrics). */
  readonly store: 'etcd' | 'kubernetes';
  requestErrors(): number;
}
