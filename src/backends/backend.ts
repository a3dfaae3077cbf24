/**
 * The interface every backend implements (after upstream's
 * pkg/backend/common.go, Backend and Network): a backend registers the
 * network (parses its own options, acquires the lease, sets up devices) and
 * returns a network that the daemon feeds with lease events until it stops.
 */
import type { Lease, LeaseAttrs, LeaseEvent } from '../lease/lease';
import type { NetworkConfig } from '../lease/network-config';
import type { SubnetManager } from '../lease/subnet-manager';
import type { Logger } from '../logging';
import type { ExternalInterface } from '../routing/ext-iface';
import type { LocalAddressSource } from '../routing/local-addresses';
import type { Reconciler } from '../routing/reconciler';
import type { LinkDetails } from '../routing/rtnetlink';
import { errorText, NamedError } from '../util/errors';

export interface BackendContext {
  network: NetworkConfig;
  extIface: ExternalInterface;
  /** This node's addresses, kept current. */
  localAddresses: LocalAddressSource;
  subnets: Pick<SubnetManager, 'acquireLease' | 'storedVtepMac'>;
  log: Logger;
  signal: AbortSignal;
}

/** What a running backend reports for /readyz and /metrics. */
export interface BackendNetworkStatus {
  /** The first batch of lease events has been applied. */
  synced: boolean;
  /** Remote subnets the backend wants routed, and how many of them are in place. */
  routesDesired: number;
  routesInstalled: number;
  /** The backend's reconcilers (kernel state it keeps in place). */
  reconcilers: readonly Reconciler[];
}

/** Liveness of a user-space datapath: its threads beat at least every second, even idle. */
export interface DatapathProgress {
  running: boolean;
  /** ms since the least recently active forwarding thread made progress (undefined before start). */
  heartbeatAgeMs: number | undefined;
}

/** The counters of a user-space datapath, for /metrics. */
export interface DatapathReport extends DatapathProgress {
  workers: number;
  /** Inner packets and bytes forwarded: egress = device to the wire, ingress = the wire to the device. */
  packets: { egress: number; ingress: number };
  bytes: { egress: number; ingress: number };
  /** Dropped packets by direction and reason. */
  drops: { egress: Readonly<Record<string, number>>; ingress: Readonly<Record<string, number>> };
  /** Every counter by name. */
  counters: Readonly<Record<string, number>>;
  /** Offloads by name and whether each is in use; undefined before start. */
  offloads: Readonly<Record<string, boolean>> | undefined;
}

/** The optional extension of a backend that forwards in user space (udp). */
export interface UserspaceDatapath {
  /** Cheap and local: called on every /healthz and watchdog tick. */
  progress(): DatapathProgress;
  report(): DatapathReport;
}

export interface BackendNetwork {
  readonly lease: Lease;
  /** FLANNEL_MTU for subnet.env. */
  readonly mtu: number;
  /** Starts keeping the backend's state (upstream's Network.Run). */
  start(): void;
  /** A batch of remote lease events: the first batch is the full set (possibly empty), then changes. */
  applyLeases(events: readonly LeaseEvent[]): void;
  status(): Promise<BackendNetworkStatus>;
  /** Present when the backend forwards in user space. */
  readonly datapath?: UserspaceDatapath;
  /** Stops following events and releases what the backend owns in this process. */
  stop(): Promise<void>;
}

export interface Backend {
  readonly type: string;
  /**
   * Preconditions checked when the backend is looked up (upstream's
   * main.go); the daemon reports a failure as `Error fetching backend: <message>`.
   */
  check?(extIface: ExternalInterface): void;
  register(ctx: BackendContext): Promise<BackendNetwork>;
  /** Whether a device on this node is one this backend creates (`flanneld cleanup` removes those). */
  ownsDevice(link: LinkDetails): boolean;
  /**
   * `flanneld cleanup` removing one of its devices, when more than the link
   * goes (a process that runs it): the backend calls `deleteLink` and
   * returns what else it ended, for the report.
   */
  removeDevice?(link: LinkDetails, deleteLink: () => Promise<void>): Promise<string[]>;
}

/** A failure of a backend's registration; the daemon logs `Error registering network: <message>`. */
export class BackendError extends NamedError {}

/** Acquires the own lease for a backend; a failure is upstream's `failed to acquire lease: <err>`. */
export async function acquireBackendLease(ctx: BackendContext, attrs: LeaseAttrs): Promise<Lease> {
  try {
    return await ctx.subnets.acquireLease(attrs, ctx.signal);
  } catch (e) {
    throw new BackendError(`failed to acquire lease: ${errorText(e)}`, { cause: e });
  }
}
