/**
 * Subnet leases as upstream stores them in etcd: the key format (compat
 * §3.1) and the value JSON with its exact bytes (§3.2).
 */
import { fieldCI, isJsonObject } from '../util/go-json';
import { formatIpv4, Ipv4Net, tryParseIpv4 } from '../util/ipv4';
import { formatIpv6, Ipv6Net, tryParseIpv6 } from '../util/ipv6';

export interface LeaseAttrs {
  /** The node's advertised IPv4 address (host order); 0 encodes as "0.0.0.0". */
  publicIp: number;
  publicIpv6: bigint | undefined;
  /** Empty for udp (compat §3.2: omitted). */
  backendType: string;
  /** Raw JSON text of BackendData; undefined when absent. */
  backendData: string | undefined;
  backendV6Data: string | undefined;
}

export interface Lease {
  subnet: Ipv4Net;
  ipv6Subnet: Ipv6Net | undefined;
  attrs: LeaseAttrs;
  /** When the etcd lease runs out; undefined for a reservation (a key without an etcd lease, compat §3.4). */
  expiration: Date | undefined;
  /** The etcd lease id ("0" for a reservation). */
  etcdLeaseId: string;
}

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

// upstream's regex (pkg/subnet/subnet.go), unescaped dots included, but
// anchored at both ends of the key's last path element instead of only at
// the end of the whole key: a key under <prefix>/subnets-x/ or with junk
// before the address is not a subnet key (compat §3.8 PORT NOTE).
const SUBNET_KEY_RE = /^(\d+\.\d+.\d+.\d+)-(\d+)(?:&([a-f\d:]+)-(\d+))?$/;

/** ParseSubnetKey; undefined for anything that is not a valid subnet key. */
export function parseSubnetKey(key: string): { subnet: Ipv4Net; ipv6Subnet: Ipv6Net | undefined } | undefined {
  const m = SUBNET_KEY_RE.exec(key);
  if (!m) return undefined;
  const ip = tryParseIpv4(m[1]!);
  // The prefix length is parsed as an unsigned integer of at most 5 bits: /32 is rejected (max 31).
  const len = Number(m[2]);
  if (ip === undefined || len > 31) return undefined;
  const subnet = new Ipv4Net(ip, len);
  if (m[3] === undefined) return { subnet, ipv6Subnet: undefined };
  const ip6 = tryParseIpv6(m[3]);
  const len6 = Number(m[4]);
  if (ip6 === undefined || len6 > 127) return undefined;
  return { subnet, ipv6Subnet: new Ipv6Net(ip6, len6) };
}

/**
 * The subnet key of an etcd key directly under `<prefix>/subnets/`, or
 * undefined when the key is anything else.
 */
export function subnetKeyOfEtcdKey(etcdPrefix: string, etcdKey: string): ReturnType<typeof parseSubnetKey> {
  const dir = subnetsPrefix(etcdPrefix) + '/';
  if (!etcdKey.startsWith(dir)) return undefined;
  const rest = etcdKey.slice(dir.length);
  if (rest.includes('/')) return undefined;
  return parseSubnetKey(rest);
}

/** Compact JSON of a raw JSON value (json.RawMessage is re-compacted by Marshal). */
function compactRaw(raw: string): string {
  return JSON.stringify(JSON.parse(raw));
}

/**
 * The value JSON exactly as Go's json.Marshal writes LeaseAttrs: PublicIP,
 * PublicIPv6 (null when none), then BackendType, BackendData, BackendV6Data
 * each omitted when empty. A udp lease is `{"PublicIP":"1.2.3.4","PublicIPv6":null}`.
 */
export function encodeLeaseAttrs(a: LeaseAttrs): string {
  let s = `{"PublicIP":${JSON.stringify(formatIpv4(a.publicIp))},"PublicIPv6":${a.publicIpv6 === undefined ? 'null' : JSON.stringify(formatIpv6(a.publicIpv6))}`;
  if (a.backendType !== '') s += `,"BackendType":${JSON.stringify(a.backendType)}`;
  if (a.backendData !== undefined && a.backendData !== '') s += `,"BackendData":${compactRaw(a.backendData)}`;
  if (a.backendV6Data !== undefined && a.backendV6Data !== '') s += `,"BackendV6Data":${compactRaw(a.backendV6Data)}`;
  return s + '}';
}

export class LeaseDecodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LeaseDecodeError';
  }
}

/** Decodes a lease value (case-insensitive keys, unknown keys ignored). PublicIP must be IPv4. */
export function decodeLeaseAttrs(text: string): LeaseAttrs {
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch {
    throw new LeaseDecodeError('the value is not JSON');
  }
  if (!isJsonObject(obj)) throw new LeaseDecodeError('the value is not a JSON object');
  const pub = fieldCI(obj, 'PublicIP');
  const publicIp = typeof pub === 'string' ? tryParseIpv4(pub) : undefined;
  if (publicIp === undefined) throw new LeaseDecodeError(`PublicIP ${JSON.stringify(pub)} is not an IPv4 address`);
  const pub6 = fieldCI(obj, 'PublicIPv6');
  let publicIpv6: bigint | undefined;
  if (pub6 !== undefined && pub6 !== null) {
    publicIpv6 = typeof pub6 === 'string' ? tryParseIpv6(pub6) : undefined;
    if (publicIpv6 === undefined) throw new LeaseDecodeError(`PublicIPv6 ${JSON.stringify(pub6)} is not an IPv6 address`);
  }
  const bt = fieldCI(obj, 'BackendType');
  if (bt !== undefined && bt !== null && typeof bt !== 'string') throw new LeaseDecodeError('BackendType is not a string');
  const raw = (k: string): string | undefined => {
    const v = fieldCI(obj as Record<string, unknown>, k);
    return v === undefined || v === null ? undefined : JSON.stringify(v);
  };
  return { publicIp, publicIpv6, backendType: (bt as string | undefined) ?? '', backendData: raw('BackendData'), backendV6Data: raw('BackendV6Data') };
}

/**
 * Same subnet(s), as upstream's LeaseWatcher compares them: the IPv4 subnets,
 * and the IPv6 subnets too when both leases have one.
 */
export function sameSubnets(a: Pick<Lease, 'subnet' | 'ipv6Subnet'>, b: Pick<Lease, 'subnet' | 'ipv6Subnet'>): boolean {
  if (!a.subnet.equals(b.subnet)) return false;
  return a.ipv6Subnet === undefined || b.ipv6Subnet === undefined || a.ipv6Subnet.equals(b.ipv6Subnet);
}

export function sameAttrs(a: LeaseAttrs, b: LeaseAttrs): boolean {
  return encodeLeaseAttrs(a) === encodeLeaseAttrs(b);
}

export function describeLease(l: Pick<Lease, 'subnet' | 'ipv6Subnet' | 'attrs'>): string {
  const v6 = l.ipv6Subnet ? ` ${l.ipv6Subnet.toString()}` : '';
  return `${l.subnet.toString()}${v6} (PublicIP ${formatIpv4(l.attrs.publicIp)}${l.attrs.backendType ? `, ${l.attrs.backendType}` : ''})`;
}
