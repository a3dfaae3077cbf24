/**
 * The one retry schedule of the etcd subnet manager: acquiring the lease,
 * listing and watching the leases, and keeping the own lease all wait this
 * long between attempts while etcd is unreachable.
 *
 * Why these numbers: the first retry comes after 100 ms, so a blip (a leader
 * election, a dropped connection that gRPC re-establishes at once) costs
 * almost nothing; doubling reaches the 5 s cap in six steps, the same cap
 * the gRPC channel's reconnect backoff has (./client.ts), so flanneld is
 * back within about 5 s of etcd returning; ±20 % jitter keeps a cluster of
 * nodes from retrying against a recovering etcd in lockstep. The
 * renewal's own retry after a failed write is upstream's one minute
 * (pkg/subnet/etcd/local_manager.go, RenewLease), not this.
 */
import { Backoff } from '../../util/backoff';

export const ETCD_RETRY_INITIAL_MS = 100;
export const ETCD_RETRY_MAX_MS = 5000;

/** A fresh backoff on the etcd retry schedule. */
export function etcdRetryBackoff(): Backoff {
  return new Backoff(ETCD_RETRY_INITIAL_MS, ETCD_RETRY_MAX_MS);
}
