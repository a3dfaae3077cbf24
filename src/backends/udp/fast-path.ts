/**
 * The udp backend's use of the kernel fast path (src/forwarder/fast-path.ts,
 * docs/datapath.md "The kernel fast path"): whether it can run on this node,
 * starting it beside the user-space datapath, and keeping its routes equal to
 * the user-space datapath's IPv4 routes. The udp backend and the lab's static
 * node both use it.
 *
 * What the fast path changes for the user-space datapath, decided here:
 *  - UDP GRO is off on the sockets: with it, the kernel would merge
 *    datagrams before the tc program sees them, and unwrapping one outer
 *    header of a merged packet would lose the rest;
 *  - partial checksums are neither advertised nor taken: a tc program cannot
 *    mark a packet whose checksum is left partial, so such a packet would be
 *    verified, and refused, on delivery;
 *  - the lease advertises KERNEL_DECAP, and only peers that advertise it get
 *    the fast path's datagrams (which may be UDP-tunnel GSO packets, or carry
 *    checksums only a NIC completes).
 */
import * as fs from 'node:fs';
import { FastPathError, type FastRoute, KernelFastPath } from '../../forwarder/fast-path';
import type { OffloadSettings } from '../../forwarder/offload';
import type { PeerRoute } from '../../forwarder/udp-forwarder';
import { Ipv4Net } from '../../util/ipv4';
import type { Ipv6Net } from '../../util/ipv6';

/** Why the fast path cannot run on this node, with the fix; undefined when it can. */
export function fastPathBlocker(opts: { extName: string; bindAddress: string | undefined; objectPath: string }): string | undefined {
  if (opts.bindAddress === undefined) return 'it carries the IPv4 underlay only, and this node has no IPv4 address on its interface';
  if (!fs.existsSync(opts.objectPath)) return `its programs are missing (${opts.objectPath}): build them with \`npm run build:bpf\` (needs clang), or install a release that has them`;
  let forwarding: string;
  try {
    forwarding = fs.readFileSync(`/proc/sys/net/ipv4/conf/${opts.extName}/forwarding`, 'utf8').trim();
  } catch {
    return `net.ipv4.conf.${opts.extName}.forwarding cannot be read`;
  }
  // bpf_fib_lookup answers only for an interface that forwards (as a flannel node's must).
  if (forwarding !== '1') return `IPv4 forwarding is off on ${opts.extName}: set net.ipv4.ip_forward=1 (a flannel node forwards pod traffic anyway)`;
  return undefined;
}

/** The user-space datapath's offloads beside the fast path: UDP GRO off (see above). */
export function offloadBesideFastPath(offload: OffloadSettings): OffloadSettings {
  return { ...offload, gro: false };
}

export interface FastPathStart {
  tunIfindex: number;
  extIfindex: number;
  localAddress: string;
  ownSubnet: Ipv4Net;
  port: number;
  /** The source ports the user-space path sends from, in its order (empty: Port only). */
  sourcePorts: readonly number[];
  localAddresses: readonly string[];
  objectPath?: string;
}

/** Loads, configures and attaches; on a failure nothing stays attached. */
export function startFastPath(s: FastPathStart): KernelFastPath {
  const fp = s.objectPath ? KernelFastPath.load(s.objectPath) : KernelFastPath.load();
  try {
    fp.update({
      config: { enabled: true, localAddress: s.localAddress, ownSubnet: s.ownSubnet, tunIfindex: s.tunIfindex, extIfindex: s.extIfindex, port: s.port, sourcePorts: s.sourcePorts },
      localAddresses: s.localAddresses,
    });
    fp.attach(s.tunIfindex, s.extIfindex);
    return fp;
  } catch (e) {
    fp.close();
    throw e instanceof FastPathError ? e : new FastPathError(`starting the fast path: ${(e as Error).message}`, 'update', undefined, '', { cause: e });
  }
}

/** The source ports the user-space path sends from: Port+1 .. Port+n without those another socket held. */
export function boundSourcePorts(port: number, sourcePorts: number, busy: readonly number[]): number[] {
  const out: number[] = [];
  for (let p = port + 1; p <= port + sourcePorts; p++) if (!busy.includes(p)) out.push(p);
  return out;
}

const isV4 = (n: Ipv4Net | Ipv6Net): n is Ipv4Net => n instanceof Ipv4Net;

/** The fast path's share of a route change: IPv4 subnets, fast toward peers that unwrap in the kernel over IPv4. */
export function fastRouteChanges(set: readonly PeerRoute[], remove: ReadonlyArray<Ipv4Net | Ipv6Net>): { setRoutes: FastRoute[]; removeRoutes: Ipv4Net[] } {
  const setRoutes: FastRoute[] = [];
  const removeRoutes: Ipv4Net[] = remove.filter(isV4);
  for (const r of set) {
    if (!isV4(r.subnet)) continue;
    // A peer reached over the IPv6 underlay has an IPv6 address here: the user-space path's.
    const v4Peer = /^\d+\.\d+\.\d+\.\d+$/.test(r.peer);
    if (!v4Peer) {
      removeRoutes.push(r.subnet);
      continue;
    }
    setRoutes.push({ subnet: r.subnet, peer: r.peer, port: r.port, fast: r.kernelDecap === true });
  }
  return { setRoutes, removeRoutes };
}
