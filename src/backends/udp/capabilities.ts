/**
 * The udp lease's capability object: `BackendData` `{"Capabilities": [...]}`.
 *
 * Upstream's udp backend writes no BackendData and reads only a lease's
 * subnet and PublicIP, so it ignores the object; flannel-ts nodes read each
 * other's to use what both ends can do. A capability absent from a lease
 * (an upstream node, or one with "AdvertiseCapabilities": false) means the
 * wire format upstream speaks. Unknown names are ignored, so later versions
 * can add some.
 */

/** The node takes TCP/UDP packets whose checksum is left partial (native/core/partial_checksum.h). */
export const PARTIAL_CHECKSUMS = 'partial-checksums';

/**
 * The node's datapath carries inner IPv6 (native/core/ipv6.h). Only such
 * peers are sent IPv6 packets: an upstream udp node gets an IPv6 subnet too
 * when the network has EnableIPv6, but its datapath treats every packet as
 * IPv4 and would corrupt it.
 */
export const IPV6 = 'ipv6';

/**
 * The node runs the kernel fast path (native/bpf/udp_fastpath.bpf.c): it
 * unwraps datagrams in the kernel, so it takes what the fast path sends: UDP
 * tunnel GSO packets and packets whose checksum the sending host's NIC (or,
 * across a veth, nobody) completes. Only such peers get the fast path's
 * datagrams; the others get the user-space path's (docs/datapath.md, "The
 * kernel fast path").
 */
export const KERNEL_DECAP = 'kernel-decap';

/** The BackendData text for `capabilities`, or undefined (no BackendData, upstream's bytes) when there are none. */
export function udpBackendData(capabilities: readonly string[]): string | undefined {
  return capabilities.length === 0 ? undefined : JSON.stringify({ Capabilities: [...capabilities] });
}

/**
 * The capabilities a peer's lease advertises. A BackendData that is not such
 * an object (none, `null`, another backend's, malformed) advertises none.
 */
export function parseUdpCapabilities(backendData: string | undefined): ReadonlySet<string> {
  if (backendData === undefined) return new Set();
  let v: unknown;
  try {
    v = JSON.parse(backendData);
  } catch {
    return new Set();
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return new Set();
  const caps = (v as Record<string, unknown>)['Capabilities'];
  return new Set(Array.isArray(caps) ? caps.filter((c): c is string => typeof c === 'string') : []);
}
