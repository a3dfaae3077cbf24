/**
 * Choosing a free subnet (pure; docs/compatibility.md §3.5; upstream's
 * allocateSubnet): walk the candidates from SubnetMin upward in steps of the
 * subnet size while <= SubnetMax, collect at most 100 that overlap no
 * existing lease, and pick one at random. Same for IPv6 when enabled,
 * independently.
 *
 * Which leases block: every lease inside the Network, whatever its size (as
 * upstream: during a SubnetLen change old leases still hold their addresses),
 * also outside the SubnetMin..SubnetMax range. A lease not inside the
 * Network blocks nothing: upstream counts it too, so one `0.0.0.0-0` key
 * made every new node fail with "out of subnets".
 */
import { Ipv4Net } from '../util/ipv4';
import { Ipv6Net } from '../util/ipv6';
import type { NetworkConfig } from './network-config';
import { NamedError } from '../util/errors';

export const MAX_CANDIDATES = 100;

export interface Taken {
  subnet: Ipv4Net;
  ipv6Subnet: Ipv6Net | undefined;
}

/** A source of uniform integers in [0, n); injectable so tests are deterministic. */
export type RandomInt = (n: number) => number;

export const mathRandomInt: RandomInt = (n) => Math.floor(Math.random() * n);

export class OutOfSubnetsError extends NamedError {
  constructor(readonly family: 'IPv4' | 'IPv6', readonly range: string) {
    super('out of subnets');
  }
}

export function freeIpv4Candidates(cfg: NetworkConfig, allTaken: readonly Taken[]): Ipv4Net[] {
  const size = 2 ** (32 - cfg.subnetLen);
  const net = cfg.network;
  const taken = allTaken.filter((t) => net !== undefined && net.containsNet(t.subnet));
  const out: Ipv4Net[] = [];
  for (let ip = cfg.subnetMin; ip <= cfg.subnetMax && out.length < MAX_CANDIDATES; ip += size) {
    const candidate = new Ipv4Net(ip >>> 0, cfg.subnetLen);
    if (!taken.some((t) => t.subnet.overlaps(candidate))) out.push(candidate);
  }
  return out;
}

export function freeIpv6Candidates(cfg: NetworkConfig, allTaken: readonly Taken[]): Ipv6Net[] {
  const size = 1n << BigInt(128 - cfg.ipv6SubnetLen);
  const net = cfg.ipv6Network;
  const taken = allTaken.filter((t) => net !== undefined && t.ipv6Subnet !== undefined && net.containsNet(t.ipv6Subnet));
  const out: Ipv6Net[] = [];
  for (let ip = cfg.ipv6SubnetMin; ip <= cfg.ipv6SubnetMax && out.length < MAX_CANDIDATES; ip += size) {
    const candidate = new Ipv6Net(ip, cfg.ipv6SubnetLen);
    if (!taken.some((t) => t.ipv6Subnet !== undefined && t.ipv6Subnet.overlaps(candidate))) out.push(candidate);
  }
  return out;
}

/** A random free subnet (and IPv6 subnet when enabled); throws OutOfSubnetsError. */
export function pickFreeSubnet(cfg: NetworkConfig, taken: readonly Taken[], random: RandomInt = mathRandomInt): Taken {
  const v4 = freeIpv4Candidates(cfg, taken);
  if (v4.length === 0) throw new OutOfSubnetsError('IPv4', `${cfg.subnetMin} ... ${cfg.subnetMax}`);
  const subnet = v4[random(v4.length)]!;
  if (!cfg.enableIPv6) return { subnet, ipv6Subnet: undefined };
  const v6 = freeIpv6Candidates(cfg, taken);
  if (v6.length === 0) throw new OutOfSubnetsError('IPv6', `${cfg.ipv6SubnetMin} ... ${cfg.ipv6SubnetMax}`);
  return { subnet, ipv6Subnet: v6[random(v6.length)]! };
}

/**
 * Whether a lease fits the config (docs/compatibility.md §3.5 step 3): the IPv4 subnet in
 * [SubnetMin, SubnetMax] with prefix SubnetLen, and the IPv6 part absent when
 * IPv6 is off, present and in range otherwise.
 */
export function fitsConfig(cfg: NetworkConfig, l: Taken): boolean {
  const ip = l.subnet.ip;
  if (ip < cfg.subnetMin || ip > cfg.subnetMax || l.subnet.prefixLen !== cfg.subnetLen) return false;
  if (!cfg.enableIPv6) return l.ipv6Subnet === undefined;
  const v6 = l.ipv6Subnet;
  return v6 !== undefined && v6.ip >= cfg.ipv6SubnetMin && v6.ip <= cfg.ipv6SubnetMax && v6.prefixLen === cfg.ipv6SubnetLen;
}
