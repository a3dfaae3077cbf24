/**
 * The capabilities flanneld needs, as dist/kube-flannel-udp.yml's unprivileged
 * alternative grants them: NET_ADMIN and NET_RAW, nothing else. flanneld runs
 * under `setpriv` with exactly those in its bounding, inheritable and
 * effective sets, with the udp backend (the TUN device, the datapath, routes,
 * iptables) and with host-gw, and the pods reach each other. This proves the
 * capability set only: a container runtime's device cgroup rules (whether it
 * lets a container open /dev/net/tun at all) are outside what a test here can
 * show.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { describe, test } from 'node:test';
import { FlannelCluster } from '../lab/flannel-cluster';
import { Lab } from '../lab/netns';
import { ping } from '../lab/topology';
import { eventually } from './helpers/eventually';
import { ROOT_SUITE } from './helpers/root';

/** CAP_NET_ADMIN (12) and CAP_NET_RAW (13), linux/capability.h. */
const NET_ADMIN_AND_RAW = (1n << 12n) | (1n << 13n);
const ONLY_THOSE = ['setpriv', '--bounding-set=-all,+net_admin,+net_raw', '--inh-caps=-all,+net_admin,+net_raw'];

function capabilities(pid: number): Record<string, bigint> {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Object.fromEntries([...status.matchAll(/^(Cap\w+):\s+([0-9a-f]+)$/gm)].map((m) => [m[1]!, BigInt(`0x${m[2]}`)]));
}

describe('flanneld with only NET_ADMIN and NET_RAW', ROOT_SUITE, () => {
  for (const backend of ['udp', 'host-gw'] as const) {
    test(`${backend}: starts, routes and forwards`, { timeout: 90_000 }, async () => {
      const lab = new Lab();
      try {
        const cluster = await FlannelCluster.create(lab, { nodes: 2, config: { Network: '10.5.0.0/16', Backend: { Type: backend } } });
        cluster.commandPrefix = ONLY_THOSE;
        const node = cluster.startNode(1, ['-ip-masq']);
        cluster.commandPrefix = [];
        cluster.startNode(2);
        for (const i of [1, 2]) await cluster.waitSubnet(i);
        for (const i of [1, 2]) await cluster.attachPod(i);
        // `ip netns exec`, setpriv and env each exec the next: the spawned pid is flanneld's.
        const caps = capabilities(node.proc.pid!);
        assert.equal(caps['CapEff'], NET_ADMIN_AND_RAW, `effective capabilities ${caps['CapEff']!.toString(16)}`);
        assert.equal(caps['CapBnd'], NET_ADMIN_AND_RAW, 'and nothing else can be regained');
        const [a, b] = cluster.topology.nodes;
        assert.ok(await eventually(() => ping(lab, a!.pod.ns, b!.pod.address, 1), (ok) => ok, 10_000, 'pod 1 -> pod 2'));
        assert.ok(await ping(lab, b!.pod.ns, a!.pod.address), 'pod 2 -> pod 1');
        const nat = (await lab.exec(a!.ns, 'iptables', ['-t', 'nat', '-S', 'FLANNEL-POSTRTG'])).stdout;
        assert.match(nat, /MASQUERADE/, 'its iptables rules are in place');
      } finally {
        await lab.cleanup();
      }
    });
  }
});
