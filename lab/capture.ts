/**
 * Packet capture for conformance tests: run tcpdump inside a namespace into a
 * pcap file and read the packets back with our own pcap reader.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { type ChildProcess } from 'node:child_process';
import { type Lab } from './netns';

/** pcap link types (tcpdump.org/linktypes.html). */
const LINKTYPE_ETHERNET = 1;
const LINKTYPE_RAW = 101;
const LINKTYPE_LINUX_SLL = 113;
const LINKTYPE_IPV4 = 228;

/** The IPv4 packets of a classic pcap file (link layer stripped). */
export function readPcapIpv4(file: string): Buffer[] {
  const data = fs.readFileSync(file);
  if (data.length < 24) return [];
  const magic = data.readUInt32LE(0);
  let le: boolean;
  if (magic === 0xa1b2c3d4 || magic === 0xa1b23c4d) le = true;
  else if (magic === 0xd4c3b2a1 || magic === 0x4d3cb2a1) le = false;
  else throw new Error(`${file}: not a pcap file`);
  const u32 = (o: number) => (le ? data.readUInt32LE(o) : data.readUInt32BE(o));
  const linktype = u32(20) & 0x0fffffff;
  const out: Buffer[] = [];
  let off = 24;
  while (off + 16 <= data.length) {
    const caplen = u32(off + 8);
    const rec = data.subarray(off + 16, off + 16 + caplen);
    off += 16 + caplen;
    let ip: Buffer | undefined;
    if (linktype === LINKTYPE_ETHERNET) {
      if (rec.length >= 14 && rec.readUInt16BE(12) === 0x0800) ip = rec.subarray(14);
    } else if (linktype === LINKTYPE_LINUX_SLL) {
      if (rec.length >= 16 && rec.readUInt16BE(14) === 0x0800) ip = rec.subarray(16);
    } else if (linktype === LINKTYPE_RAW || linktype === LINKTYPE_IPV4) {
      if (rec.length >= 1 && rec[0]! >> 4 === 4) ip = rec;
    } else {
      throw new Error(`${file}: unsupported pcap link type ${linktype}`);
    }
    if (ip) out.push(Buffer.from(ip));
  }
  return out;
}

export class Capture {
  private constructor(
    private readonly child: ChildProcess,
    readonly file: string,
    private readonly exited: Promise<void>,
  ) {}

  /**
   * Starts `tcpdump -i <iface>` in `ns` with a BPF `filter`, stopping by
   * itself after `count` packets. Resolves once tcpdump is listening.
   */
  static async start(lab: Lab, ns: string, iface: string, filter: string, count: number): Promise<Capture> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${lab.prefix}-cap-`));
    lab.onCleanup(() => fs.rmSync(dir, { recursive: true, force: true }));
    const file = path.join(dir, `${iface}.pcap`);
    const child = lab.spawn(ns, 'tcpdump', ['-i', iface, '-n', '-U', '-s', '0', '-c', String(count), '-w', file, filter]);
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    await new Promise<void>((resolve, reject) => {
      let err = '';
      const timer = setTimeout(() => reject(new Error(`tcpdump on ${iface} did not start: ${err}`)), 10_000);
      child.stderr?.on('data', (d: Buffer) => {
        err += d.toString();
        if (err.includes('listening on')) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`tcpdump on ${iface} exited (${code}): ${err}`));
      });
    });
    return new Capture(child, file, exited);
  }

  /** Waits for tcpdump to reach its count (or stops it after `timeoutMs`) and returns the IPv4 packets. */
  async packets(timeoutMs = 5000): Promise<Buffer[]> {
    const timer = setTimeout(() => this.child.kill('SIGINT'), timeoutMs);
    await this.exited;
    clearTimeout(timer);
    return readPcapIpv4(this.file);
  }
}
