/**
 * Traffic helpers for tests and the demo: verified TCP transfers between
 * namespaces, and raw UDP datagrams sent from inside a namespace.
 */
import * as path from 'node:path';
import { JsonChannel } from './json-channel';
import { type Lab } from './netns';

const TCP_TRANSFER = path.join(__dirname, 'bin', 'tcp-transfer.js');
const UDP_SEND = path.join(__dirname, 'bin', 'udp-send.js');
/** A Python tool (Node cannot send with UDP_SEGMENT); it is not compiled, so it lives in the source tree. */
const UDP_DATAGRAMS = path.resolve(__dirname, '..', '..', 'lab', 'bin', 'udp-datagrams.py');

export interface TransferResult {
  bytes: number;
  sentSha256: string;
  receivedSha256: string;
  seconds: number;
}

/**
 * Sends `bytes` deterministic bytes over TCP from `fromNs` to `toAddress`
 * (served in `toNs`) and returns both sides' hashes.
 */
export async function tcpTransfer(
  lab: Lab,
  fromNs: string,
  toNs: string,
  toAddress: string,
  port: number,
  bytes: number,
  timeoutMs = 120_000,
): Promise<TransferResult> {
  const server = lab.spawn(toNs, process.execPath, [TCP_TRANSFER, 'serve', toAddress, String(port)]);
  const serverCh = new JsonChannel(server, `tcp server in ${toNs}`);
  await serverCh.wait((m) => m['event'] === 'listening', 10_000, 'listening');
  const started = process.hrtime.bigint();
  const client = lab.spawn(fromNs, process.execPath, [TCP_TRANSFER, 'send', toAddress, String(port), String(bytes), String(port)]);
  const clientCh = new JsonChannel(client, `tcp client in ${fromNs}`);
  const [sent, received] = await Promise.all([
    clientCh.wait<{ event: string; bytes: number; sha256: string; message?: string }>(
      (m) => m['event'] === 'sent' || m['event'] === 'error',
      timeoutMs,
      'sent',
    ),
    serverCh.wait<{ event: string; bytes: number; sha256: string; message?: string }>(
      (m) => m['event'] === 'received' || m['event'] === 'error',
      timeoutMs,
      'received',
    ),
  ]);
  if (sent.event === 'error') throw new Error(`tcp sender failed: ${sent.message}`);
  if (received.event === 'error') throw new Error(`tcp receiver failed: ${received.message}`);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return { bytes: received.bytes, sentSha256: sent.sha256, receivedSha256: received.sha256, seconds };
}

/** Sends one UDP datagram with `payload` from `bindAddress` (any port) inside `ns`, optionally with an IP TTL. */
export async function sendUdpDatagram(
  lab: Lab,
  ns: string,
  bindAddress: string,
  toAddress: string,
  toPort: number,
  payload: Buffer,
  ttl?: number,
): Promise<void> {
  const args = [UDP_SEND, bindAddress, toAddress, String(toPort), payload.toString('hex')];
  if (ttl !== undefined) args.push(String(ttl));
  await lab.exec(ns, process.execPath, args, {
    timeoutMs: 10_000,
  });
}

/**
 * Sends `payloads` (equal sizes but a shorter last) from `bindAddress` in
 * `ns` as one UDP_SEGMENT send: on a veth underlay the receiving socket,
 * with UDP_GRO, reads them as one message, as the datapath does under load.
 */
export async function sendUdpBurst(lab: Lab, ns: string, bindAddress: string, toAddress: string, toPort: number, payloads: Buffer[]): Promise<void> {
  const hex = payloads.map((p) => p.toString('hex')).join(',');
  await lab.exec(ns, 'python3', [UDP_DATAGRAMS, 'burst', bindAddress, toAddress, String(toPort), hex], { timeoutMs: 10_000 });
}

export interface DatagramsResult {
  sent: number;
  received: number;
  /** Datagrams whose contents or length did not match what was sent. */
  bad: number;
  /** Distinct datagram numbers received intact. */
  distinct: number;
  /** Intact datagrams received, by size. */
  sizes: Record<string, number>;
}

/**
 * Sends `count` numbered UDP datagrams (sizes cycling through `sizes`) from
 * `fromNs` to `toAddress:port` served in `toNs`, and reports what arrived.
 * With `gso`, the sender uses UDP_SEGMENT (groups of up to 32 equal-size
 * datagrams in one send), so a flannel0 with USO sees UDP GSO packets.
 */
export async function udpDatagrams(
  lab: Lab,
  from: { ns: string; address: string },
  to: { ns: string; address: string },
  port: number,
  count: number,
  sizes: number[],
  gso = false,
): Promise<DatagramsResult> {
  const server = lab.spawn(to.ns, 'python3', [UDP_DATAGRAMS, 'serve', to.address, String(port), '1000']);
  const serverCh = new JsonChannel(server, `udp receiver in ${to.ns}`);
  await serverCh.wait((m) => m['event'] === 'listening', 10_000, 'listening');
  const args = [UDP_DATAGRAMS, 'send', from.address, to.address, String(port), String(count), sizes.join(',')];
  if (gso) args.push('gso');
  const sent = JSON.parse((await lab.exec(from.ns, 'python3', args, { timeoutMs: 60_000 })).stdout) as { count: number };
  const r = await serverCh.wait<{ count: number; bad: number; distinct: number; sizes: Record<string, number> }>(
    (m) => m['event'] === 'received',
    30_000,
    'received',
  );
  return { sent: sent.count, received: r.count, bad: r.bad, distinct: r.distinct, sizes: r.sizes };
}

export interface PingSeries {
  sent: number;
  received: number;
  /** The longest run of consecutive unanswered pings, as time (run length × interval). */
  longestGapMs: number;
}

/**
 * Pings `address` from `ns` `count` times every `intervalMs` (10 Hz by
 * default) and measures the longest interruption: the longest run of
 * sequence numbers without a reply. Bounded: count × interval + 2 s.
 */
export async function pingSeries(lab: Lab, ns: string, address: string, count: number, intervalMs = 100): Promise<PingSeries> {
  let out: string;
  try {
    out = (await lab.exec(ns, 'ping', ['-n', '-c', String(count), '-i', String(intervalMs / 1000), '-W', '1', address], { timeoutMs: count * intervalMs + 10_000 })).stdout;
  } catch (e) {
    out = (e as { stdout?: string }).stdout ?? '';
  }
  const answered = new Set<number>();
  for (const m of out.matchAll(/icmp_seq=(\d+)/g)) answered.add(Number(m[1]));
  let longest = 0;
  let run = 0;
  for (let seq = 1; seq <= count; seq++) {
    run = answered.has(seq) ? 0 : run + 1;
    longest = Math.max(longest, run);
  }
  return { sent: count, received: answered.size, longestGapMs: longest * intervalMs };
}

/**
 * The kernel's checksum error counters in `ns` (nstat: TcpInCsumErrors,
 * UdpInCsumErrors, IpExtInCsumErrors), summed: every packet a socket or the
 * IP layer there dropped for a bad checksum.
 */
export async function kernelChecksumErrors(lab: Lab, ns: string): Promise<number> {
  const out = (await lab.exec(ns, 'nstat', ['-az', 'TcpInCsumErrors', 'UdpInCsumErrors', 'IpExtInCsumErrors'])).stdout;
  return [...out.matchAll(/^\S+\s+(\d+)/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
}
