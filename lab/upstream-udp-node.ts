/**
 * A node running the upstream-style udp forwarder (lab/upstream-udp, built as
 * build/Release/upstream_udp_proxy): flannel0 opened and configured as
 * upstream's udp backend does (pkg/backend/udp/udp_network_amd64.go,
 * configureIface: the subnet's network address /32, MTU, up, the Network
 * routed to it), with routes set by the caller, as upstream's lease watch
 * would. Tests use it as the upstream peer of a mixed cluster; the benchmark
 * as "what you run today".
 */
import { type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { type Ipv4Net, formatIpv4 } from '../src/util/ipv4';
import { JsonChannel } from './json-channel';
import { type Lab } from './netns';

export const UPSTREAM_UDP_PROXY = path.resolve(__dirname, '..', '..', 'build', 'Release', 'upstream_udp_proxy');

export interface UpstreamUdpNodeOptions {
  /** The node's namespace. */
  ns: string;
  /** The address the socket binds (upstream: the external interface's). */
  bindAddress: string;
  port?: number;
  subnet: Ipv4Net;
  network: Ipv4Net;
  /** flannel0's MTU (upstream: the underlay MTU - 28). */
  mtu: number;
}

export class UpstreamUdpNode {
  private constructor(
    private readonly channel: JsonChannel,
    readonly tun: string,
    readonly port: number,
    /** The forwarder's process (`ip netns exec` execs it in place). */
    private readonly child: ChildProcess,
  ) {}

  get pid(): number {
    return this.child.pid!;
  }

  /** Stops the forwarder, as stopping upstream flanneld does: flannel0 and its route go with the process. */
  async stop(timeoutMs = 5000): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`upstream_udp_proxy did not exit within ${timeoutMs} ms of SIGTERM`)), timeoutMs);
    });
    try {
      await Promise.race([exited, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  static async start(lab: Lab, o: UpstreamUdpNodeOptions): Promise<UpstreamUdpNode> {
    const port = o.port ?? 8285;
    const child = lab.spawn(o.ns, UPSTREAM_UDP_PROXY, ['flannel%d', o.bindAddress, String(port), formatIpv4(o.subnet.network), String(o.mtu)]);
    const channel = new JsonChannel(child, `upstream_udp_proxy in ${o.ns}`);
    const { tun } = await channel.wait<{ tun: string }>((m) => m['event'] === 'ready', 10_000, 'ready');
    await lab.exec(o.ns, 'ip', ['addr', 'add', `${formatIpv4(o.subnet.network)}/32`, 'dev', tun]);
    await lab.exec(o.ns, 'ip', ['link', 'set', 'dev', tun, 'mtu', String(o.mtu), 'up']);
    await lab.exec(o.ns, 'ip', ['route', 'add', o.network.toString(), 'dev', tun]);
    return new UpstreamUdpNode(channel, tun, port, child);
  }

  /** Routes `subnet` to `peer` (upstream: on a lease "added" event). */
  async setRoute(subnet: Ipv4Net, peer: string, port = this.port): Promise<void> {
    await this.command(`set ${subnet.toString()} ${peer} ${port}`);
  }

  /** Withdraws `subnet` (upstream: on a lease "removed" event). */
  async deleteRoute(subnet: Ipv4Net): Promise<void> {
    await this.command(`del ${subnet.toString()}`);
  }

  /** One command at a time: replies carry no id, so they answer in order. */
  private queue: Promise<unknown> = Promise.resolve();
  private command(line: string): Promise<void> {
    const run = async (): Promise<void> => {
      const reply = this.channel.wait<{ reply: string }>((m) => 'reply' in m, 5000, `reply to "${line}"`);
      this.channel.sendLine(line);
      const r = await reply;
      if (r.reply !== 'ok') throw new Error(`upstream_udp_proxy refused "${line}"`);
    };
    const next = this.queue.then(run, run);
    this.queue = next.catch(() => undefined);
    return next;
  }
}
