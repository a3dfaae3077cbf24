/**
 * Starts lab/bin/static-udp-node in every node of a cluster, each routing to
 * all the others, and gives tests a handle to query and steer them.
 */
import * as path from 'node:path';
import type { Counters } from '../src/forwarder/native-datapath';
import type { OffloadReport } from '../src/forwarder/offload';
import type { Refusal } from '../src/forwarder/udp-forwarder';
import { type StaticUdpNodeOptions, staticNodeTakesPartialChecksums } from './static-udp-options';
import { JsonChannel } from './json-channel';
import { type Lab } from './netns';
import { type Cluster, type NodeSpec } from './topology';

export const STATIC_NODE_SCRIPT = path.join(__dirname, 'bin', 'static-udp-node.js');

export interface NodeStats {
  counters: Counters;
  routes: number;
  peers: number;
  running: boolean;
  workers: number;
  offload?: OffloadReport;
}

export class StaticUdpNode {
  constructor(
    readonly node: NodeSpec,
    readonly channel: JsonChannel,
    readonly tun: string,
    readonly mtu: number,
    readonly pid: number,
    /** Per-flow source ports another socket held at start (left out). */
    readonly busySourcePorts: number[] = [],
  ) {}

  stats(): Promise<NodeStats> {
    return this.channel.request<NodeStats>({ cmd: 'stats' });
  }

  async setIngressPolicy(policy: { sourceCheck: boolean; allowExternalSources?: boolean }): Promise<void> {
    await this.channel.request({ cmd: 'setIngressPolicy', ...policy });
  }

  /** This node's own addresses as the datapath knows them (no inner packet may come from one). */
  async setLocalAddresses(addresses: string[]): Promise<void> {
    await this.channel.request({ cmd: 'setLocalAddresses', addresses });
  }

  /** Runs the flannel0 configuration again; returns what it had to change. */
  async reconfigure(): Promise<string[]> {
    const r = await this.channel.request<{ changes?: string[]; error?: string }>({ cmd: 'reconfigure' });
    if (r.error !== undefined) throw new Error(r.error);
    return r.changes ?? [];
  }

  /** Datagrams refused since the last call, each (sender, reason) once. */
  async drainRefusals(): Promise<Refusal[]> {
    const r = await this.channel.request<{ refusals: Refusal[] }>({ cmd: 'drainRefusals' });
    return r.refusals;
  }
}

export type StaticNodeExtra = Partial<Omit<StaticUdpNodeOptions, 'bindAddress' | 'subnet' | 'network' | 'routes'>>;

/** `extra` applies to every node, or is asked per node (e.g. offloads on one node only). */
export async function startStaticUdpNodes(
  lab: Lab,
  cluster: Cluster,
  extra: StaticNodeExtra | ((node: NodeSpec, index: number) => StaticNodeExtra) = {},
): Promise<StaticUdpNode[]> {
  const extras = cluster.nodes.map((node, index) => (typeof extra === 'function' ? extra(node, index) : extra));
  // What each node takes, as its lease would tell the others.
  const partial = extras.map((e) => staticNodeTakesPartialChecksums(e));
  return Promise.all(
    cluster.nodes.map(async (node, index) => {
      const opts: StaticUdpNodeOptions = {
        bindAddress: node.underlayAddress,
        subnet: node.podSubnet.toString(),
        network: cluster.network.toString(),
        routes: cluster.nodes
          .map((o, i) => ({ o, i }))
          .filter(({ o }) => o !== node)
          .map(({ o, i }) => ({ subnet: o.podSubnet.toString(), peer: o.underlayAddress, partialChecksums: partial[i]!, kernelDecap: extras[i]!.ebpf === true })),
        ...extras[index],
      };
      const child = lab.spawn(node.ns, process.execPath, [STATIC_NODE_SCRIPT, JSON.stringify(opts)]);
      const channel = new JsonChannel(child, `static-udp-node in ${node.ns}`);
      const ready = await channel.wait<{ event: string; tun: string; mtu: number; pid: number; busySourcePorts: number[]; message?: string }>(
        (m) => m['event'] === 'ready' || m['event'] === 'error',
        15_000,
        'ready event',
      );
      if (ready.event === 'error') throw new Error(`static-udp-node in ${node.ns} failed: ${ready.message}`);
      return new StaticUdpNode(node, channel, ready.tun, ready.mtu, ready.pid, ready.busySourcePorts);
    }),
  );
}
