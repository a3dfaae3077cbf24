/**
 * IPv6 addresses and networks as 128-bit BigInts, formatted the way Go's
 * net.IP.String() does (RFC 5952: lower case, no leading zeros, the longest
 * run of two or more zero groups as "::", the first one on a tie), which is
 * what upstream writes into subnet keys, lease JSON and subnet.env (an
 * IPv4-mapped address prints as the IPv4 address, as in Go).
 */
import { formatIpv4, tryParseIpv4 } from './ipv4';

const MAX = (1n << 128n) - 1n;

/** Parses an IPv6 literal (with an optional embedded IPv4 tail); undefined otherwise. */
export function tryParseIpv6(text: string): bigint | undefined {
  if (text.length === 0 || text.length > 45 || !/^[0-9a-fA-F:.]+$/.test(text)) return undefined;
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const parseGroups = (part: string, allowV4Tail: boolean): number[] | undefined => {
    if (part === '') return [];
    const groups: number[] = [];
    const items = part.split(':');
    for (let i = 0; i < items.length; i++) {
      const g = items[i]!;
      if (allowV4Tail && i === items.length - 1 && g.includes('.')) {
        const v4 = tryParseIpv4(g);
        if (v4 === undefined) return undefined;
        groups.push(v4 >>> 16, v4 & 0xffff);
        continue;
      }
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
      groups.push(parseInt(g, 16));
    }
    return groups;
  };
  let groups: number[];
  if (halves.length === 2) {
    const head = parseGroups(halves[0]!, false);
    const tail = parseGroups(halves[1]!, true);
    if (!head || !tail || head.length + tail.length > 7) return undefined;
    groups = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  } else {
    const all = parseGroups(text, true);
    if (!all || all.length !== 8) return undefined;
    groups = all;
  }
  let v = 0n;
  for (const g of groups) v = (v << 16n) | BigInt(g);
  return v;
}

export function formatIpv6(addr: bigint): string {
  // Go prints an IPv4-mapped address (::ffff:a.b.c.d) as the IPv4 address.
  if (addr >> 32n === 0xffffn) return formatIpv4(Number(addr & 0xffffffffn));
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((addr >> BigInt(i * 16)) & 0xffffn));
  // Longest run of zero groups of length >= 2 (first on a tie).
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (bestLen < 2) return groups.map((g) => g.toString(16)).join(':');
  const head = groups.slice(0, bestStart).map((g) => g.toString(16)).join(':');
  const tail = groups.slice(bestStart + bestLen).map((g) => g.toString(16)).join(':');
  return `${head}::${tail}`;
}

/** fe80::/10: link-local unicast (RFC 4291 §2.5.6), which the kernel adds to devices by itself. */
export function isLinkLocal6(a: bigint): boolean {
  return a >> 118n === 0x3fan;
}

export function ipv6PrefixMask(prefixLen: number): bigint {
  return prefixLen === 0 ? 0n : (MAX << BigInt(128 - prefixLen)) & MAX;
}

/** An IPv6 network. Immutable. */
export class Ipv6Net {
  readonly ip: bigint;
  readonly prefixLen: number;

  constructor(ip: bigint, prefixLen: number) {
    if (!Number.isInteger(prefixLen) || prefixLen < 0 || prefixLen > 128) {
      throw new RangeError(`IPv6 prefix length must be 0..128, got ${prefixLen}`);
    }
    this.ip = ip & MAX;
    this.prefixLen = prefixLen;
  }

  static tryParse(text: string): Ipv6Net | undefined {
    const slash = text.indexOf('/');
    if (slash < 0) return undefined;
    const ip = tryParseIpv6(text.slice(0, slash));
    const lenText = text.slice(slash + 1);
    if (ip === undefined || !/^(12[0-8]|1[01]\d|[1-9]?\d)$/.test(lenText)) return undefined;
    return new Ipv6Net(ip, Number(lenText));
  }

  get mask(): bigint {
    return ipv6PrefixMask(this.prefixLen);
  }

  get network(): bigint {
    return this.ip & this.mask;
  }

  canonical(): Ipv6Net {
    return this.ip === this.network ? this : new Ipv6Net(this.network, this.prefixLen);
  }

  get size(): bigint {
    return 1n << BigInt(128 - this.prefixLen);
  }

  contains(addr: bigint): boolean {
    return (addr & this.mask) === this.network;
  }

  /** True when `other` lies entirely inside this network. */
  containsNet(other: Ipv6Net): boolean {
    return other.prefixLen >= this.prefixLen && this.contains(other.network);
  }

  overlaps(other: Ipv6Net): boolean {
    const m = ipv6PrefixMask(Math.min(this.prefixLen, other.prefixLen));
    return (this.network & m) === (other.network & m);
  }

  equals(other: Ipv6Net): boolean {
    return this.ip === other.ip && this.prefixLen === other.prefixLen;
  }

  /** Network address + 1 with the same prefix (subnet.env's FLANNEL_IPV6_SUBNET form). */
  firstHost(): Ipv6Net {
    return new Ipv6Net(this.network + 1n, this.prefixLen);
  }

  toString(): string {
    return `${formatIpv6(this.ip)}/${this.prefixLen}`;
  }
}
