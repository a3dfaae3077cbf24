/**
 * What the node's health, readiness and metrics are computed from, and the
 * rules that turn it into answers:
 *
 * - live (`/healthz`, `WATCHDOG=1`): fails only when the event loop or a
 *   datapath thread stops making progress. The event loop answers the
 *   request itself, so a stuck loop fails by not answering; a datapath
 *   thread is stuck when its heartbeat (refreshed at least every second,
 *   even idle) is older than DATAPATH_STALL_MS. Losing etcd never fails it.
 * - ready (`/readyz`): lease held, lease watch connected, datapath up, the
 *   first lease batch applied with kernel state reconciled, traffic rules
 *   in place, subnet.env written.
 */
import type { BackendNetwork, BackendNetworkStatus, DatapathProgress, DatapathReport } from '../backends/backend';
import { leaseKey } from '../lease/lease';
import type { GuardStats, PeerLeaseGuard } from '../lease/peer-lease-guard';
import type { HeldLease, LeasesWatch, LeasesWatchStats, SubnetManager } from '../lease/subnet-manager';
import type { TrafficRules } from '../traffic/traffic-manager';

/** A datapath thread silent this long is stuck (it wakes every second when idle). */
export const DATAPATH_STALL_MS = 5000;

export interface StatusSnapshot {
  backend: BackendNetworkStatus | undefined;
  /** The user-space datapath's counters (udp). */
  datapath: DatapathReport | undefined;
  /** The watch of the other nodes' leases. */
  leasesWatch: LeasesWatchStats | undefined;
  /** What the guard routes and refuses of those leases. */
  leases: GuardStats | undefined;
  /** When the own etcd lease expires (Unix seconds); undefined for a reservation, in kube mode, or before the lease. */
  leaseExpiresAt: number | undefined;
  /** The own lease's subnet(s), once held (src/lease/lease.ts leaseKey). */
  leaseSubnet: string | undefined;
  /** The backend's type ("udp", "vxlan", "host-gw"), once known. */
  backendType: string | undefined;
  /** The lease store and its failed requests so far. */
  store: { name: 'etcd' | 'kubernetes'; requestErrors: number } | undefined;
  leaseHeld: boolean;
  /** Why the held lease is in doubt (it expired while etcd was unreachable), or undefined. */
  leaseProblem: string | undefined;
  trafficInPlace: boolean | undefined;
  subnetEnvWritten: boolean;
  /** Startup not finished yet (no backend). */
  starting: boolean;
}

/** Why the node is not live, or undefined when it is. */
export function livenessProblem(datapath: DatapathProgress | undefined, stallMs = DATAPATH_STALL_MS): string | undefined {
  const age = datapath?.heartbeatAgeMs;
  if (datapath?.running && age !== undefined && age > stallMs) {
    return `a datapath thread has made no progress for ${(age / 1000).toFixed(1)} s`;
  }
  return undefined;
}

/** Why the node is not ready (empty when it is). */
export function readinessProblems(s: StatusSnapshot): string[] {
  const out: string[] = [];
  if (s.starting || !s.backend) return ['starting'];
  if (!s.leaseHeld) out.push('the lease is not held');
  if (s.leaseProblem) out.push(s.leaseProblem);
  const w = s.leasesWatch;
  if (!w || !w.connected) out.push(`the lease watch (${s.store?.name === 'kubernetes' ? 'the Kubernetes node watch' : 'etcd'}) is not connected`);
  if (s.datapath && !s.datapath.running) out.push('the datapath is not running');
  if (!s.backend.synced) out.push('the lease snapshot is not applied yet');
  for (const r of s.backend.reconcilers) {
    if (r.lastFailure) out.push(`${r.name}: ${r.lastFailure}`);
  }
  if (s.trafficInPlace === false) out.push('the traffic rules are not in place');
  if (!s.subnetEnvWritten) out.push('subnet.env is not written');
  return out;
}

/** The daemon fills these in as startup proceeds. */
export class NodeStatus {
  backend: BackendNetwork | undefined;
  held: HeldLease | undefined;
  leasesWatch: LeasesWatch | undefined;
  guard: PeerLeaseGuard | undefined;
  traffic: TrafficRules | undefined;
  backendType: string | undefined;
  manager: Pick<SubnetManager, 'store' | 'requestErrors'> | undefined;
  subnetEnvWritten = false;
  leaseLost = false;
  stopping = false;

  constructor(private readonly now: () => number = Date.now) {}

  /** Cheap and local (no etcd, no netlink): safe for every /healthz and watchdog tick. */
  live(): string | undefined {
    return livenessProblem(this.backend?.datapath?.progress());
  }

  async snapshot(): Promise<StatusSnapshot> {
    const backend = this.backend ? await this.backend.status() : undefined;
    const exp = this.held?.expiresAt;
    return {
      backend,
      datapath: this.backend?.datapath?.report(),
      leasesWatch: this.leasesWatch?.stats,
      leases: this.guard?.stats,
      leaseExpiresAt: exp ? exp.getTime() / 1000 : undefined,
      leaseSubnet: this.backend ? leaseKey(this.backend.lease) : undefined,
      backendType: this.backendType,
      store: this.manager ? { name: this.manager.store, requestErrors: this.manager.requestErrors() } : undefined,
      leaseHeld: this.held !== undefined && !this.leaseLost,
      leaseProblem: this.held?.problem,
      trafficInPlace: this.traffic?.inPlace,
      subnetEnvWritten: this.subnetEnvWritten,
      starting: this.backend === undefined || this.stopping,
    };
  }
}
