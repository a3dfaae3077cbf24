/**
 * The overlay modes the benchmark compares, each on its own two-node
 * topology (pod -> node -> veth underlay -> node -> pod):
 *
 *  - udp:     our datapath (lab/bin/static-udp-node), flannel0, MTU 1472;
 *  - udp-ebpf: the same with the kernel fast path beside it (Datapath ebpf);
 *  - udp-busy-poll: the user-space datapath with busy polling (BusyPollMicroseconds);
 *  - upstream: the upstream-style udp forwarder (lab/upstream-udp: what
 *             upstream flanneld's udp backend runs), flannel0, MTU 1472;
 *  - vxlan:   the kernel's vxlan, configured BY HAND with iproute2 exactly as
 *             flannel's vxlan backend configures it (docs/compatibility.md §6.1, §6.3),
 *             independent of our code: flannel.1, VNI 1, port 8472,
 *             nolearning, local = the public address, MTU 1450, the own
 *             subnet's network address /32, and per peer a permanent
 *             neighbour, a permanent self FDB entry and an onlink route;
 *  - host-gw: plain routes `<subnet> via <peer> dev <underlay>` (docs/compatibility.md §7.2);
 *  - wireguard: flannel-ts's wireguard backend (real bin/flanneld with etcd),
 *    here run by wireguard-go (this kernel has no WireGuard module), whose
 *    CPU is measured as the forwarders';
 *  - udp-v6, vxlan-v6: an IPv6-only kube cluster (the
 *    API server stand-in, the real bin/flanneld), inner IPv6 over the IPv6
 *    underlay: our udp datapath against the kernel's vxlan on flannel-v6.1.
 */
import { execFileSync } from 'node:child_process';
import { FlannelCluster } from '../lab/flannel-cluster';
import { KubeFlannelCluster } from '../lab/kube-cluster';
import { type Lab } from '../lab/netns';
import { type StaticNodeExtra, startStaticUdpNodes } from '../lab/static-udp-nodes';
import { buildCluster, type Cluster } from '../lab/topology';
import { UpstreamUdpNode } from '../lab/upstream-udp-node';
import { formatIpv4 } from '../src/util/ipv4';

export interface ModeSetup {
  name: string;
  cluster: Cluster;
  /** PIDs of the user-space forwarders whose CPU is measured (none for kernel modes). */
  forwarderPids: number[];
  /** The pods talk over IPv6 (their address6). */
  ipv6?: boolean;
}

export interface ModeDefinition {
  name: string;
  description: string;
  setup(lab: Lab): Promise<ModeSetup>;
  /** Only run when named with --modes (an analysis variant, not part of the default comparison). */
  optional?: boolean;
}

const UNDERLAY_MTU = 1500;

/** The udp datapath with busy polling, and how long its workers poll. */
export const BUSY_POLL_MODE = 'udp-busy-poll';
export const BUSY_POLL_MICROSECONDS = 50;

async function udpMode(lab: Lab, name: string, extra: StaticNodeExtra): Promise<ModeSetup> {
  const cluster = await buildCluster(lab, { nodes: 2, underlay: 'veth', underlayMtu: UNDERLAY_MTU, podMtu: UNDERLAY_MTU - 28 });
  const nodes = await startStaticUdpNodes(lab, cluster, extra);
  return { name, cluster, forwarderPids: nodes.map((n) => n.pid) };
}

async function upstreamMode(lab: Lab): Promise<ModeSetup> {
  const cluster = await buildCluster(lab, { nodes: 2, underlay: 'veth', underlayMtu: UNDERLAY_MTU, podMtu: UNDERLAY_MTU - 28 });
  const nodes: UpstreamUdpNode[] = [];
  for (const node of cluster.nodes) {
    nodes.push(await UpstreamUdpNode.start(lab, { ns: node.ns, bindAddress: node.underlayAddress, subnet: node.podSubnet, network: cluster.network, mtu: UNDERLAY_MTU - 28 }));
  }
  for (const [i, node] of cluster.nodes.entries()) {
    for (const peer of cluster.nodes) if (peer !== node) await nodes[i]!.setRoute(peer.podSubnet, peer.underlayAddress);
  }
  return { name: 'upstream', cluster, forwarderPids: nodes.map((n) => n.pid) };
}

async function kernelVxlanMode(lab: Lab): Promise<ModeSetup> {
  const cluster = await buildCluster(lab, { nodes: 2, underlay: 'veth', underlayMtu: UNDERLAY_MTU, podMtu: UNDERLAY_MTU - 50 });
  const macs: string[] = [];
  for (const node of cluster.nodes) {
    const ip = (...args: string[]) => lab.exec(node.ns, 'ip', args);
    await ip('link', 'add', 'flannel.1', 'type', 'vxlan', 'id', '1', 'local', node.underlayAddress, 'dev', node.underlayIf,
      'dstport', '8472', 'nolearning');
    await lab.exec(node.ns, 'sysctl', ['-qw', 'net/ipv6/conf/flannel.1/accept_ra=0']);
    await ip('link', 'set', 'flannel.1', 'mtu', String(UNDERLAY_MTU - 50));
    await ip('addr', 'add', `${formatIpv4(node.podSubnet.network)}/32`, 'dev', 'flannel.1');
    await ip('link', 'set', 'flannel.1', 'up');
    const link = JSON.parse((await ip('-j', 'link', 'show', 'flannel.1')).stdout) as Array<{ address: string }>;
    macs.push(link[0]!.address);
  }
  for (const [i, node] of cluster.nodes.entries()) {
    for (const [j, peer] of cluster.nodes.entries()) {
      if (i === j) continue;
      const gw = formatIpv4(peer.podSubnet.network);
      await lab.exec(node.ns, 'ip', ['neigh', 'replace', gw, 'lladdr', macs[j]!, 'dev', 'flannel.1', 'nud', 'permanent']);
      await lab.exec(node.ns, 'bridge', ['fdb', 'replace', macs[j]!, 'dev', 'flannel.1', 'dst', peer.underlayAddress, 'self', 'permanent']);
      await lab.exec(node.ns, 'ip', ['route', 'replace', peer.podSubnet.toString(), 'via', gw, 'dev', 'flannel.1', 'onlink']);
    }
  }
  return { name: 'vxlan', cluster, forwarderPids: [] };
}

async function hostGwMode(lab: Lab): Promise<ModeSetup> {
  const cluster = await buildCluster(lab, { nodes: 2, underlay: 'veth', underlayMtu: UNDERLAY_MTU, podMtu: UNDERLAY_MTU });
  for (const node of cluster.nodes) {
    for (const peer of cluster.nodes) {
      if (peer === node) continue;
      await lab.exec(node.ns, 'ip', ['route', 'replace', peer.podSubnet.toString(), 'via', peer.underlayAddress, 'dev', node.underlayIf]);
    }
  }
  return { name: 'host-gw', cluster, forwarderPids: [] };
}

/**
 * Our vxlan or host-gw backend: etcd in node 1, the real bin/flanneld on
 * both nodes, pods attached from subnet.env, on the same veth topology as
 * the hand-configured kernel modes they are compared with.
 */
async function flannelMode(lab: Lab, name: string, type: string): Promise<ModeSetup> {
  const c = await FlannelCluster.create(lab, { nodes: 2, underlay: 'veth', underlayMtu: UNDERLAY_MTU, config: { Network: '10.5.0.0/16', Backend: { Type: type } } });
  for (const i of [1, 2]) c.startNode(i);
  for (const i of [1, 2]) await c.waitSubnet(i);
  for (const i of [1, 2]) await c.attachPod(i);
  return { name, cluster: c.topology, forwarderPids: [] };
}

/** "wireguard-go v0.0.20220316", from the installed program. */
export function wireguardGoVersion(): string {
  try {
    return execFileSync('wireguard-go', ['--version'], { encoding: 'utf8' }).split('\n')[0]!.trim();
  } catch {
    return 'wireguard-go (version unknown)';
  }
}

/**
 * The wireguard backend on the same topology: each node keeps its
 * /var/run/wireguard and /run/flannel to itself (Lab.isolateMounts); the
 * forwarders whose CPU is measured are the two wireguard-go processes
 * (or none, where the kernel's module runs the devices).
 */
async function wireguardMode(lab: Lab): Promise<ModeSetup> {
  const c = await FlannelCluster.create(lab, { nodes: 2, underlay: 'veth', underlayMtu: UNDERLAY_MTU, config: { Network: '10.5.0.0/16', Backend: { Type: 'wireguard' } } });
  for (const node of c.topology.nodes) await lab.isolateMounts(node.ns, ['/var/run/wireguard', '/run/flannel']);
  for (const i of [1, 2]) c.startNode(i);
  for (const i of [1, 2]) await c.waitSubnet(i);
  for (const i of [1, 2]) await c.attachPod(i);
  const pids: number[] = [];
  for (const node of c.topology.nodes) {
    const pid = await lab.exec(node.ns, 'cat', ['/var/run/wireguard/flannel-wg.pid']).then((r) => Number(r.stdout.trim()), () => undefined);
    if (pid !== undefined) pids.push(pid);
  }
  return { name: 'wireguard', cluster: c.topology, forwarderPids: pids };
}

/**
 * An IPv6-only kube cluster of two nodes running the real bin/flanneld with
 * `type`: pods talk over IPv6, nodes over the IPv6 underlay.
 */
async function kubeIpv6Mode(lab: Lab, name: string, type: string): Promise<ModeSetup> {
  const c = await KubeFlannelCluster.create(lab, {
    nodes: 2,
    families: 'ipv6',
    netConf: { EnableIPv4: false, EnableIPv6: true, IPv6Network: 'fd00:244::/56', EnableNFTables: false, Backend: { Type: type } },
  });
  for (const i of [1, 2]) c.startNode(i);
  for (const i of [1, 2]) {
    for (let t = 0; c.nodes[i - 1]!.subnetEnv()?.get('FLANNEL_IPV6_SUBNET') === undefined; t++) {
      if (t > 200) throw new Error(`${name}: node ${i} wrote no subnet.env`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  for (const i of [1, 2]) await c.attachPod(i);
  // The udp datapath runs inside flanneld: its CPU is flanneld's.
  const pids = type === 'udp' ? c.nodes.flatMap((n) => (n?.proc.pid !== undefined ? [n.proc.pid] : [])) : [];
  return { name, cluster: c.topology, forwarderPids: pids, ipv6: true };
}

export const MODES: ModeDefinition[] = [
  { name: 'udp', description: 'flannel-ts udp backend datapath (user space, flannel0 <-> UDP 8285), defaults: every offload, a worker per core', setup: (lab) => udpMode(lab, 'udp', {}) },
  { name: 'udp-no-offload', description: 'the same with every offload off (FLANNEL_TS_OFFLOAD=off): the batched recvmmsg/sendmmsg path', setup: (lab) => udpMode(lab, 'udp-no-offload', { offloadEnv: 'off' }) },
  { name: 'udp-ebpf', description: 'the udp datapath with its kernel fast path beside it ("Datapath": "ebpf": tc programs on flannel0 and the underlay, same wire format); CPU: the user-space part only', setup: (lab) => udpMode(lab, 'udp-ebpf', { ebpf: true }) },
  {
    name: 'udp-busy-poll',
    description: `the udp datapath with "BusyPollMicroseconds": ${BUSY_POLL_MICROSECONDS} (each worker polls without sleeping for that long after work: fewer wakeups, more CPU)`,
    setup: (lab) => udpMode(lab, 'udp-busy-poll', { busyPollMicroseconds: BUSY_POLL_MICROSECONDS }),
  },
  { name: 'upstream', description: 'the upstream-style udp forwarder (lab/upstream-udp: one thread, one read/sendto per packet, no offloads), what upstream flanneld runs today', setup: upstreamMode },
  { name: 'udp-no-source-check', description: 'the udp datapath with "SourceCheck": false (for the cost of the source check)', setup: (lab) => udpMode(lab, 'udp-no-source-check', { sourceCheck: false }), optional: true },
  { name: 'udp-1-worker', description: 'the udp datapath with every offload and one worker ("Workers": 1)', setup: (lab) => udpMode(lab, 'udp-1-worker', { workers: 1 }), optional: true },
  { name: 'vxlan', description: 'kernel vxlan configured by hand as flannel\'s vxlan backend does (the baseline)', setup: kernelVxlanMode },
  { name: 'host-gw', description: 'plain kernel routes via the peer, as flannel\'s host-gw backend', setup: hostGwMode },
  { name: 'flannel-vxlan', description: 'flannel-ts\'s vxlan backend (real bin/flanneld with etcd); compare with vxlan', setup: (lab) => flannelMode(lab, 'flannel-vxlan', 'vxlan') },
  { name: 'flannel-host-gw', description: 'flannel-ts\'s host-gw backend (real bin/flanneld with etcd); compare with host-gw', setup: (lab) => flannelMode(lab, 'flannel-host-gw', 'host-gw') },
  {
    name: 'wireguard',
    // Named with the version that ran (read when the report is written).
    get description() {
      return `flannel-ts's wireguard backend (real bin/flanneld with etcd), run by ${wireguardGoVersion()} (this kernel has no WireGuard module): encrypted, for comparison; CPU is wireguard-go's`;
    },
    setup: wireguardMode,
  },
  { name: 'udp-v6', description: 'inner IPv6 over the IPv6 underlay: the udp backend in an IPv6-only kube cluster (real bin/flanneld, bridge underlay; round trips by lab/udp-rtt)', setup: (lab) => kubeIpv6Mode(lab, 'udp-v6', 'udp') },
  { name: 'vxlan-v6', description: 'the same with the vxlan backend: the kernel\'s vxlan on flannel-v6.1; compare with udp-v6', setup: (lab) => kubeIpv6Mode(lab, 'vxlan-v6', 'vxlan') },
];

/** Pairs reported as "ours vs the kernel configured by hand" (the bar: within 10 %). */
export const SAME_DATAPATH_PAIRS: Array<[ours: string, reference: string]> = [
  ['flannel-vxlan', 'vxlan'],
  ['flannel-host-gw', 'host-gw'],
];

export const BASELINE_MODE = 'vxlan';
/** The udp datapath with the kernel fast path. */
export const EBPF_MODE = 'udp-ebpf';
/** The baseline of a run of the IPv6 modes alone, and the mode compared with it. */
export const IPV6_BASELINE_MODE = 'vxlan-v6';
export const IPV6_UDP_MODE = 'udp-v6';

/** The baseline of a run's ratios: kernel vxlan, or its IPv6 twin in a run of the IPv6 modes alone. */
export function baselineOf(results: Readonly<Record<string, unknown>>): string {
  return results[BASELINE_MODE] === undefined && results[IPV6_BASELINE_MODE] !== undefined ? IPV6_BASELINE_MODE : BASELINE_MODE;
}
/** The second comparison of the udp datapath: what upstream runs today. */
export const UPSTREAM_MODE = 'upstream';
