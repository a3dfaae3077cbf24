/**
 * A flannel cluster in etcd mode, as an operator runs it: nodes on a bridged
 * underlay, etcd on the underlay (in the switch namespace, 192.168.100.254),
 * the real `bin/flanneld` in each node namespace, and a pod per node
 * attached from that node's subnet.env as a CNI plugin would.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { type ChildProcess, execFile } from 'node:child_process';
import { Ipv4Net, formatIpv4 } from '../src/util/ipv4';
import { formatIpv6, Ipv6Net } from '../src/util/ipv6';
import { parseDotenv } from '../src/lease/subnet-file';
import { EtcdServer } from './etcd';
import { type Lab } from './netns';
import { TEST_FAULTS_ENV } from './test-addon';
import { attachPod, buildCluster, type Cluster, type NodeSpec } from './topology';

export const FLANNELD = path.resolve(__dirname, '..', '..', 'bin', 'flanneld');
/** flanneld with the test build of the addon and faults armed (test/bin/flanneld-test.ts). */
export const FLANNELD_WITH_FAULTS = path.resolve(__dirname, '..', 'test', 'bin', 'flanneld-test.js');
/** `flanneld cleanup` in a namespace (flanneld stopped first): exit code, stdout, stderr. `prefix`: the lab's nsCommand(ns), when it has a mount namespace. */
export function runCleanup(ns: string, prefix: readonly string[] = ['ip', 'netns', 'exec', ns]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(prefix[0]!, [...prefix.slice(1), process.execPath, FLANNELD, 'cleanup'], { timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

export const ETCD_HOST = '192.168.100.254';
export const ETCD_PORT = 2379;
export const PREFIX = '/coreos.com/network';

export interface FlannelClusterOptions {
  nodes: number;
  /** The network config JSON written to <prefix>/config. */
  config: Record<string, unknown>;
  prefix?: string;
  underlayMtu?: number;
  /**
   * "bridge" (default): a switch namespace, etcd on it at 192.168.100.254.
   * "veth": two nodes on a direct veth pair (the benchmark's topology),
   * etcd in node 1 on its underlay address.
   */
  underlay?: 'bridge' | 'veth';
  /** A dual-stack underlay (IPv6 addresses on it, IPv6 forwarding on). */
  ipv6?: boolean;
  /** The flanneld to run (default: this checkout's bin/flanneld), e.g. one from the release tarball. */
  flanneld?: string;
}

/** One flanneld process and what it wrote. */
export class FlannelNode {
  readonly logLines: string[] = [];
  exitCode: number | null | undefined;
  private readonly exited: Promise<number | null>;

  constructor(
    readonly spec: NodeSpec,
    readonly proc: ChildProcess,
    readonly subnetFile: string,
  ) {
    const onData = (d: Buffer): void => {
      for (const line of d.toString().split('\n')) if (line.trim() !== '') this.logLines.push(line);
    };
    proc.stderr?.on('data', onData);
    proc.stdout?.on('data', onData);
    this.exited = new Promise((resolve) =>
      proc.once('exit', (code, sig) => {
        this.exitCode = code ?? (sig ? -1 : null);
        resolve(this.exitCode);
      }),
    );
  }

  get running(): boolean {
    return this.exitCode === undefined;
  }

  /** Log messages (the "msg" of each JSON line; the lab runs flanneld with -log-format=json). */
  messages(): string[] {
    return this.logLines.map((l) => {
      try {
        return String((JSON.parse(l) as { msg?: unknown }).msg ?? l);
      } catch {
        return l;
      }
    });
  }

  subnetEnv(): Map<string, string> | undefined {
    try {
      return parseDotenv(fs.readFileSync(this.subnetFile, 'utf8'));
    } catch {
      return undefined;
    }
  }

  /** Resolves with the exit code; rejects after `timeoutMs`. */
  waitExit(timeoutMs: number): Promise<number | null> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`flanneld in ${this.spec.ns} still running after ${timeoutMs} ms`)), timeoutMs);
    });
    // The timer must not outlive the wait: a pending one keeps the test process alive until it fires.
    return Promise.race([this.exited, timeout]).finally(() => clearTimeout(timer));
  }

  /** Sends `sig` and waits for the exit code. */
  async stop(sig: NodeJS.Signals = 'SIGTERM', timeoutMs = 10_000): Promise<number | null> {
    if (!this.running) return this.exitCode ?? null;
    this.proc.kill(sig);
    return this.waitExit(timeoutMs);
  }
}

/**
 * What every flannel test cluster shares, whatever runs its control plane:
 * the topology, one flanneld per node namespace, subnet.env files, pods.
 */
export abstract class FlanneldNodes {
  readonly nodes: Array<FlannelNode | undefined>;
  protected readonly dir: string;
  /** The bin/flanneld startNode runs. */
  flanneld = FLANNELD;
  /** Runs flanneld under this command (e.g. setpriv with fewer capabilities); empty by default. */
  commandPrefix: string[] = [];
  /** Pass `-iface=<underlay>` unless the arguments choose the interface (false: flanneld finds it itself). */
  autoIface = true;

  protected constructor(
    readonly lab: Lab,
    readonly topology: Cluster,
  ) {
    this.nodes = topology.nodes.map(() => undefined);
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), `${lab.prefix}-flannel-`));
    lab.onCleanup(() => fs.rmSync(this.dir, { recursive: true, force: true }));
  }

  subnetFileOf(i: number): string {
    return path.join(this.dir, `node${i}`, 'subnet.env');
  }

  /** The control-plane flags for node i that `extraArgs` does not set itself. */
  protected abstract controlArgs(i: number, given: (...flags: string[]) => boolean): string[];

  /**
   * Starts bin/flanneld on node i (1-based) with the control-plane flags, the
   * underlay interface and the subnet file, unless `extraArgs` gives its own.
   * With `testFaults`, the test launcher runs instead, with those faults armed.
   */
  startNode(i: number, extraArgs: string[] = [], env: NodeJS.ProcessEnv = {}, testFaults: readonly string[] = []): FlannelNode {
    const spec = this.topology.nodes[i - 1]!;
    const given = (...flags: string[]) => extraArgs.some((a) => flags.some((f) => a === `-${f}` || a === `--${f}` || a.startsWith(`-${f}=`) || a.startsWith(`--${f}=`)));
    const args = [
      testFaults.length > 0 ? FLANNELD_WITH_FAULTS : this.flanneld,
      ...this.controlArgs(i, given),
      ...(!this.autoIface || given('iface', 'iface-regex', 'iface-can-reach', 'public-ip') ? [] : [`-iface=${spec.underlayIf}`]),
      ...(given('subnet-file') ? [] : [`-subnet-file=${this.subnetFileOf(i)}`]),
      // The tests read the log's structured fields (FlannelNode.messages()).
      ...(given('log-format') ? [] : ['-log-format=json']),
      ...extraArgs,
    ];
    const fullEnv = testFaults.length > 0 ? { ...env, [TEST_FAULTS_ENV]: testFaults.join(',') } : env;
    const command = [...this.commandPrefix, 'env', ...Object.entries(fullEnv).map(([k, v]) => `${k}=${v}`), process.execPath, ...args];
    const proc = this.lab.spawn(spec.ns, command[0]!, command.slice(1));
    const subnetArg = [...args].reverse().find((a) => /^--?subnet-file=/.test(a));
    const node = new FlannelNode(spec, proc, subnetArg ? subnetArg.slice(subnetArg.indexOf('=') + 1) : this.subnetFileOf(i));
    this.nodes[i - 1] = node;
    return node;
  }

  /** Waits until node i has written subnet.env; returns its FLANNEL_SUBNET network. */
  async waitSubnet(i: number, timeoutMs = 20_000): Promise<Ipv4Net> {
    const node = this.nodes[i - 1]!;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const s = node.subnetEnv()?.get('FLANNEL_SUBNET');
      if (s) return Ipv4Net.parse(s).canonical();
      if (!node.running) throw new Error(`flanneld on node ${i} exited (${node.exitCode}):\n${node.logLines.slice(-20).join('\n')}`);
      if (Date.now() > deadline) throw new Error(`node ${i} wrote no subnet.env in ${timeoutMs} ms:\n${node.logLines.slice(-20).join('\n')}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Attaches node i's pod in its leased subnet(s), with the MTU from subnet.env (what a CNI plugin does). */
  async attachPod(i: number): Promise<NodeSpec['pod']> {
    const spec = this.topology.nodes[i - 1]!;
    const env = this.nodes[i - 1]!.subnetEnv()!;
    const v4 = env.get('FLANNEL_SUBNET');
    if (v4) {
      const subnet = Ipv4Net.parse(v4).canonical();
      spec.podSubnet = subnet;
      spec.pod.address = formatIpv4((subnet.network + 2) >>> 0);
      spec.pod.gateway = formatIpv4((subnet.network + 1) >>> 0);
    } else {
      spec.pod.address = ''; // IPv6 only
      spec.pod.gateway = '';
    }
    const v6 = env.get('FLANNEL_IPV6_SUBNET');
    if (v6) {
      const net6 = Ipv6Net.tryParse(v6)!.canonical();
      spec.pod.address6 = formatIpv6(net6.network + 2n);
      spec.pod.gateway6 = formatIpv6(net6.network + 1n);
      spec.pod.prefixLen6 = net6.prefixLen;
    }
    await attachPod(this.lab, spec, Number(env.get('FLANNEL_MTU')));
    return spec.pod;
  }
}

export class FlannelCluster extends FlanneldNodes {
  private constructor(
    lab: Lab,
    topology: Cluster,
    readonly etcd: EtcdServer,
    readonly prefix: string,
    /** Where etcdctl runs (the namespace etcd listens in). */
    private readonly etcdNs: string,
  ) {
    super(lab, topology);
  }

  protected controlArgs(_i: number, given: (...flags: string[]) => boolean): string[] {
    return [...(given('etcd-endpoints') ? [] : [`-etcd-endpoints=${this.etcd.endpoint}`]), ...(given('etcd-prefix') ? [] : [`-etcd-prefix=${this.prefix}`])];
  }

  static async create(lab: Lab, opts: FlannelClusterOptions): Promise<FlannelCluster> {
    const underlay = opts.underlay ?? 'bridge';
    const topology = await buildCluster(lab, { nodes: opts.nodes, underlay, withPods: false, ipv6: opts.ipv6 ?? false, ...(opts.underlayMtu ? { underlayMtu: opts.underlayMtu } : {}) });
    let etcdNs: string;
    let host: string;
    if (underlay === 'bridge') {
      etcdNs = topology.switchNs!;
      host = ETCD_HOST;
      await lab.exec(etcdNs, 'ip', ['addr', 'add', `${ETCD_HOST}/24`, 'dev', lab.name('br')]);
    } else {
      etcdNs = topology.nodes[0]!.ns;
      host = topology.nodes[0]!.underlayAddress;
    }
    const etcd = await EtcdServer.start(lab, { ns: etcdNs, host, clientPort: ETCD_PORT, peerPort: ETCD_PORT + 1 });
    const c = new FlannelCluster(lab, topology, etcd, opts.prefix ?? PREFIX, etcdNs);
    if (opts.flanneld) c.flanneld = opts.flanneld;
    await c.etcdctl('put', `${c.prefix}/config`, JSON.stringify(opts.config));
    return c;
  }

  get etcdEndpoint(): string {
    return this.etcd.endpoint;
  }

  /** etcdctl against the cluster's etcd (run in the namespace etcd listens in). */
  async etcdctl(...args: string[]): Promise<string> {
    const r = await this.lab.exec(this.etcdNs, 'env', ['ETCDCTL_API=3', 'etcdctl', '--endpoints', this.etcd.endpoint, ...args]);
    return r.stdout;
  }
}
