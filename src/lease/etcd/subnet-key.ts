/**
 * etcd keys of a flannel network (upstream's pkg/subnet/etcd/registry.go and
 * pkg/subnet/subnet.go, MakeSubnetKey and ParseSubnetKey):
 * `<prefix>/config` and `<prefix>/subnets/<subnet key>`, where a subnet key is
 * "10.5.52.0-24", or "10.12.13.0-24&fd00:12:13::-56" in dual stack.
 */
import { formatIpv4, Ipv4Net, tryParseIpv4 } from '../../util/ipv4';
import { formatIpv6, Ipv6Net, tryParseIpv6 } from '../../util/ipv6';

/** `<prefix>/subnets` (path.Join-cleaned, no trailing slash), the listing and watch prefix. */
export function subnetsPrefix(etcdPrefix: string): string {
  return joinKey(etcdPrefix, 'subnets');
}

/** Go's path.Join for etcd keys: one slash between parts, no duplicate or trailing slashes. */
export function joinKey(...parts: string[]): string {
  const joined = parts.filter((p) => p !== '').join('/');
  const abs = joined.startsWith('/');
  const segs: string[] = [];
  for (const s of joined.split('/')) {
    if (s === '' || s === '.') continue;
    if (s === '..') segs.pop();
    else segs.push(s);
  }
  return (abs ? '/' : '') + segs.join('/');
}

/** MakeSubnetKey: "10.5.52.0-24", or "10.12.13.0-24&fd00:12:13::-56" in dual stack. */
export function makeSubnetKey(subnet: Ipv4Net, ipv6Subnet?: Ipv6Net): string {
  const v4 = `${formatIpv4(subnet.ip)}-${subnet.prefixLen}`;
  return ipv6Subnet ? `${v4}&${formatIpv6(ipv6Subnet.ip)}-${ipv6Subnet.prefixLen}` : v4;
}

export function subnetKeyPath(etcdPrefix: string, subnet: Ipv4Net, ipv6Subnet?: Ipv6Net): string {
  return joinKey(etcdPrefix, 'subnets', makeSubnetKey(subnet, ipv6Subnet));
}

// upstream's regex (pkg/subnet/subnet.go, subnetRegex), unescaped dots
// included, but anchored at both ends of the key's last path element instead
// of only at the end of the whole key: a key under <prefix>/subnets-x/ or with
// junk before the address is not a subnet key (docs/compatibility.md,
// "Leases in etcd").
const SUBNET_KEY_RE = /^(\d+\.\d+.\d+.\d+)-(\d+)(?:&([a-f\d:]+)-(\d+))?$/;

export type SubnetKeyParse = { ok: true; subnet: Ipv4Net; ipv6Subnet: Ipv6Net | undefined } | { ok: false; reason: string };

/**
 * ParseSubnetKey, stricter: the key must also be canonical, its addresses
 * the networks themselves. Upstream keeps host bits ("10.5.72.1-24"), and
 * such a key then compares unequal to the subnet it routes: it slips past the
 * own-lease filter, and its deletion withdraws the route of the legitimate
 * "10.5.72.0-24". flannel-ts refuses it like any bad key (skipped and logged).
 */
export function parseSubnetKey(key: string): SubnetKeyParse {
  const m = SUBNET_KEY_RE.exec(key);
  if (!m) return { ok: false, reason: 'not a subnet key' };
  const ip = tryParseIpv4(m[1]!);
  // The prefix length is parsed as an unsigned integer of at most 5 bits: /32 is rejected (max 31).
  const len = Number(m[2]);
  if (ip === undefined || len > 31) return { ok: false, reason: 'not a subnet key' };
  const subnet = new Ipv4Net(ip, len);
  let ipv6Subnet: Ipv6Net | undefined;
  if (m[3] !== undefined) {
    const ip6 = tryParseIpv6(m[3]);
    const len6 = Number(m[4]);
    if (ip6 === undefined || len6 > 127) return { ok: false, reason: 'not a subnet key' };
    ipv6Subnet = new Ipv6Net(ip6, len6);
  }
  const canonical = makeSubnetKey(subnet.canonical(), ipv6Subnet?.canonical());
  if (canonical !== key) return { ok: false, reason: `the key has host bits set (the subnet is ${canonical}); write it as ${canonical}` };
  return { ok: true, subnet, ipv6Subnet };
}

/**
 * The subnet key of an etcd key directly under `<prefix>/subnets/`, or why
 * the key is not one.
 */
export function subnetKeyOfEtcdKey(etcdPrefix: string, etcdKey: string): SubnetKeyParse {
  const dir = subnetsPrefix(etcdPrefix) + '/';
  if (!etcdKey.startsWith(dir) || etcdKey.slice(dir.length).includes('/')) return { ok: false, reason: 'not a subnet key' };
  return parseSubnetKey(etcdKey.slice(dir.length));
}
