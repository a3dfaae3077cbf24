/**
 * Dual stack end to end, as an operator runs it: etcd and three nodes on a
 * dual-stack underlay, the real bin/flanneld with EnableIPv6 for the vxlan
 * and host-gw backends, dual-stack pods. Pods ping each other over IPv4 and
 * IPv6 (full size too), TCP over IPv6 arrives intact, the IPv6 device,
 * neighbours, FDB entries and routes are as upstream makes them and come back
 * when deleted by hand, and a hand-written upstream-format dual-stack lease
 * is routed. An IPv6-only etcd network is refused at start with the reason
 * (the udp backend's IPv6: test/udp-ipv6.e2e.test.ts).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { FlannelCluster } from '../lab/flannel-cluster';
import { Lab } from '../lab/netns';
import { ping, underlayAddress6 } from '../lab/topology';
import { tcpTransfer } from '../lab/traffic';
import { eventually } from './helpers/eventually';
import { ROOT_SUITE } from './helpers/root';

const CONFIG = { Network: '10.5.0.0/16', EnableIPv6: true, IPv6Network: 'fd00:5::/48', IPv6SubnetLen: 64 };

async function ipj(lab: Lab, ns: string, ...args: string[]): Promise<Array<Record<string, unknown>>> {
  const out = (await lab.exec(ns, args[0]!, ['-j', ...args.slice(1)])).stdout.trim();
  return out === '' ? [] : (JSON.parse(out) as Array<Record<string, unknown>>);
}

for (const backend of ['vxlan', 'host-gw'] as const) {
  describe(`dual stack, ${backend}: three nodes`, ROOT_SUITE, () => {
    let lab: Lab;
    let cluster: FlannelCluster;
    const pods = () => [1, 2, 3].map((i) => cluster.topology.nodes[i - 1]!.pod);

    before(async () => {
      lab = new Lab();
      cluster = await FlannelCluster.create(lab, { nodes: 3, ipv6: true, config: { ...CONFIG, Backend: { Type: backend } } });
      // Node 1 with -ip-blackhole-route: a blackhole route for each own subnet, IPv6 too (upstream's main.go).
      for (const i of [1, 2, 3]) cluster.startNode(i, i === 1 ? ['-ip-blackhole-route'] : []);
      for (const i of [1, 2, 3]) await cluster.waitSubnet(i);
      for (const i of [1, 2, 3]) await cluster.attachPod(i);
    });
    after(async () => {
      await lab?.cleanup();
    });

    test('the lease carries the IPv6 part as upstream writes it; subnet.env has the FLANNEL_IPV6_* lines', async () => {
      const node = cluster.nodes[0]!;
      const env = node.subnetEnv()!;
      assert.match(env.get('FLANNEL_IPV6_NETWORK') ?? '', /^fd00:5::\/48$/);
      const v6 = env.get('FLANNEL_IPV6_SUBNET')!;
      assert.match(v6, /^fd00:5:0:[0-9a-f]+::1\/64$/);
      const keys = (await cluster.etcdctl('get', '--prefix', '--keys-only', `${cluster.prefix}/subnets/`)).split('\n').filter((k) => k.trim() !== '');
      assert.equal(keys.length, 3);
      for (const k of keys) assert.match(k, /\/10\.5\.\d+\.0-24&fd00:5:0:[0-9a-f]+::-64$/, 'upstream\'s dual-stack key');
      const ownKey = keys.find((k) => k.includes(`&${v6.replace('::1/64', '::-64')}`))!;
      const value = JSON.parse((await cluster.etcdctl('get', ownKey, '--print-value-only')).trim()) as Record<string, unknown>;
      assert.equal(value['PublicIPv6'], underlayAddress6(1));
      if (backend === 'vxlan') {
        const mac6 = (await ipj(lab, node.spec.ns, 'ip', 'link', 'show', 'flannel-v6.1'))[0]!['address'];
        assert.deepEqual(value['BackendV6Data'], { VNI: 1, VtepMAC: mac6 });
      } else {
        assert.equal(value['BackendType'], 'host-gw');
      }
    });

    test('-ip-blackhole-route: a blackhole route for the own IPv4 and IPv6 subnets', async () => {
      const env = cluster.nodes[0]!.subnetEnv()!;
      const own6 = env.get('FLANNEL_IPV6_SUBNET')!.replace('::1/64', '::/64');
      const own4 = env.get('FLANNEL_SUBNET')!.replace(/\.1\/24$/, '.0/24');
      const ns = cluster.topology.nodes[0]!.ns;
      await eventually(async () => (await ipj(lab, ns, 'ip', '-6', 'route', 'show', 'type', 'blackhole')).map((r) => r['dst']), (d) => d.includes(own6), 5000, 'the IPv6 blackhole route');
      assert.deepEqual((await ipj(lab, ns, 'ip', '-4', 'route', 'show', 'type', 'blackhole')).map((r) => r['dst']), [own4]);
    });

    test('every pod pings every other pod over IPv4 and IPv6, and full-size over IPv6', { timeout: 60_000 }, async () => {
      const mtu = Number(cluster.nodes[0]!.subnetEnv()!.get('FLANNEL_MTU'));
      for (const a of pods()) {
        for (const b of pods()) {
          if (a === b) continue;
          assert.ok(await eventually(() => ping(lab, a.ns, b.address, 1), (ok) => ok, 10_000, `${a.address} -> ${b.address}`));
          assert.ok(await eventually(() => ping(lab, a.ns, b.address6!, 1), (ok) => ok, 10_000, `${a.address6} -> ${b.address6}`));
        }
      }
      // A packet of the pod MTU (IPv6 40 + ICMPv6 8 + payload), DF as IPv6 always is.
      const [a, b] = pods();
      assert.ok(await ping(lab, a!.ns, b!.address6!, 3, ['-s', String(mtu - 48), '-M', 'do']), `a ${mtu}-byte IPv6 packet crosses`);
    });

    test('TCP over IPv6 both ways, bytes checked', { timeout: 120_000 }, async () => {
      const [a, b] = pods();
      const [ab, ba] = await Promise.all([
        tcpTransfer(lab, a!.ns, b!.ns, b!.address6!, 5001, 20_000_000),
        tcpTransfer(lab, b!.ns, a!.ns, a!.address6!, 5002, 20_000_000),
      ]);
      for (const r of [ab, ba]) {
        assert.equal(r.bytes, 20_000_000);
        assert.equal(r.receivedSha256, r.sentSha256);
      }
    });

    test('the IPv6 kernel state is upstream\'s and comes back when deleted by hand', { timeout: 60_000 }, async () => {
      const ns = cluster.nodes[0]!.spec.ns;
      const peer = cluster.topology.nodes[1]!;
      const subnet6 = `${peer.pod.gateway6!.replace(/::1$/, '::')}/${peer.pod.prefixLen6}`;
      const routes = async () => (await ipj(lab, ns, 'ip', '-6', 'route', 'show', subnet6)).map((r) => `${r['dst']} via ${r['gateway']} dev ${r['dev']}${(r['flags'] as string[] | undefined)?.includes('onlink') ? ' onlink' : ''}`);
      if (backend === 'vxlan') {
        const gw = subnet6.split('/')[0]!;
        assert.deepEqual(await routes(), [`${subnet6} via ${gw} dev flannel-v6.1 onlink`]);
        const neigh = await ipj(lab, ns, 'ip', '-6', 'neigh', 'show', 'dev', 'flannel-v6.1');
        assert.ok(neigh.some((n) => n['dst'] === gw && (n['state'] as string[]).includes('PERMANENT')), JSON.stringify(neigh));
        const fdb = await ipj(lab, ns, 'bridge', 'fdb', 'show', 'dev', 'flannel-v6.1');
        assert.ok(fdb.some((f) => f['dst'] === underlayAddress6(2)), JSON.stringify(fdb));
        const addrs = (await ipj(lab, ns, 'ip', '-6', 'addr', 'show', 'dev', 'flannel-v6.1'))[0]!['addr_info'] as Array<Record<string, unknown>>;
        assert.ok(addrs.some((a) => a['prefixlen'] === 128 && String(a['local']).startsWith('fd00:5:')), JSON.stringify(addrs));
        const mac = (await ipj(lab, ns, 'ip', 'link', 'show', 'flannel-v6.1'))[0]!['address'];
        await lab.exec(ns, 'ip', ['link', 'del', 'flannel-v6.1']);
        await eventually(() => routes(), (r) => r.length === 1, 20_000, 'flannel-v6.1 and its route back');
        assert.equal((await ipj(lab, ns, 'ip', 'link', 'show', 'flannel-v6.1'))[0]!['address'], mac, 'with the same MAC');
      } else {
        assert.deepEqual(await routes(), [`${subnet6} via ${underlayAddress6(2)} dev ${cluster.nodes[0]!.spec.underlayIf}`]);
        await lab.exec(ns, 'ip', ['-6', 'route', 'del', subnet6]);
        await eventually(() => routes(), (r) => r.length === 1, 20_000, 'the v6 route back');
      }
      const [a, b] = pods();
      assert.ok(await eventually(() => ping(lab, a!.ns, b!.address6!, 1), (ok) => ok, 10_000, 'IPv6 traffic after the repair'));
    });

    test('a hand-written upstream-format dual-stack lease is routed in both families', async () => {
      const mac = backend === 'vxlan' ? ',"BackendData":{"VNI":1,"VtepMAC":"0a:0b:0c:0d:0e:0f"},"BackendV6Data":{"VNI":1,"VtepMAC":"0a:0b:0c:0d:0e:1f"}' : '';
      const value = `{"PublicIP":"192.168.100.50","PublicIPv6":"fd99::50","BackendType":"${backend}"${mac}}`;
      await cluster.etcdctl('put', `${cluster.prefix}/subnets/10.5.250.0-24&fd00:5:0:fa::-64`, value);
      const ns = cluster.nodes[0]!.spec.ns;
      await eventually(async () => (await ipj(lab, ns, 'ip', '-6', 'route', 'show', 'fd00:5:0:fa::/64')).length, (n) => n === 1, 10_000, 'the v6 route');
      assert.equal((await ipj(lab, ns, 'ip', 'route', 'show', '10.5.250.0/24')).length, 1, 'and the v4 one');
    });
  });
}

describe('dual stack: what is refused at start', ROOT_SUITE, () => {
  test('an IPv6-only network in etcd mode: exit 1 with the reason', { timeout: 60_000 }, async () => {
    const lab = new Lab();
    try {
      const cluster = await FlannelCluster.create(lab, { nodes: 1, ipv6: true, config: { ...CONFIG, Backend: { Type: 'host-gw' } } });
      await cluster.etcdctl('put', `${cluster.prefix}/config`, JSON.stringify({ EnableIPv4: false, EnableIPv6: true, IPv6Network: 'fd00:5::/48', Backend: { Type: 'host-gw' } }));
      const v6only = cluster.startNode(1);
      assert.equal(await v6only.waitExit(20_000), 1);
      assert.ok(v6only.messages().some((m) => /IPv6-only network \(EnableIPv4 false\) is not supported in etcd mode.*-kube-subnet-mgr/.test(m)), v6only.messages().join('\n'));
    } finally {
      await lab.cleanup();
    }
  });
});
