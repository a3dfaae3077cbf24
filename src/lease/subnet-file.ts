/**
 * subnet.env, the file the CNI plugin and mk-docker-opts read (upstream's
 * pkg/subnet/subnet.go, WriteSubnetFile; main.go, ReadCIDRFromSubnetFile):
 * written once the node is up, read back at the next start (the previous
 * subnet is a lease hint, the previous networks let stale masquerade rules
 * be removed).
 *
 * Lines, in this order, `KEY=value\n` each: FLANNEL_NETWORK and
 * FLANNEL_SUBNET (IPv4 on), FLANNEL_IPV6_NETWORK and FLANNEL_IPV6_SUBNET
 * (IPv6 on), FLANNEL_MTU, FLANNEL_IPMASQ. The subnet is written as its first
 * host address (10.5.72.0/24 -> 10.5.72.1/24).
 *
 * The file is replaced atomically (temporary file in the same directory,
 * fsync, rename), as upstream's renameio does. A new file gets mode 0644
 * exactly, whatever the umask; an existing file keeps its mode. Missing
 * parent directories are created.
 */
import * as fs from 'node:fs';
import { writeFileAtomic } from '../util/atomic-file';
import { Ipv4Net } from '../util/ipv4';
import { Ipv6Net } from '../util/ipv6';

export interface SubnetEnv {
  network: Ipv4Net | undefined;
  subnet: Ipv4Net | undefined;
  ipv6Network: Ipv6Net | undefined;
  ipv6Subnet: Ipv6Net | undefined;
  mtu: number;
  ipMasq: boolean;
}

export function formatSubnetEnv(e: SubnetEnv): string {
  const lines: string[] = [];
  if (e.network && e.subnet) {
    lines.push(`FLANNEL_NETWORK=${e.network.toString()}`, `FLANNEL_SUBNET=${e.subnet.firstHost().toString()}`);
  }
  if (e.ipv6Network && e.ipv6Subnet) {
    lines.push(`FLANNEL_IPV6_NETWORK=${e.ipv6Network.toString()}`, `FLANNEL_IPV6_SUBNET=${e.ipv6Subnet.firstHost().toString()}`);
  }
  lines.push(`FLANNEL_MTU=${e.mtu}`, `FLANNEL_IPMASQ=${e.ipMasq ? 'true' : 'false'}`);
  return lines.map((l) => l + '\n').join('');
}

export function writeSubnetEnv(file: string, e: SubnetEnv): void {
  writeFileAtomic(file, formatSubnetEnv(e));
}

/**
 * A dotenv parser in the spirit of godotenv (which upstream uses): blank
 * lines and `#` comments are skipped, an `export ` prefix is allowed, `=` or
 * `:` separate key and value, values may be single-quoted (literal) or
 * double-quoted (with \n, \" and \\ escapes), and an unquoted value ends at
 * ` #`.
 */
export function parseDotenv(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const rawLine of text.split(/\r?\n/)) {
    let line = rawLine.trim();
    if (line === '' || line.startsWith('#')) continue;
    if (line.startsWith('export ')) line = line.slice('export '.length).trim();
    const sep = line.search(/[=:]/);
    if (sep <= 0) continue;
    const key = line.slice(0, sep).trim();
    let value = line.slice(sep + 1).trim();
    if (value.startsWith('"')) {
      // Up to the first unescaped closing quote (or the end of the line).
      const inner = /^"((?:[^"\\]|\\.)*)/.exec(value)![1]!;
      value = inner.replace(/\\n/g, '\n').replace(/\\(["\\])/g, '$1');
    } else if (value.startsWith("'")) {
      const end = value.indexOf("'", 1);
      value = end > 0 ? value.slice(1, end) : value.slice(1);
    } else {
      const hash = value.indexOf(' #');
      if (hash >= 0) value = value.slice(0, hash).trim();
    }
    out.set(key, value);
  }
  return out;
}

export interface PreviousSubnets {
  subnet: Ipv4Net | undefined;
  ipv6Subnet: Ipv6Net | undefined;
  network: Ipv4Net | undefined;
  ipv6Network: Ipv6Net | undefined;
  /** Elements of the values that did not parse (upstream logs each). */
  invalid: Array<{ key: string; value: string }>;
}

/**
 * upstream's ReadCIDRFromSubnetFile: the value may be a comma list; invalid
 * elements are skipped; exactly one valid CIDR is used (host bits masked:
 * 10.5.72.1/24 -> 10.5.72.0/24); none or several count as absent.
 */
function single<T extends Ipv4Net | Ipv6Net>(
  key: string,
  value: string | undefined,
  parse: (s: string) => T | undefined,
  invalid: PreviousSubnets['invalid'],
): T | undefined {
  if (value === undefined || value === '') return undefined;
  const valid: T[] = [];
  for (const element of value.split(',')) {
    const n = parse(element.trim());
    if (n) valid.push(n);
    else invalid.push({ key, value: element });
  }
  return valid.length === 1 ? (valid[0]!.canonical() as T) : undefined;
}

/** Reads the previous subnet file; a missing file gives all-absent. */
export function readPreviousSubnets(file: string): PreviousSubnets {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      return { subnet: undefined, ipv6Subnet: undefined, network: undefined, ipv6Network: undefined, invalid: [] };
    }
    throw e;
  }
  const env = parseDotenv(text);
  const invalid: PreviousSubnets['invalid'] = [];
  const v4 = (s: string) => Ipv4Net.tryParse(s);
  const v6 = (s: string) => Ipv6Net.tryParse(s);
  return {
    subnet: single('FLANNEL_SUBNET', env.get('FLANNEL_SUBNET'), v4, invalid),
    ipv6Subnet: single('FLANNEL_IPV6_SUBNET', env.get('FLANNEL_IPV6_SUBNET'), v6, invalid),
    network: single('FLANNEL_NETWORK', env.get('FLANNEL_NETWORK'), v4, invalid),
    ipv6Network: single('FLANNEL_IPV6_NETWORK', env.get('FLANNEL_IPV6_NETWORK'), v6, invalid),
    invalid,
  };
}
