/**
 * Cluster topologies in namespaces: N nodes on an underlay and one pod per
 * node.
 *
 *   pod i (ns)  eth0 10.5.i.2/24 --veth-- node i (ns) <prefix>c<i> 10.5.i.1/24
 *   node i      <prefix>u<i> 192.168.100.i/24 on the underlay
 *
 * The underlay is a direct veth pair for two nodes ("veth"), or a bridge in
 * its own namespace ("bridge") for any number. Pods get the flannel MTU as a
 * CNI plugin would from subnet.env.
 */
import { Ipv4Net, formatIpv4 } from '../src/util/ipv4';
import { type Lab } from './netns';

export interface PodSpec {
  ns: string;
  address: string;
  /** The node-side veth (the "cni0" of this pod). */
  hostIf: string;
  gateway: string;
  /** Dual stack: the pod's IPv6 address and gateway, and the v6 subnet's prefix length. */
  address6?: string;
  gateway6?: string;
  prefixLen6?: number;
}

export interface NodeSpec {
  index: number;
  ns: string;
  underlayIf: string;
  underlayAddress: string;
  /** The pod subnet this node serves (static here; leased in etcd mode). */
  podSubnet: Ipv4Net;
  pod: PodSpec;
}

export interface ClusterOptions {
  nodes: number;
  /** "veth": a direct pair (two nodes only); "bridge": a switch namespace. */
  underlay?: 'veth' | 'bridge';
  /** The flannel Network (pod subnets are its /24s numbered by node). */
  network?: Ipv4Net;
  /** Underlay MTU (default 1500). */
  underlayMtu?: number;
  /** Pod interface MTU (default 1472: udp's FLANNEL_MTU on a 1500 underlay). */
  podMtu?: number;
  /** Whether to create the pods' addresses and the node-side pod routes (default true). */
  withPods?: boolean;
  /** Use these pod subnets instead of numbering (e.g. the ones leases gave). */
  podSubnets?: Ipv4Net[];
  /** Give the underlay IPv6 addresses too (underlayAddress6(i)/64) and turn on IPv6 forwarding. */
  ipv6?: boolean;
}

export interface Cluster {
  nodes: NodeSpec[];
  network: Ipv4Net;
  underlayPrefixLen: number;
  /** Namespace of the underlay bridge, when there is one. */
  switchNs: string | undefined;
}

export const UNDERLAY_BASE = '192.168.100.0';

export function underlayAddress(i: number): string {
  return `192.168.100.${i}`;
}

/** A node's IPv6 underlay address (dual-stack topologies). */
export function underlayAddress6(i: number): string {
  return `fd99::${i}`;
}

export async function buildCluster(lab: Lab, options: ClusterOptions): Promise<Cluster> {
  const n = options.nodes;
  const kind = options.underlay ?? (n === 2 ? 'veth' : 'bridge');
  if (kind === 'veth' && n !== 2) throw new Error('a veth underlay connects exactly two nodes');
  const network = options.network ?? Ipv4Net.parse('10.5.0.0/16');
  const underlayMtu = options.underlayMtu ?? 1500;
  const podMtu = options.podMtu ?? underlayMtu - 28;

  const nodes: NodeSpec[] = [];
  for (let i = 1; i <= n; i++) {
    const ns = await lab.addNamespace(`n${i}`);
    const podSubnet = options.podSubnets?.[i - 1] ?? new Ipv4Net((network.network + (i << 8)) >>> 0, 24);
    const podNs = await lab.addNamespace(`p${i}`);
    nodes.push({
      index: i,
      ns,
      underlayIf: lab.name(`u${i}`),
      underlayAddress: underlayAddress(i),
      podSubnet,
      pod: {
        ns: podNs,
        address: formatIpv4((podSubnet.network + 2) >>> 0),
        gateway: formatIpv4((podSubnet.network + 1) >>> 0),
        hostIf: lab.name(`c${i}`),
      },
    });
    await lab.exec(ns, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
    if (options.ipv6) await lab.exec(ns, 'sysctl', ['-qw', 'net.ipv6.conf.all.forwarding=1']);
  }

  let switchNs: string | undefined;
  if (kind === 'veth') {
    const [a, b] = [nodes[0]!, nodes[1]!];
    await lab.exec(a.ns, 'ip', ['link', 'add', a.underlayIf, 'type', 'veth', 'peer', 'name', b.underlayIf, 'netns', b.ns]);
  } else {
    switchNs = await lab.addNamespace('sw');
    const br = lab.name('br');
    await lab.exec(switchNs, 'ip', ['link', 'add', br, 'type', 'bridge']);
    await lab.exec(switchNs, 'ip', ['link', 'set', br, 'mtu', String(underlayMtu), 'up']);
    for (const node of nodes) {
      const swPort = lab.name(`s${node.index}`);
      await lab.exec(switchNs, 'ip', ['link', 'add', swPort, 'type', 'veth', 'peer', 'name', node.underlayIf, 'netns', node.ns]);
      await lab.exec(switchNs, 'ip', ['link', 'set', swPort, 'mtu', String(underlayMtu), 'master', br, 'up']);
    }
  }
  for (const node of nodes) {
    await lab.exec(node.ns, 'ip', ['link', 'set', node.underlayIf, 'mtu', String(underlayMtu), 'up']);
    await lab.exec(node.ns, 'ip', ['addr', 'add', `${node.underlayAddress}/24`, 'dev', node.underlayIf]);
    // nodad: usable at once (duplicate address detection would hold it tentative for a second).
    if (options.ipv6) await lab.exec(node.ns, 'ip', ['-6', 'addr', 'add', `${underlayAddress6(node.index)}/64`, 'dev', node.underlayIf, 'nodad']);
    if (options.withPods ?? true) await attachPod(lab, node, podMtu);
  }
  return { nodes, network, underlayPrefixLen: 24, switchNs };
}

/** Creates the pod veth pair, the gateway address on the node side and the pod's default route. */
export async function attachPod(lab: Lab, node: NodeSpec, podMtu: number): Promise<void> {
  const tmp = lab.name(`e${node.index}`);
  const pod = node.pod;
  await lab.exec(node.ns, 'ip', ['link', 'add', pod.hostIf, 'type', 'veth', 'peer', 'name', tmp, 'netns', pod.ns]);
  await lab.exec(pod.ns, 'ip', ['link', 'set', tmp, 'name', 'eth0']);
  if (pod.address6) {
    // No duplicate address detection on the pod link: link-local addresses are
    // usable at once (the kernel holds neighbour solicitations while they are tentative).
    await lab.exec(pod.ns, 'sysctl', ['-qw', 'net.ipv6.conf.eth0.accept_dad=0']);
    await lab.exec(node.ns, 'sysctl', ['-qw', `net.ipv6.conf.${pod.hostIf}.accept_dad=0`]);
  }
  await lab.exec(pod.ns, 'ip', ['link', 'set', 'eth0', 'mtu', String(podMtu), 'up']);
  await lab.exec(node.ns, 'ip', ['link', 'set', pod.hostIf, 'mtu', String(podMtu), 'up']);
  if (pod.address !== '') {
    await lab.exec(pod.ns, 'ip', ['addr', 'add', `${pod.address}/${node.podSubnet.prefixLen}`, 'dev', 'eth0']);
    await lab.exec(pod.ns, 'ip', ['route', 'add', 'default', 'via', pod.gateway]);
    await lab.exec(node.ns, 'ip', ['addr', 'add', `${pod.gateway}/${node.podSubnet.prefixLen}`, 'dev', pod.hostIf]);
  }
  if (pod.address6 && pod.gateway6) {
    await lab.exec(pod.ns, 'ip', ['-6', 'addr', 'add', `${pod.address6}/${pod.prefixLen6}`, 'dev', 'eth0', 'nodad']);
    await lab.exec(pod.ns, 'ip', ['-6', 'route', 'add', 'default', 'via', pod.gateway6]);
    await lab.exec(node.ns, 'ip', ['-6', 'addr', 'add', `${pod.gateway6}/${pod.prefixLen6}`, 'dev', pod.hostIf, 'nodad']);
  }
}

/** Pings `address` (either family) from `ns`; resolves true when at least one reply came back. */
export async function ping(lab: Lab, ns: string, address: string, count = 3, extra: string[] = []): Promise<boolean> {
  try {
    await lab.exec(ns, 'ping', [...(address.includes(':') ? ['-6'] : []), '-c', String(count), '-i', '0.2', '-W', '2', '-q', ...extra, address], {
      timeoutMs: count * 1000 + 5000,
    });
    return true;
  } catch {
    return false;
  }
}
