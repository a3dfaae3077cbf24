/**
 * The alloc backend (upstream's pkg/backend/alloc/alloc.go): subnet
 * allocation only. The node takes a lease with its PublicIP and nothing
 * else (no BackendType, no backend data), writes subnet.env and keeps the
 * lease renewed; it creates no device and routes nothing: whatever carries
 * the pods' traffic is set up by other means.
 *
 * Its lease reads like a udp lease to udp nodes (upstream's udp backend
 * ignores BackendType, as ours does), so a udp node would route the alloc
 * node's subnet to it over UDP 8285, where nothing listens
 * (docs/compatibility.md §17).
 */
import type { LinkDetails } from '../../routing/rtnetlink';
import { acquireBackendLease, type Backend, type BackendContext, BackendError, type BackendNetwork } from '../backend';
import { SimpleNetwork } from '../simple-network';

export class AllocBackend implements Backend {
  readonly type = 'alloc';

  ownsDevice(_link: LinkDetails): boolean {
    return false;
  }

  async register(ctx: BackendContext): Promise<BackendNetwork> {
    const ext = ctx.extIface;
    if (ctx.network.enableIPv4 && ext.extAddr === undefined) throw new BackendError(`no IPv4 address on ${ext.name}`);
    // upstream: LeaseAttrs{PublicIP: ExtAddr} and nothing more (an IPv6-only node's is 0.0.0.0).
    const lease = await acquireBackendLease(ctx, { publicIp: ext.extAddr ?? 0, publicIpv6: undefined, backendType: '', backendData: undefined, backendV6Data: undefined });
    return new SimpleNetwork(lease, ext.mtu);
  }
}
