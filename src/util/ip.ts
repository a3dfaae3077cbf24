/**
 * Addresses and networks of either family, for the code that handles both
 * (the kernel layer): an IPv4 address is a host-order number (./ipv4.ts), an
 * IPv6 address a 128-bit bigint (./ipv6.ts); the type tells the family.
 */
import { formatIpv4, ipv4FromBytes, ipv4ToBytes, Ipv4Net } from './ipv4';
import { formatIpv6, Ipv6Net } from './ipv6';

export type IpAddr = number | bigint;
export type IpNet = Ipv4Net | Ipv6Net;
export type IpFamily = 4 | 6;

export function familyOf(a: IpAddr | IpNet): IpFamily {
  if (typeof a === 'bigint' || a instanceof Ipv6Net) return 6;
  return 4;
}

export function formatIp(a: IpAddr): string {
  return typeof a === 'bigint' ? formatIpv6(a) : formatIpv4(a);
}

/** Network-order bytes: 4 for IPv4, 16 for IPv6. */
export function ipToBytes(a: IpAddr): Buffer {
  if (typeof a === 'number') return ipv4ToBytes(a);
  const b = Buffer.alloc(16);
  let v = a;
  for (let i = 15; i >= 0; i--) {
    b[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return b;
}

/** The address in 4 or 16 network-order bytes; undefined for any other length. */
export function ipFromBytes(b: Uint8Array | undefined): IpAddr | undefined {
  if (!b) return undefined;
  if (b.length === 4) return ipv4FromBytes(b);
  if (b.length !== 16) return undefined;
  let v = 0n;
  for (const x of b) v = (v << 8n) | BigInt(x);
  return v;
}

/** The network address of `n` (a number for IPv4, a bigint for IPv6). */
export function netAddress(n: IpNet): IpAddr {
  return n.network;
}

/** Same family, address and prefix length. */
export function sameNet(a: IpNet, b: IpNet): boolean {
  if (a instanceof Ipv4Net) return b instanceof Ipv4Net && a.equals(b);
  return b instanceof Ipv6Net && a.equals(b);
}

/** `inner` lies inside `outer` (false across families). */
export function netContainsNet(outer: IpNet, inner: IpNet): boolean {
  if (outer instanceof Ipv4Net) return inner instanceof Ipv4Net && outer.containsNet(inner);
  return inner instanceof Ipv6Net && outer.containsNet(inner);
}

/** The zero network of a family (0.0.0.0/0, ::/0). */
export function anyNet(family: IpFamily): IpNet {
  return family === 4 ? new Ipv4Net(0, 0) : new Ipv6Net(0n, 0);
}

/**
 * This node's own addresses (every interface's), and the directed broadcast
 * addresses of the external interface's IPv4 networks: src/routing keeps
 * them current, the lease guard and the udp datapath use them.
 */
export interface NodeAddresses {
  ipv4: readonly number[];
  ipv6: readonly bigint[];
  directedBroadcasts: readonly number[];
}
