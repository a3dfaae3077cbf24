/**
 * One measurement each: iperf3 TCP (1 and 4 streams, cubic), iperf3 64-byte
 * UDP datagrams received per second, sockperf ping-pong round trips, and the
 * CPU time the user-space forwarders used meanwhile (from /proc).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type Lab } from '../lab/netns';
import type { ModeSetup } from './modes';

export interface Durations {
  /** Seconds each throughput or latency test runs. */
  seconds: number;
  /**
   * Seconds of the 4-stream TCP case: on 2 vCPUs its throughput switches
   * between states within a run, so longer samples average over them.
   */
  tcp4Seconds: number;
}

export interface CaseResult {
  value: number;
  /** CPU the forwarders used during the case, % of one core (undefined for kernel modes). */
  cpuPct: number | undefined;
}

const CLK_TCK = 100; // USER_HZ on Linux, the unit of /proc/<pid>/stat times

function cpuSeconds(pids: number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may contain spaces) start at ") ".
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    ticks += Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14, 15 of proc(5))
  }
  return ticks / CLK_TCK;
}

async function withCpu(mode: ModeSetup, f: () => Promise<number>): Promise<CaseResult> {
  if (mode.forwarderPids.length === 0) return { value: await f(), cpuPct: undefined };
  const c0 = cpuSeconds(mode.forwarderPids);
  const t0 = process.hrtime.bigint();
  const value = await f();
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  return { value, cpuPct: ((cpuSeconds(mode.forwarderPids) - c0) / wall) * 100 };
}

const IPERF_PORT = 5201;
const SOCKPERF_PORT = 11111;
/** lab/udp-rtt's binary: round trips over IPv6, which Debian's sockperf 3.7 cannot address. */
const UDP_RTT = path.resolve(__dirname, '..', '..', 'build', 'Release', 'udp_rtt');

/** Where pod 2 is reached: its IPv4 address, or its IPv6 one in the IPv6 modes. */
function target(mode: ModeSetup): string {
  const pod = mode.cluster.nodes[1]!.pod;
  return mode.ipv6 ? pod.address6! : pod.address;
}

/** Starts the long-running servers (iperf3, sockperf) in pod 2 of a mode. */
export async function startServers(lab: Lab, mode: ModeSetup): Promise<void> {
  const pod = mode.cluster.nodes[1]!.pod;
  lab.spawn(pod.ns, 'iperf3', ['-s', '-B', target(mode), '-p', String(IPERF_PORT)]);
  if (mode.ipv6) lab.spawn(pod.ns, UDP_RTT, ['server', target(mode), String(SOCKPERF_PORT)]);
  else lab.spawn(pod.ns, 'sockperf', ['server', '-i', pod.address, '-p', String(SOCKPERF_PORT)]);
  // Neither says when it is ready: wait until both sockets listen.
  for (let i = 0; i < 100; i++) {
    const tcp = (await lab.exec(pod.ns, 'ss', ['-Hltn', `sport = :${IPERF_PORT}`])).stdout.trim();
    const udp = (await lab.exec(pod.ns, 'ss', ['-Hlun', `sport = :${SOCKPERF_PORT}`])).stdout.trim();
    if (tcp && udp) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`iperf3 or sockperf server in ${pod.ns} did not come up`);
}

interface IperfJson {
  end: {
    sum_received?: { bits_per_second: number; bytes: number; seconds: number; packets?: number; lost_packets?: number };
  };
  error?: string;
}

async function iperf(lab: Lab, mode: ModeSetup, args: string[], seconds: number): Promise<IperfJson> {
  const from = mode.cluster.nodes[0]!.pod.ns;
  const to = target(mode);
  const r = await lab.exec(
    from,
    'iperf3',
    ['-c', to, '-p', String(IPERF_PORT), '-t', String(seconds), '-J', ...args],
    { timeoutMs: (seconds + 20) * 1000 },
  );
  const j = JSON.parse(r.stdout) as IperfJson;
  if (j.error) throw new Error(`iperf3 ${args.join(' ')}: ${j.error}`);
  return j;
}

/** TCP throughput received at pod 2, Gbit/s, with `streams` parallel streams, cubic, first second omitted. */
export function tcpGbps(lab: Lab, mode: ModeSetup, streams: number, d: Durations): Promise<CaseResult> {
  return withCpu(mode, async () => {
    const j = await iperf(lab, mode, ['-C', 'cubic', '-O', '1', '-P', String(streams)], streams > 1 ? d.tcp4Seconds : d.seconds);
    return j.end.sum_received!.bits_per_second / 1e9;
  });
}

/** 64-byte UDP datagrams per second received at pod 2, the sender unthrottled. */
export function udp64Pps(lab: Lab, mode: ModeSetup, d: Durations): Promise<CaseResult> {
  return withCpu(mode, async () => {
    const j = await iperf(lab, mode, ['-u', '-l', '64', '-b', '0'], d.seconds);
    const s = j.end.sum_received!;
    const received = (s.packets ?? 0) - (s.lost_packets ?? 0);
    return received / s.seconds;
  });
}

export interface RttResult {
  p50: number;
  p99: number;
  cpuPct: number | undefined;
}

/** Round trips of 64-byte request/response messages (sockperf ping-pong, full RTT), µs. */
export async function rttUs(lab: Lab, mode: ModeSetup, d: Durations): Promise<RttResult> {
  const from = mode.cluster.nodes[0]!.pod.ns;
  const to = target(mode);
  let p50 = NaN;
  let p99 = NaN;
  const r = await withCpu(mode, async () => {
    if (mode.ipv6) {
      const out = await lab.exec(from, UDP_RTT, ['client', to, String(SOCKPERF_PORT), String(d.seconds), '64'], { timeoutMs: (d.seconds + 20) * 1000 });
      const j = JSON.parse(out.stdout) as { p50_us: number; p99_us: number };
      p50 = j.p50_us;
      p99 = j.p99_us;
      return p50;
    }
    const out = await lab.exec(
      from,
      'sockperf',
      ['ping-pong', '-i', to, '-p', String(SOCKPERF_PORT), '-t', String(d.seconds), '-m', '64', '--full-rtt'],
      { timeoutMs: (d.seconds + 20) * 1000 },
    );
    const text = out.stdout + out.stderr;
    const pct = (p: string) => Number(new RegExp(`percentile ${p} =\\s+([0-9.]+)`).exec(text)?.[1] ?? NaN);
    p50 = pct('50\\.000');
    p99 = pct('99\\.000');
    if (!Number.isFinite(p50) || !Number.isFinite(p99)) throw new Error(`sockperf output not understood:\n${text}`);
    return p50;
  });
  return { p50, p99, cpuPct: r.cpuPct };
}
