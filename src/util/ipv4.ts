/**
 * IPv4 addresses and networks as unsigned 32-bit integers (host order), the
 * way upstream's pkg/ip/ipnet.go models them.
 */
import { NamedError } from './errors';

/** Thrown for text that is not an IPv4 address or CIDR. */
export class Ipv4ParseError extends NamedError {
  constructor(readonly input: string, readonly expected: 'address' | 'CIDR') {
    super(`invalid IPv4 ${expected}: '${input}'`);
  }
}

const OCTET = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

/** Parses a dotted quad ("10.5.0.1"); undefined for anything else. */
export function tryParseIpv4(text: string): number | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  let value = 0;
  for (const part of parts) {
    if (!OCTET.test(part)) return undefined;
    value = value * 256 + Number(part);
  }
  return value >>> 0;
}

export function parseIpv4(text: string): number {
  const v = tryParseIpv4(text);
  if (v === undefined) throw new Ipv4ParseError(text, 'address');
  return v;
}

export function formatIpv4(addr: number): string {
  return `${addr >>> 24}.${(addr >>> 16) & 0xff}.${(addr >>> 8) & 0xff}.${addr & 0xff}`;
}

export function ipv4ToBytes(addr: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(addr >>> 0);
  return b;
}

export function ipv4FromBytes(b: Uint8Array): number {
  if (b.length !== 4) throw new RangeError(`an IPv4 address has 4 bytes, got ${b.length}`);
  return ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0;
}

export function prefixMask(prefixLen: number): number {
  return prefixLen === 0 ? 0 : (0xffffffff << (32 - prefixLen)) >>> 0;
}

/** RFC 1918 private ranges (upstream's IP4.IsPrivate, asserted by ipnet_test.go). */
export function isPrivateIpv4(addr: number): boolean {
  return (
    (addr & prefixMask(8)) >>> 0 === 0x0a000000 ||
    (addr & prefixMask(12)) >>> 0 === 0xac100000 ||
    (addr & prefixMask(16)) >>> 0 === 0xc0a80000
  );
}

/** An IPv4 network: an address and a prefix length. Immutable. */
export class Ipv4Net {
  /** The address as given (host bits may be set, as in "10.5.72.1/24"). */
  readonly ip: number;
  readonly prefixLen: number;

  constructor(ip: number, prefixLen: number) {
    if (!Number.isInteger(prefixLen) || prefixLen < 0 || prefixLen > 32) {
      throw new RangeError(`IPv4 prefix length must be 0..32, got ${prefixLen}`);
    }
    this.ip = ip >>> 0;
    this.prefixLen = prefixLen;
  }

  /** Parses "a.b.c.d/len"; undefined for anything else. */
  static tryParse(text: string): Ipv4Net | undefined {
    const slash = text.indexOf('/');
    if (slash < 0) return undefined;
    const ip = tryParseIpv4(text.slice(0, slash));
    const lenText = text.slice(slash + 1);
    if (ip === undefined || !/^(3[0-2]|[12]?\d)$/.test(lenText)) return undefined;
    return new Ipv4Net(ip, Number(lenText));
  }

  static parse(text: string): Ipv4Net {
    const n = Ipv4Net.tryParse(text);
    if (n === undefined) throw new Ipv4ParseError(text, 'CIDR');
    return n;
  }

  get mask(): number {
    return prefixMask(this.prefixLen);
  }

  /** The network address (host bits cleared). */
  get network(): number {
    return (this.ip & this.mask) >>> 0;
  }

  /** The same network with host bits cleared ("10.3.1.0/16" -> "10.3.0.0/16"). */
  canonical(): Ipv4Net {
    return this.ip === this.network ? this : new Ipv4Net(this.network, this.prefixLen);
  }

  /** Number of addresses: 2^(32 - prefixLen). */
  get size(): number {
    return 2 ** (32 - this.prefixLen);
  }

  /** The last address of the network. */
  get broadcast(): number {
    return (this.network + this.size - 1) >>> 0;
  }

  contains(addr: number): boolean {
    return ((addr & this.mask) >>> 0) === this.network;
  }

  /** True when `other` lies entirely inside this network. */
  containsNet(other: Ipv4Net): boolean {
    return other.prefixLen >= this.prefixLen && this.contains(other.network);
  }

  /** Equal under the shorter of the two prefixes (upstream's Overlaps). */
  overlaps(other: Ipv4Net): boolean {
    const len = Math.min(this.prefixLen, other.prefixLen);
    const m = prefixMask(len);
    return ((this.network & m) >>> 0) === ((other.network & m) >>> 0);
  }

  equals(other: Ipv4Net): boolean {
    return this.ip === other.ip && this.prefixLen === other.prefixLen;
  }

  /** Network address + 1 with the same prefix: subnet.env's FLANNEL_SUBNET form. */
  firstHost(): Ipv4Net {
    return new Ipv4Net((this.network + 1) >>> 0, this.prefixLen);
  }

  toString(): string {
    return `${formatIpv4(this.ip)}/${this.prefixLen}`;
  }
}
