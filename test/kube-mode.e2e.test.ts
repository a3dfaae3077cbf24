/**
 * Kube mode end to end: three nodes in namespaces, each running
 * the real `bin/flanneld -kube-subnet-mgr -kubeconfig-file=…` against the
 * kube-apiserver stand-in over HTTPS, for udp, vxlan and host-gw: pods ping
 * each other; each Node's annotations, first PATCH and condition are
 * upstream's bytes; subnet.env is right. Then nodes added and deleted, the
 * API server restarted (watch broken, 410 on resume), and bad inputs.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { httpGet } from '../lab/daemon-probes';
import { FLANNELD, FlannelNode } from '../lab/flannel-cluster';
import { KubeFlannelCluster, kubeNodeName, podCidrOf } from '../lab/kube-cluster';
import { Lab } from '../lab/netns';
import { allPodsPing, ipj } from './helpers/cluster-probes';
import { eventually } from './helpers/eventually';
import { ROOT_SUITE } from './helpers/root';

const P = 'flannel.alpha.coreos.com/';
const HEALTHZ_PORT = 8081;
const GATE = { [`${P}kube-subnet-manager`]: 'true' };

async function routeVia(lab: Lab, ns: string, cidr: string): Promise<string | undefined> {
  const [route] = await ipj(lab, ns, 'ip', 'route', 'show', cidr);
  return route?.['gateway'] as string | undefined;
}

async function vtepMac(lab: Lab, ns: string): Promise<string> {
  const [link] = await ipj(lab, ns, 'ip', 'link', 'show', 'flannel.1');
  return link!['address'] as string;
}

interface BackendCase {
  type: 'udp' | 'vxlan' | 'host-gw';
  mtu: number;
  /** backend-type and backend-data for node i: upstream's, plus the udp capability object (docs/datapath.md). */
  annotations: (lab: Lab, c: KubeFlannelCluster, i: number) => Promise<{ type: string; data: string }>;
}

const CASES: BackendCase[] = [
  { type: 'udp', mtu: 1472, annotations: async () => ({ type: '', data: '{"Capabilities":["partial-checksums"]}' }) },
  { type: 'vxlan', mtu: 1450, annotations: async (lab, c, i) => ({ type: 'vxlan', data: `{"VNI":1,"VtepMAC":"${await vtepMac(lab, c.topology.nodes[i - 1]!.ns)}"}` }) },
  { type: 'host-gw', mtu: 1500, annotations: async () => ({ type: 'host-gw', data: 'null' }) },
];

for (const bc of CASES) {
  describe(`kube mode, ${bc.type}: three nodes`, ROOT_SUITE, () => {
    let lab: Lab;
    let c: KubeFlannelCluster;

    before(async () => {
      lab = new Lab();
      c = await KubeFlannelCluster.create(lab, { nodes: 3, netConf: { Network: '10.244.0.0/16', EnableNFTables: false, Backend: { Type: bc.type } } });
      for (const i of [1, 2, 3]) c.startNode(i, ['--ip-masq', `--healthz-port=${HEALTHZ_PORT}`]);
      for (const i of [1, 2, 3]) await c.waitSubnet(i);
      for (const i of [1, 2, 3]) await c.attachPod(i);
    });
    after(async () => {
      await lab?.cleanup();
    });

    test('subnet.env: the podCIDR, Network, the backend MTU', () => {
      for (const i of [1, 2, 3]) {
        const env = c.nodes[i - 1]!.subnetEnv()!;
        assert.deepEqual(Object.fromEntries(env), {
          FLANNEL_NETWORK: '10.244.0.0/16',
          FLANNEL_SUBNET: `10.244.${i}.1/24`,
          FLANNEL_MTU: String(bc.mtu),
          FLANNEL_IPMASQ: 'true',
        });
      }
    });

    test('pods on the three nodes ping each other', { timeout: 60_000 }, async () => {
      await allPodsPing(lab, c, [1, 2, 3]);
    });

    test('/healthz and /readyz answer 200 on every node (the DaemonSet probes)', async () => {
      for (const i of [1, 2, 3]) {
        const ns = c.topology.nodes[i - 1]!.ns;
        assert.equal((await httpGet(lab, ns, HEALTHZ_PORT, '/healthz')).status, 200);
        const ready = await eventually(() => httpGet(lab, ns, HEALTHZ_PORT, '/readyz'), (a) => a.status === 200, 10_000, `node ${i} ready`);
        assert.equal(ready.status, 200);
      }
    });

    test('annotations, the first PATCH and the condition are upstream\'s bytes', async () => {
      const requests = await c.requests();
      for (const i of [1, 2, 3]) {
        const name = kubeNodeName(i);
        const { type, data } = await bc.annotations(lab, c, i);
        const node = await eventually(() => c.getNode(name), (n) => (n?.status.conditions.length ?? 0) > 0, 10_000, `${name}'s condition`);
        assert.deepEqual(node!.metadata.annotations, {
          dummy: 'value',
          [`${P}backend-data`]: data,
          [`${P}backend-type`]: type,
          [`${P}kube-subnet-manager`]: 'true',
          [`${P}public-ip`]: `192.168.100.${i}`,
        });
        const patches = requests.filter((r) => r.method === 'PATCH' && r.path === `/api/v1/nodes/${name}/status`);
        assert.equal(patches[0]!.contentType, 'application/strategic-merge-patch+json');
        assert.equal(
          patches[0]!.body,
          `{"metadata":{"annotations":{"${P}backend-data":${JSON.stringify(data)},"${P}backend-type":${JSON.stringify(type)},"${P}kube-subnet-manager":"true","${P}public-ip":"192.168.100.${i}"}}}`,
        );
        const [cond] = node!.status.conditions;
        assert.deepEqual(
          [cond!['type'], cond!['status'], cond!['reason'], cond!['message']],
          ['NetworkUnavailable', 'False', 'FlannelIsUp', 'Flannel is running on this node'],
        );
        assert.match(cond!['lastHeartbeatTime']!, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
      }
      const gets = requests.filter((r) => r.method === 'GET' && r.path === `/api/v1/nodes/${kubeNodeName(1)}`).length;
      assert.equal(gets, bc.type === 'vxlan' ? 2 : 1, 'the own node once at startup, and again for the stored VtepMAC with vxlan (docs/compatibility.md §11.2)');
    });

    if (bc.type === 'udp') {
      test('without the /dev/net/tun mount the udp backend exits 1 with upstream\'s error and the fix', { timeout: 30_000 }, async () => {
        // A pod without the hostPath mount: the node's /dev/net is empty in its mount namespace.
        const spec = c.topology.nodes[2]!;
        const args = [FLANNELD, '-log-format=json', '-kube-subnet-mgr', `-kubeconfig-file=${c.kubeconfig}`, `-net-config-path=${c.netConfPath}`, `-iface=${spec.underlayIf}`, `-subnet-file=/tmp/${lab.prefix}-notun.env`];
        const script = `mount -t tmpfs tmpfs /dev/net && exec env NODE_NAME=${kubeNodeName(3)} ${[process.execPath, ...args].join(' ')}`;
        const n = new FlannelNode(spec, lab.spawn(spec.ns, 'unshare', ['--mount', '--propagation', 'private', 'sh', '-c', script]), `/tmp/${lab.prefix}-notun.env`);
        assert.equal(await n.waitExit(20_000), 1, n.logLines.slice(-5).join('\n'));
        assert.ok(
          n.messages().some((m) => /^Error registering network: failed to open TUN device: open \/dev\/net\/tun: No such file or directory \(ENOENT\)\. Fix: .*hostPath volume with path \/dev\/net\/tun, type CharDevice/.test(m)),
          n.messages().slice(-5).join('\n'),
        );
        assert.ok(c.nodes[2]!.running, 'the node\'s own flanneld is untouched');
        await allPodsPing(lab, c, [1, 3]);
      });
    }

    if (bc.type === 'vxlan') {
      test('a restart keeps the VtepMAC: a recreated flannel.1 takes it from the annotation', { timeout: 30_000 }, async () => {
        const ns1 = c.topology.nodes[0]!.ns;
        const before = await vtepMac(lab, ns1);
        assert.equal(await c.nodes[0]!.stop(), 0);
        await lab.exec(ns1, 'ip', ['link', 'del', 'flannel.1']);
        c.startNode(1, ['--ip-masq', `--healthz-port=${HEALTHZ_PORT}`]);
        await eventually(() => vtepMac(lab, ns1), (m) => m === before, 15_000, 'flannel.1 back with the published MAC');
        await allPodsPing(lab, c, [1, 2]);
        assert.ok(c.nodes[0]!.messages().includes(`Interface flannel.1 mac address set to: ${before}`));
      });
    }

    if (bc.type === 'host-gw') {
      const ns = (i: number) => c.topology.nodes[i - 1]!.ns;
      const everywhere = async (cidr: string): Promise<Array<string | undefined>> => Promise.all([1, 2, 3].map((i) => routeVia(lab, ns(i), cidr)));
      const peerNode = (i: number, ip = `192.168.100.${i}`) => ({
        name: kubeNodeName(i),
        podCIDR: podCidrOf(i),
        annotations: { ...GATE, [`${P}backend-type`]: 'host-gw', [`${P}backend-data`]: 'null', [`${P}public-ip`]: ip },
      });

      test('a node added later is routed everywhere within a second; deleted, it is withdrawn', async () => {
        await c.putNode(peerNode(4));
        await eventually(() => everywhere(podCidrOf(4)), (g) => g.every((x) => x === '192.168.100.4'), 1000, 'routes to node-4 on all three nodes');
        await c.deleteNode(kubeNodeName(4));
        await eventually(() => everywhere(podCidrOf(4)), (g) => g.every((x) => x === undefined), 1000, 'node-4 withdrawn');
      });

      test('bad peer annotations are skipped with a warning; no other route moves; a bare node crashes nothing', async () => {
        await c.putNode({ name: 'node-bad', podCIDR: '10.244.9.0/24', annotations: { ...GATE, [`${P}backend-type`]: 'host-gw', [`${P}public-ip`]: 'not-an-ip' } });
        await c.putNode({ name: 'node-bare', podCIDR: '10.244.8.0/24', annotations: null });
        for (const i of [1, 2, 3]) {
          await eventually(() => c.nodes[i - 1]!.messages(), (m) => m.some((x) => x.startsWith('Error turning node "node-bad" to lease: invalid IP address format')), 5000, `node ${i}'s warning`);
        }
        await allPodsPing(lab, c, [1, 2, 3]);
        assert.deepEqual(await everywhere('10.244.9.0/24'), [undefined, undefined, undefined]);
        assert.equal(await routeVia(lab, ns(1), podCidrOf(2)), '192.168.100.2');
        assert.ok(c.nodes.every((n) => n!.running));
        // Fixed, the node is routed.
        await c.editNode('node-bad', { annotations: { [`${P}public-ip`]: '192.168.100.9' } });
        await eventually(() => everywhere('10.244.9.0/24'), (g) => g.every((x) => x === '192.168.100.9'), 5000, 'node-bad routed once fixed');
        await c.deleteNode('node-bad');
        await c.deleteNode('node-bare');
      });

      test('the API server restarts: routes stay meanwhile; the resumed watch gets 410, the relist removes and adds', { timeout: 60_000 }, async () => {
        await c.putNode(peerNode(5));
        await c.putNode(peerNode(6));
        await eventually(() => everywhere(podCidrOf(6)), (g) => g.every((x) => x === '192.168.100.6'), 5000, 'node-6 routed');
        const before = (await c.requests()).length;
        await c.stopApi();
        // While it is down: node-5 goes away, node-6 moves, history is compacted.
        await c.deleteNode(kubeNodeName(5));
        await c.editNode(kubeNodeName(6), { annotations: { [`${P}public-ip`]: '192.168.100.66' } });
        await c.compact();
        await new Promise((r) => setTimeout(r, 1500));
        assert.deepEqual(await everywhere(podCidrOf(5)), ['192.168.100.5', '192.168.100.5', '192.168.100.5'], 'known routes stay while the API is away');
        await allPodsPing(lab, c, [1, 2, 3]);
        await c.startApi();
        await eventually(() => everywhere(podCidrOf(5)), (g) => g.every((x) => x === undefined), 40_000, 'node-5 withdrawn after the relist');
        await eventually(() => everywhere(podCidrOf(6)), (g) => g.every((x) => x === '192.168.100.66'), 5000, 'node-6 moved');
        assert.equal(await routeVia(lab, ns(1), podCidrOf(2)), '192.168.100.2', 'the other routes are kept');
        const after = (await c.requests()).slice(before);
        assert.ok(after.some((r) => r.query['watch'] === 'true' && Number(r.query['resourceVersion']) > 0), 'the watch resumed from its resourceVersion');
        assert.ok(after.some((r) => r.path === '/api/v1/nodes' && r.query['watch'] === undefined), 'then relisted');
        // The watch works again.
        await c.putNode(peerNode(7));
        await eventually(() => everywhere(podCidrOf(7)), (g) => g.every((x) => x === '192.168.100.7'), 5000, 'node-7 routed after the restart');
        await allPodsPing(lab, c, [1, 2, 3]);
      });

      test('lifecycle (docs/compatibility.md §11.7): the own Node deleted changes nothing locally; peers withdraw it; annotations outlive a stop', { timeout: 30_000 }, async () => {
        const saved = (await c.getNode(kubeNodeName(3)))!;
        await c.deleteNode(kubeNodeName(3));
        await eventually(() => Promise.all([1, 2].map((i) => routeVia(lab, ns(i), podCidrOf(3)))), (g) => g.every((x) => x === undefined), 5000, 'node-3 withdrawn by its peers');
        await new Promise((r) => setTimeout(r, 500));
        assert.ok(c.nodes[2]!.running, 'no lease loss in kube mode');
        await c.putNode({ name: kubeNodeName(3), podCIDR: podCidrOf(3), annotations: saved.metadata.annotations! });
        await eventually(() => Promise.all([1, 2].map((i) => routeVia(lab, ns(i), podCidrOf(3)))), (g) => g.every((x) => x === '192.168.100.3'), 5000, 'node-3 back');
        await allPodsPing(lab, c, [1, 2, 3]);
        assert.equal(await c.nodes[1]!.stop(), 0);
        const after = (await c.getNode(kubeNodeName(2)))!;
        assert.equal(after.metadata.annotations![`${P}kube-subnet-manager`], 'true', 'annotations stay after SIGTERM');
        assert.equal(after.status.conditions[0]!['status'], 'False', 'the condition stays');
        c.startNode(2, ['--ip-masq', `--healthz-port=${HEALTHZ_PORT}`]);
        await c.waitSubnet(2);
        await allPodsPing(lab, c, [1, 2, 3]);
      });

      test('bad own node or config: each exits 1 with the problem and the fix; nothing published first', { timeout: 60_000 }, async () => {
        await c.putNode({ name: 'node-nocidr' });
        await c.putNode({ name: 'node-outside', podCIDR: '10.99.0.0/24' });
        const runs: Array<[string, string[], RegExp]> = [
          ['node-nocidr', [], /Error registering network: failed to acquire lease: node "node-nocidr" pod cidr not assigned/],
          ['node-outside', [], /failed to acquire lease: subnet "10\.244\.0\.0\/16" specified in the flannel net config doesn't contain "10\.99\.0\.0\/24" PodCIDR of the "node-outside" node/],
          ['node-3', ['-net-config-path=/nonexistent/net-conf.json'], /Failed to create SubnetManager: failed to read net conf: open \/nonexistent\/net-conf\.json: no such file or directory \(mount the kube-flannel-cfg ConfigMap/],
        ];
        for (const [name, args, re] of runs) {
          const n = c.startNode(3, [...args, `-subnet-file=/tmp/${lab.prefix}-${name}.env`], { NODE_NAME: name });
          assert.equal(await n.waitExit(20_000), 1, `${name}: ${n.logLines.slice(-5).join('\n')}`);
          assert.ok(n.messages().some((m) => re.test(m)), `${name}: ${n.messages().slice(-5).join('\n')}`);
        }
        const outside = await c.getNode('node-outside');
        assert.deepEqual(outside!.metadata.annotations, { dummy: 'value' }, 'a misconfigured node does not advertise itself (upstream does)');
      });
    }
  });
}
