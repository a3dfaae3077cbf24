/**
 * The interface every backend implements (after upstream's
 * pkg/backend/common.go): a backend registers the network (parses its own
 * options, acquires the lease, sets up devices) and returns a running
 * network that follows lease events until stopped.
 */
import type { FlannelConfig } from '../cli/config';
import type { Lease } from '../lease/lease';
import type { NetworkConfig } from '../lease/network-config';
import type { DatapathStats } from '../forwarder/udp-forwarder';
import type { LeasesWatchStats, SubnetManager } from '../lease/subnet-manager';
import type { Reconciler } from '../routing/reconciler';
import type { Logger } from '../log';
import type { ExternalInterface } from '../routing/ext-iface';

export interface BackendContext {
  config: FlannelConfig;
  network: NetworkConfig;
  extIface: ExternalInterface;
  subnets: SubnetManager;
  log: Logger;
  signal: AbortSignal;
}

/** What a running backend reports for /readyz and /metrics. */
export interface BackendStatus {
  /** The first lease snapshot has been applied. */
  synced: boolean;
  /** Remote subnets the backend wants routed, and how many of them are in place. */
  routesDesired: number;
  routesInstalled: number;
  /** The backend's reconcilers (kernel state it keeps in place). */
  reconcilers: readonly Reconciler[];
  /** The lease watch (undefined before run()). */
  leasesWatch: LeasesWatchStats | undefined;
  /** The udp backend's datapath counters. */
  datapath?: DatapathStats;
}

export interface BackendNetwork {
  readonly lease: Lease;
  /** FLANNEL_MTU for subnet.env. */
  readonly mtu: number;
  /** Starts following lease events (compat §0 step 20). */
  run(): void;
  status(): Promise<BackendStatus>;
  /** The user-space datapath's progress, for liveness (udp only); must be cheap. */
  datapathProgress?(): { running: boolean; heartbeatAgeMs: number | undefined };
  /** Stops following events and releases what the backend owns in this process. */
  stop(): Promise<void>;
}

export interface Backend {
  readonly type: string;
  /**
   * Preconditions checked when the backend is looked up (compat §0 step
   * 13); the daemon reports a failure as `Error fetching backend: <message>`.
   */
  check?(extIface: ExternalInterface): void;
  register(ctx: BackendContext): Promise<BackendNetwork>;
}

/** A failure of a backend's registration; the daemon logs `Error registering network: <message>`. */
export class BackendError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'BackendError';
  }
}
