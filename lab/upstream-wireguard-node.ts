/**
 * A node that sets itself up as upstream flanneld's wireguard backend does
 * (flannel-io/flannel pkg/backend/wireguard, v0.28.9), for mixed-cluster
 * tests: no flannel-ts code runs on it. Each step is the command for what
 * upstream's code does:
 *  - device.go setupKeys/writePrivateKey: a key in /run/flannel/wgkey, 0400;
 *  - newWGDevice/ensureLink: the device flannel-wg with MTU = external MTU - 80,
 *    then ConfigureDevice(PrivateKey, ListenPort 51820). Upstream creates the
 *    kernel's device; this kernel has no module, so wireguard-go makes it,
 *    which peers cannot tell apart (same protocol, same configuration);
 *  - wireguard.go newSubnetAttrs + AcquireLease: the lease
 *    {"PublicIP":...,"PublicIPv6":null,"BackendType":"wireguard","BackendData":{"PublicKey":...,"Port":51820}}
 *    written under <prefix>/subnets/ with an etcd lease (TTL), as upstream's
 *    etcd subnet manager writes it;
 *  - Configure: the subnet's network address /32, UP, `route replace <Network> dev flannel-wg scope link`;
 *  - handleSubnetEvents/addPeer for every other lease: `wg set ... peer <key>
 *    endpoint <PublicIP>:<Port> allowed-ips <subnet>` (ReplaceAllowedIPs).
 * The node's namespace needs its own /var/run/wireguard and /run/flannel (Lab.isolateMounts).
 */
import { formatIpv4, type Ipv4Net } from '../src/util/ipv4';
import type { FlannelCluster } from './flannel-cluster';
import type { Lab } from './netns';
import { attachPod, type NodeSpec } from './topology';

/** upstream's overhead (wireguard_network.go). */
const OVERHEAD = 80;

export interface UpstreamWireguardNode {
  spec: NodeSpec;
  publicKey: string;
  /** The etcd key of its lease. */
  leaseKey: string;
}

/** Sets node `i` of `c` up as upstream would, with `subnet` as its lease; attaches its pod. */
export async function startUpstreamWireguardNode(lab: Lab, c: FlannelCluster, i: number, subnet: Ipv4Net, network: string): Promise<UpstreamWireguardNode> {
  const spec = c.topology.nodes[i - 1]!;
  const sh = (script: string) => lab.exec(spec.ns, 'sh', ['-ec', script]);
  await sh('mkdir -p /run/flannel && umask 077 && wg genkey > /run/flannel/wgkey && chmod 0400 /run/flannel/wgkey');
  const publicKey = (await sh('wg pubkey < /run/flannel/wgkey')).stdout.trim();
  const mtu = Number((await lab.exec(spec.ns, 'cat', [`/sys/class/net/${spec.underlayIf}/mtu`])).stdout.trim()) - OVERHEAD;
  await sh(
    [
      'wireguard-go flannel-wg >/dev/null 2>&1',
      `ip link set flannel-wg mtu ${mtu}`,
      'wg set flannel-wg private-key /run/flannel/wgkey listen-port 51820',
      `ip addr add ${formatIpv4(subnet.network)}/32 dev flannel-wg`,
      'ip link set flannel-wg up',
      `ip route replace ${network} dev flannel-wg scope link`,
    ].join('\n'),
  );
  const leaseKey = `${c.prefix}/subnets/${subnet.toString().replace('/', '-')}`;
  const grant = await c.etcdctl('lease', 'grant', '3600');
  const id = /lease ([0-9a-f]+) granted/.exec(grant)![1]!;
  const value = `{"PublicIP":"${spec.underlayAddress}","PublicIPv6":null,"BackendType":"wireguard","BackendData":{"PublicKey":"${publicKey}","Port":51820}}`;
  await c.etcdctl('put', `--lease=${id}`, leaseKey, value);
  // A pod in its subnet, as its CNI plugin would attach one from subnet.env.
  spec.podSubnet = subnet;
  spec.pod.address = formatIpv4((subnet.network + 2) >>> 0);
  spec.pod.gateway = formatIpv4((subnet.network + 1) >>> 0);
  await attachPod(lab, spec, mtu);
  return { spec, publicKey, leaseKey };
}

/** upstream's handleSubnetEvents for the leases in etcd now: one `wg set ... peer` per other wireguard lease. */
export async function addUpstreamPeers(lab: Lab, c: FlannelCluster, node: UpstreamWireguardNode): Promise<number> {
  const out = await c.etcdctl('get', '--prefix', `${c.prefix}/subnets/`);
  const lines = out.split('\n').filter((l) => l !== '');
  let added = 0;
  for (let k = 0; k + 1 < lines.length; k += 2) {
    if (lines[k] === node.leaseKey) continue;
    const lease = JSON.parse(lines[k + 1]!) as { PublicIP: string; BackendType: string; BackendData?: { PublicKey: string; Port: number } };
    if (lease.BackendType !== 'wireguard' || !lease.BackendData) continue;
    const subnet = lines[k]!.slice(lines[k]!.lastIndexOf('/') + 1).replace('-', '/');
    await lab.exec(node.spec.ns, 'wg', ['set', 'flannel-wg', 'peer', lease.BackendData.PublicKey, 'endpoint', `${lease.PublicIP}:${lease.BackendData.Port || 51820}`, 'allowed-ips', subnet]);
    added++;
  }
  return added;
}
