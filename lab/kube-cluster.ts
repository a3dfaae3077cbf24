/**
 * A flannel cluster in kube mode, as the kube-flannel DaemonSet runs it:
 * nodes on a bridged underlay, the kube-apiserver stand-in on the underlay
 * (in the switch namespace, https://192.168.100.254:6443, CA and bearer
 * token in a kubeconfig), a Node object per node with its podCIDR
 * (10.244.<i>.0/24), and the real `bin/flanneld -kube-subnet-mgr
 * -kubeconfig-file=…` in each node namespace with NODE_NAME=node-<i>.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { NodeFixture, RecordedRequest } from './kube-apiserver';
import { FlanneldNodes, type FlannelNode } from './flannel-cluster';
import { JsonChannel } from './json-channel';
import { writeKubeconfig } from './kubeconfig';
import { type Lab } from './netns';
import { makeTestPki } from './tls';
import { buildCluster, type Cluster } from './topology';

export const API_HOST = '192.168.100.254';
export const API_PORT = 6443;
const STAND_IN = path.resolve(__dirname, 'bin', 'kube-apiserver.js');

export interface KubeClusterOptions {
  nodes: number;
  /** net-conf.json: an object (JSON-encoded) or the exact text. */
  netConf: Record<string, unknown> | string;
  /** The Nodes' podCIDRs (and the underlay): IPv4 (default), dual stack, or IPv6 only. */
  families?: 'ipv4' | 'dual' | 'ipv6';
}

export type KubeNodeObject = {
  metadata: { name: string; resourceVersion: string; annotations?: Record<string, string> };
  spec: { podCIDR?: string };
  status: { conditions: Array<Record<string, string>> };
};

export function kubeNodeName(i: number): string {
  return `node-${i}`;
}

export function podCidrOf(i: number): string {
  return `10.244.${i}.0/24`;
}

/** Node i's IPv6 podCIDR (dual-stack and IPv6-only clusters). */
export function podCidr6Of(i: number): string {
  return `fd00:244:0:${i}::/64`;
}

export class KubeFlannelCluster extends FlanneldNodes {
  readonly kubeconfig: string;
  readonly netConfPath: string;

  private constructor(
    lab: Lab,
    topology: Cluster,
    private readonly api: JsonChannel,
  ) {
    super(lab, topology);
    this.kubeconfig = path.join(this.dir, 'kubeconfig');
    this.netConfPath = path.join(this.dir, 'net-conf.json');
  }

  static async create(lab: Lab, opts: KubeClusterOptions): Promise<KubeFlannelCluster> {
    const families = opts.families ?? 'ipv4';
    const topology = await buildCluster(lab, { nodes: opts.nodes, underlay: 'bridge', withPods: false, ipv6: families !== 'ipv4' });
    const switchNs = topology.switchNs!;
    await lab.exec(switchNs, 'ip', ['addr', 'add', `${API_HOST}/24`, 'dev', lab.name('br')]);
    const token = `token-${lab.prefix}`;
    const pkiDir = fs.mkdtempSync(path.join(os.tmpdir(), `${lab.prefix}-pki-`));
    lab.onCleanup(() => fs.rmSync(pkiDir, { recursive: true, force: true }));
    const pki = makeTestPki(pkiDir, [API_HOST]);
    const child = lab.spawn(switchNs, process.execPath, [
      STAND_IN,
      JSON.stringify({ host: API_HOST, port: API_PORT, token, bookmarkIntervalMs: 1000, tls: { certFile: pki.serverCert, keyFile: pki.serverKey } }),
    ]);
    const api = new JsonChannel(child, 'kube-apiserver stand-in');
    await api.wait((m) => m['event'] === 'ready', 10_000, 'the stand-in to listen');
    const c = new KubeFlannelCluster(lab, topology, api);
    writeKubeconfig(c.kubeconfig, { server: `https://${API_HOST}:${API_PORT}`, caFile: pki.caFile, token });
    c.writeNetConf(opts.netConf);
    for (let i = 1; i <= opts.nodes; i++) {
      const cidrs = families === 'ipv4' ? [podCidrOf(i)] : families === 'dual' ? [podCidrOf(i), podCidr6Of(i)] : [podCidr6Of(i)];
      await c.putNode({ name: kubeNodeName(i), podCIDR: cidrs[0]!, podCIDRs: cidrs });
    }
    return c;
  }

  writeNetConf(netConf: Record<string, unknown> | string): void {
    fs.writeFileSync(this.netConfPath, typeof netConf === 'string' ? netConf : JSON.stringify(netConf));
  }

  private async call<T>(msg: Record<string, unknown>): Promise<T> {
    const r = await this.api.request<{ ok: boolean; result: T; error?: string }>(msg);
    if (!r.ok) throw new Error(`stand-in ${String(msg['cmd'])}: ${r.error}`);
    return r.result;
  }

  putNode(node: NodeFixture): Promise<KubeNodeObject> {
    return this.call({ cmd: 'putNode', node });
  }
  editNode(name: string, edit: { annotations?: Record<string, string | null>; spec?: Record<string, unknown> }): Promise<KubeNodeObject> {
    return this.call({ cmd: 'editNode', name, edit });
  }
  deleteNode(name: string): Promise<void> {
    return this.call({ cmd: 'deleteNode', name });
  }
  getNode(name: string): Promise<KubeNodeObject | null> {
    return this.call({ cmd: 'getNode', name });
  }
  requests(): Promise<RecordedRequest[]> {
    return this.call({ cmd: 'requests' });
  }
  /** The API server goes away (every watch breaks) until `listen()`. */
  stopApi(): Promise<void> {
    return this.call({ cmd: 'close' });
  }
  startApi(): Promise<void> {
    return this.call({ cmd: 'listen' });
  }
  /** Forget the watch history: older resourceVersions now get 410 Expired. */
  compact(): Promise<void> {
    return this.call({ cmd: 'compact' });
  }

  protected controlArgs(_i: number, given: (...flags: string[]) => boolean): string[] {
    return [
      '-kube-subnet-mgr',
      ...(given('kubeconfig-file') ? [] : [`-kubeconfig-file=${this.kubeconfig}`]),
      ...(given('net-config-path') ? [] : [`-net-config-path=${this.netConfPath}`]),
    ];
  }

  /** Starts flanneld on node i as the Node `node-<i>` (NODE_NAME), unless `env` names another. */
  override startNode(i: number, extraArgs: string[] = [], env: NodeJS.ProcessEnv = {}): FlannelNode {
    return super.startNode(i, extraArgs, { NODE_NAME: kubeNodeName(i), ...env });
  }
}
