/**
 * A subnet manager's lease watch through the guard, as the daemon wires
 * them (src/daemon/daemon.ts): what a backend would be told.
 */
import type { Lease, LeaseEvent } from '../../src/lease/lease';
import { checkNetworkConfig, parseNetworkConfig } from '../../src/lease/network-config';
import { PeerLeaseGuard } from '../../src/lease/peer-lease-guard';
import type { LeasesWatch, SubnetManager } from '../../src/lease/subnet-manager';
import { type Logger, silentLogger } from '../../src/logging';

export interface GuardedWatch {
  w: LeasesWatch;
  guard: PeerLeaseGuard;
  /** Every batch the backend got. */
  batches: LeaseEvent[][];
  /** The events so far as "added 10.3.2.0/24" / "removed 10.3.2.0/24". */
  flat(): string[];
}

export function guardedWatch(m: Pick<SubnetManager, 'watchLeases'>, own: Lease, networkJson: string, log: Logger = silentLogger): GuardedWatch {
  const network = checkNetworkConfig(parseNetworkConfig(networkJson));
  const batches: LeaseEvent[][] = [];
  const guard = new PeerLeaseGuard({ network, own, local: { ipv4: [], ipv6: [], directedBroadcasts: [] } }, (ev) => batches.push(ev), log);
  const w = m.watchLeases(own, (b) => guard.apply(b));
  return { w, guard, batches, flat: () => batches.flat().map((e) => `${e.type} ${e.lease.subnet.toString()}`) };
}
