/**
 * Writing subnet.env (compat §4.1, §4.2).
 *
 * Lines, in this order, `KEY=value\n` each: FLANNEL_NETWORK and
 * FLANNEL_SUBNET (IPv4 on), FLANNEL_IPV6_NETWORK and FLANNEL_IPV6_SUBNET
 * (IPv6 on), FLANNEL_MTU, FLANNEL_IPMASQ. The subnet is written as its first
 * host address (10.5.72.0/24 -> 10.5.72.1/24).
 *
 * The file is replaced atomically (temporary file in the same directory,
 * fsync, rename). A new file gets mode 0644 exactly, whatever the umask; an
 * existing file keeps its mode. Missing parent directories are created.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Ipv4Net } from '../util/ipv4';
import type { Ipv6Net } from '../util/ipv6';

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

/** Atomically replaces `file` with `content`. */
export function writeFileAtomic(file: string, content: string): void {
  const dir = path.dirname(file);
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  let mode = 0o644;
  try {
    const st = fs.statSync(file);
    if (st.isFile()) mode = st.mode & 0o7777;
  } catch {
    /* a new file */
  }
  const tmp = path.join(dir, `.${path.basename(file)}${randomBytes(8).readBigUInt64BE() >> 1n}`);
  const fd = fs.openSync(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
  try {
    fs.writeSync(fd, content);
    fs.fchmodSync(fd, mode); // explicit: the umask must not change it
    fs.fsyncSync(fd);
  } catch (e) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fs.closeSync(fd);
  try {
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
}

export function writeSubnetEnv(file: string, e: SubnetEnv): void {
  writeFileAtomic(file, formatSubnetEnv(e));
}
