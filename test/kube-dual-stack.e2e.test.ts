/**
 * Kube mode with dual-stack and IPv6-only clusters: the Node objects carry
 * both podCIDRs (or only the IPv6 one), the real bin/flanneld runs
 * -kube-subnet-mgr against the API server stand-in, and for vxlan, host-gw
 * and udp (an IPv6-only udp cluster uses the IPv6 underlay) the pods reach
 * each other over every family the cluster has; the
 * annotations carry public-ipv6 and backend-v6-data as upstream writes them
 * (an IPv6-only host-gw node publishes public-ip 0.0.0.0, as upstream does).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { KubeFlannelCluster, kubeNodeName } from '../lab/kube-cluster';
import { Lab } from '../lab/netns';
import { ping, underlayAddress6 } from '../lab/topology';
import { eventually } from './helpers/eventually';
import { ROOT_SUITE } from './helpers/root';

const P = 'flannel.alpha.coreos.com/';

for (const families of ['dual', 'ipv6'] as const) {
  for (const backend of ['vxlan', 'host-gw', 'udp'] as const) {
    describe(`kube mode, ${families === 'dual' ? 'dual stack' : 'IPv6 only'}, ${backend}: three nodes`, ROOT_SUITE, () => {
      let lab: Lab;
      let c: KubeFlannelCluster;
      const pods = () => [1, 2, 3].map((i) => c.topology.nodes[i - 1]!.pod);

      before(async () => {
        lab = new Lab();
        const v4 = families === 'dual' ? { Network: '10.244.0.0/16' } : { EnableIPv4: false };
        c = await KubeFlannelCluster.create(lab, {
          nodes: 3,
          families,
          netConf: { ...v4, EnableIPv6: true, IPv6Network: 'fd00:244::/56', EnableNFTables: false, Backend: { Type: backend } },
        });
        if (families === 'ipv6') {
          // Node 1 finds its interface itself, as upstream does on an IPv6-only node: by the IPv6 default route.
          await lab.exec(c.topology.nodes[0]!.ns, 'ip', ['-6', 'route', 'add', 'default', 'via', underlayAddress6(200), 'dev', c.topology.nodes[0]!.underlayIf]);
          c.autoIface = false;
          c.startNode(1);
          c.autoIface = true;
          for (const i of [2, 3]) c.startNode(i);
        } else {
          for (const i of [1, 2, 3]) c.startNode(i);
        }
        for (const i of [1, 2, 3]) {
          await eventually(() => c.nodes[i - 1]!.subnetEnv()?.get('FLANNEL_IPV6_SUBNET'), (v) => v !== undefined, 20_000, `node ${i}'s subnet.env`);
        }
        for (const i of [1, 2, 3]) await c.attachPod(i);
      });
      after(async () => {
        await lab?.cleanup();
      });

      test('pods reach each other over every family of the cluster', async () => {
        for (const a of pods()) {
          for (const b of pods()) {
            if (a === b) continue;
            assert.ok(await eventually(() => ping(lab, a.ns, b.address6!, 1), (ok) => ok, 10_000, `${a.address6} -> ${b.address6}`));
            if (families === 'dual') assert.ok(await eventually(() => ping(lab, a.ns, b.address, 1), (ok) => ok, 10_000, `${a.address} -> ${b.address}`));
          }
        }
      });

      if (families === 'ipv6') {
        test('without -iface, an IPv6-only node takes the interface of its IPv6 default route', () => {
          const line = c.nodes[0]!.messages().find((m) => /^Using interface with name/.test(m));
          assert.match(line ?? '', new RegExp(`^Using interface with name ${c.topology.nodes[0]!.underlayIf} and address ${underlayAddress6(1)} \\(the IPv6 default route via ${underlayAddress6(200)} leaves through`));
        });
      }

      test('the annotations carry the IPv6 part as upstream writes it', async () => {
        const node = await c.getNode(kubeNodeName(1));
        const a = node!.metadata.annotations!;
        assert.equal(a[`${P}public-ipv6`], underlayAddress6(1));
        // IPv6 only: host-gw publishes public-ip 0.0.0.0 as upstream does (udp too); vxlan, without an IPv4 device, no IPv4 part.
        assert.equal(a[`${P}public-ip`], families === 'dual' ? '192.168.100.1' : backend === 'vxlan' ? undefined : '0.0.0.0');
        if (backend === 'vxlan') {
          assert.match(a[`${P}backend-v6-data`] ?? '', /^\{"VNI":1,"VtepMAC":"[0-9a-f:]{17}"\}$/);
          if (families === 'ipv6') assert.equal(a[`${P}backend-data`], undefined, 'no IPv4 device, no IPv4 part');
        } else if (backend === 'udp') {
          // The capability object with each family's part.
          const caps = (name: string) => (JSON.parse(a[`${P}${name}`]!) as { Capabilities: string[] }).Capabilities;
          assert.ok(caps('backend-v6-data').includes('ipv6'));
          if (families === 'dual') assert.ok(caps('backend-data').includes('ipv6'));
        } else {
          assert.equal(a[`${P}backend-v6-data`], 'null');
        }
      });
    });
  }
}
