/**
 * The vxlan and host-gw backends end to end: real bin/flanneld processes in
 * namespaces with etcd; kernel state checked with iproute2 against
 * docs/compatibility.md §6.1, §6.3 and §7.2; entries deleted by hand come back.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { FlannelCluster } from '../lab/flannel-cluster';
import { Lab } from '../lab/netns';
import { ping } from '../lab/topology';
import { tcpTransfer } from '../lab/traffic';
import { allPodsPing, ipj, type Json } from './helpers/cluster-probes';
import { eventually } from './helpers/eventually';
import { ROOT_SUITE } from './helpers/root';

async function leaseOf(cluster: FlannelCluster, i: number): Promise<Json> {
  const key = `${cluster.prefix}/subnets/${cluster.topology.nodes[i - 1]!.podSubnet.toString().replace('/', '-')}`;
  return JSON.parse((await cluster.etcdctl('get', key, '--print-value-only')).trim()) as Json;
}

async function tcpBothWays(lab: Lab, cluster: FlannelCluster, a: number, b: number): Promise<void> {
  const pa = cluster.topology.nodes[a - 1]!.pod;
  const pb = cluster.topology.nodes[b - 1]!.pod;
  const [x, y] = await Promise.all([tcpTransfer(lab, pa.ns, pb.ns, pb.address, 7001, 20_000_000), tcpTransfer(lab, pb.ns, pa.ns, pa.address, 7002, 20_000_000)]);
  for (const r of [x, y]) {
    assert.equal(r.bytes, 20_000_000);
    assert.equal(r.receivedSha256, r.sentSha256);
  }
}

describe('vxlan backend: three nodes', ROOT_SUITE, () => {
  let lab: Lab;
  let c: FlannelCluster;
  const ns = (i: number) => c.topology.nodes[i - 1]!.ns;

  before(async () => {
    lab = new Lab();
    c = await FlannelCluster.create(lab, { nodes: 3, config: { Network: '10.7.0.0/16', SubnetMax: '10.7.199.0', Backend: { Type: 'vxlan' } } });
    // An incompatible leftover device on node 1 must be recreated, saying why.
    await lab.exec(ns(1), 'ip', ['link', 'add', 'flannel.1', 'type', 'vxlan', 'id', '2', 'dstport', '8472', 'dev', c.topology.nodes[0]!.underlayIf]);
    for (const i of [1, 2, 3]) c.startNode(i);
    for (const i of [1, 2, 3]) await c.waitSubnet(i);
    for (const i of [1, 2, 3]) await c.attachPod(i);
  });
  after(async () => {
    await lab?.cleanup();
  });

  test('an incompatible existing device is recreated, naming the field', () => {
    assert.ok(c.nodes[0]!.messages().some((m) => m === '"flannel.1" already exists with incompatible configuration: vni: 2 vs 1; recreating device'));
  });

  test('pods reach each other; 20 MB over TCP both ways', { timeout: 60_000 }, async () => {
    await allPodsPing(lab, c, [1, 2, 3]);
    await tcpBothWays(lab, c, 1, 2);
  });

  test('device, lease, neighbours, FDB and routes are as flannel makes them (docs/compatibility.md §6.1, §6.3)', async () => {
    for (const i of [1, 2, 3]) {
      const node = c.topology.nodes[i - 1]!;
      const [link] = await ipj(lab, node.ns, 'ip', '-d', 'link', 'show', 'flannel.1');
      const info = (link!['linkinfo'] as Json)['info_data'] as Json;
      assert.equal((link!['linkinfo'] as Json)['info_kind'], 'vxlan');
      assert.deepEqual([info['id'], info['local'], info['link'], info['port'], info['learning'], info['ttl']], [1, node.underlayAddress, node.underlayIf, 8472, false, 0]);
      assert.equal(link!['mtu'], 1450);
      assert.ok((link!['flags'] as string[]).includes('UP'));
      const mac = link!['address'] as string;
      assert.ok((parseInt(mac.slice(0, 2), 16) & 3) === 2, 'a locally administered unicast MAC');
      const lease = await leaseOf(c, i);
      assert.deepEqual(lease, { PublicIP: node.underlayAddress, PublicIPv6: null, BackendType: 'vxlan', BackendData: { VNI: 1, VtepMAC: mac } });
      const raw = (await c.etcdctl('get', `${c.prefix}/subnets/${node.podSubnet.toString().replace('/', '-')}`, '--print-value-only')).trim();
      assert.equal(raw, `{"PublicIP":"${node.underlayAddress}","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"${mac}"}}`);
      const addrs = (await ipj(lab, node.ns, 'ip', '-4', 'addr', 'show', 'flannel.1'))[0]!['addr_info'] as Json[];
      assert.deepEqual(addrs.map((a) => `${a['local']}/${a['prefixlen']}`), [`${node.podSubnet.toString().split('/')[0]}/32`]);
      assert.equal(fs.readFileSync(c.nodes[i - 1]!.subnetFile, 'utf8').match(/FLANNEL_MTU=(\d+)/)![1], '1450');
      assert.equal((await lab.exec(node.ns, 'cat', ['/proc/sys/net/ipv6/conf/flannel.1/accept_ra'])).stdout.trim(), '0');

      const neigh = await ipj(lab, node.ns, 'ip', 'neigh', 'show', 'dev', 'flannel.1');
      const fdb = await ipj(lab, node.ns, 'bridge', 'fdb', 'show', 'dev', 'flannel.1');
      const routes = await ipj(lab, node.ns, 'ip', 'route', 'show', 'dev', 'flannel.1');
      for (const j of [1, 2, 3]) {
        if (j === i) continue;
        const peer = c.topology.nodes[j - 1]!;
        const peerMac = ((await leaseOf(c, j))['BackendData'] as Json)['VtepMAC'];
        const gw = peer.podSubnet.toString().split('/')[0];
        assert.ok(neigh.some((n) => n['dst'] === gw && n['lladdr'] === peerMac && (n['state'] as string[]).includes('PERMANENT')), `neighbour for node ${j}`);
        assert.ok(fdb.some((f) => f['mac'] === peerMac && f['dst'] === peer.underlayAddress && (f['flags'] as string[]).includes('self') && f['state'] === 'permanent'), `fdb for node ${j}`);
        assert.ok(routes.some((r) => r['dst'] === peer.podSubnet.toString() && r['gateway'] === gw && (r['flags'] as string[]).includes('onlink')), `route for node ${j}`);
      }
    }
  });

  test('a lease written by hand gets its entries; deleting it removes them', async () => {
    await c.etcdctl('put', `${c.prefix}/subnets/10.7.250.0-24`, '{"PublicIP":"192.168.100.77","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"2a:00:00:00:00:77"}}');
    const has = async () => {
      const n = await ipj(lab, ns(2), 'ip', 'neigh', 'show', 'dev', 'flannel.1');
      const f = await ipj(lab, ns(2), 'bridge', 'fdb', 'show', 'dev', 'flannel.1');
      const r = await ipj(lab, ns(2), 'ip', 'route', 'show', '10.7.250.0/24');
      return [n.some((x) => x['dst'] === '10.7.250.0'), f.some((x) => x['dst'] === '192.168.100.77'), r.length === 1];
    };
    await eventually(has, (v) => v.every(Boolean), 5000, 'all three entries');
    await c.etcdctl('del', `${c.prefix}/subnets/10.7.250.0-24`);
    await eventually(has, (v) => v.every((x) => !x), 5000, 'all three entries gone');
  });

  test('a lease of another backend type is ignored with one warning', async () => {
    await c.etcdctl('put', `${c.prefix}/subnets/10.7.251.0-24`, '{"PublicIP":"192.168.100.78","PublicIPv6":null,"BackendType":"host-gw"}');
    await eventually(() => c.nodes[1]!.messages(), (m) => m.some((x) => /Ignoring non-vxlan subnet 10\.7\.251\.0\/24/.test(x)), 5000, 'the warning');
    assert.equal((await ipj(lab, ns(2), 'ip', 'route', 'show', '10.7.251.0/24')).length, 0);
    await c.etcdctl('put', `${c.prefix}/subnets/10.7.251.0-24`, '{"PublicIP":"192.168.100.78","PublicIPv6":null,"BackendType":"host-gw"}');
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(c.nodes[1]!.messages().filter((x) => /Ignoring non-vxlan subnet 10\.7\.251\.0\/24/.test(x)).length, 1);
  });

  test('a neighbour, FDB entry, route or MTU changed by hand is restored', async () => {
    const peer = c.topology.nodes[1]!;
    const gw = peer.podSubnet.toString().split('/')[0]!;
    const mac = ((await leaseOf(c, 2))['BackendData'] as Json)['VtepMAC'] as string;
    await lab.exec(ns(1), 'ip', ['neigh', 'del', gw, 'dev', 'flannel.1']);
    await lab.exec(ns(1), 'bridge', ['fdb', 'del', mac, 'dev', 'flannel.1', 'dst', peer.underlayAddress, 'self']);
    await lab.exec(ns(1), 'ip', ['route', 'del', peer.podSubnet.toString()]);
    await lab.exec(ns(1), 'ip', ['link', 'set', 'flannel.1', 'mtu', '1300']);
    await eventually(
      async () => [
        (await ipj(lab, ns(1), 'ip', 'neigh', 'show', 'dev', 'flannel.1')).some((n) => n['dst'] === gw),
        (await ipj(lab, ns(1), 'bridge', 'fdb', 'show', 'dev', 'flannel.1')).some((f) => f['mac'] === mac),
        (await ipj(lab, ns(1), 'ip', 'route', 'show', peer.podSubnet.toString())).length === 1,
        (await ipj(lab, ns(1), 'ip', 'link', 'show', 'flannel.1'))[0]!['mtu'] === 1450,
      ],
      (v) => v.every(Boolean),
      5000,
      'everything restored',
    );
    const msgs = c.nodes[0]!.messages();
    for (const kind of ['ip neigh replace', 'bridge fdb replace', 'ip route replace', 'set the MTU of flannel.1 to 1450']) {
      assert.ok(msgs.some((m) => m.startsWith('repaired:') && m.includes(kind)), `logged: ${kind}`);
    }
    await allPodsPing(lab, c, [1, 2]);
  });

  test('the device deleted by hand is recreated with the same MAC and every entry replayed', async () => {
    const before = (await ipj(lab, ns(1), 'ip', 'link', 'show', 'flannel.1'))[0]!['address'];
    await lab.exec(ns(1), 'ip', ['link', 'del', 'flannel.1']);
    await eventually(async () => (await ipj(lab, ns(1), 'ip', 'route', 'show', 'dev', 'flannel.1').catch(() => [])).length, (n) => n === 2, 5000, 'routes replayed');
    assert.equal((await ipj(lab, ns(1), 'ip', 'link', 'show', 'flannel.1'))[0]!['address'], before);
    assert.equal((await ipj(lab, ns(1), 'ip', 'neigh', 'show', 'dev', 'flannel.1')).length, 2);
    await allPodsPing(lab, c, [1, 2, 3]);
  });

  test('stopping flanneld leaves the kernel state, so traffic goes on; a restart reuses the device', { timeout: 60_000 }, async () => {
    const mac = (await ipj(lab, ns(1), 'ip', 'link', 'show', 'flannel.1'))[0]!['address'];
    assert.equal(await c.nodes[0]!.stop('SIGTERM'), 0);
    await allPodsPing(lab, c, [1, 2, 3]);
    c.startNode(1);
    await c.waitSubnet(1);
    await eventually(() => c.nodes[0]!.messages(), (m) => m.some((x) => /flanneld is running/.test(x)), 10_000, 'restarted');
    assert.ok(!c.nodes[0]!.messages().some((m) => /^created flannel\.1/.test(m)), 'not recreated');
    assert.equal((await ipj(lab, ns(1), 'ip', 'link', 'show', 'flannel.1'))[0]!['address'], mac);
    await allPodsPing(lab, c, [1, 2, 3]);
  });
});

describe('host-gw backend: three nodes', ROOT_SUITE, () => {
  let lab: Lab;
  let c: FlannelCluster;
  const ns = (i: number) => c.topology.nodes[i - 1]!.ns;

  before(async () => {
    lab = new Lab();
    c = await FlannelCluster.create(lab, { nodes: 3, config: { Network: '10.8.0.0/16', SubnetMax: '10.8.199.0', Backend: { Type: 'host-gw' } } });
    for (const i of [1, 2, 3]) c.startNode(i);
    for (const i of [1, 2, 3]) await c.waitSubnet(i);
    for (const i of [1, 2, 3]) await c.attachPod(i);
  });
  after(async () => {
    await lab?.cleanup();
  });

  test('pods reach each other; 20 MB over TCP both ways', { timeout: 60_000 }, async () => {
    await allPodsPing(lab, c, [1, 2, 3]);
    await tcpBothWays(lab, c, 2, 3);
  });

  test('routes, lease and MTU are as flannel makes them (docs/compatibility.md §7.2)', async () => {
    for (const i of [1, 2, 3]) {
      const node = c.topology.nodes[i - 1]!;
      const raw = (await c.etcdctl('get', `${c.prefix}/subnets/${node.podSubnet.toString().replace('/', '-')}`, '--print-value-only')).trim();
      assert.equal(raw, `{"PublicIP":"${node.underlayAddress}","PublicIPv6":null,"BackendType":"host-gw"}`);
      assert.match(fs.readFileSync(c.nodes[i - 1]!.subnetFile, 'utf8'), /FLANNEL_MTU=1500\n/);
      for (const j of [1, 2, 3]) {
        if (j === i) continue;
        const peer = c.topology.nodes[j - 1]!;
        const out = (await lab.exec(node.ns, 'ip', ['-d', 'route', 'show', peer.podSubnet.toString()])).stdout;
        assert.match(out, new RegExp(`^unicast ${peer.podSubnet.toString().replace(/\./g, '\\.')} via ${peer.underlayAddress.replace(/\./g, '\\.')} dev ${node.underlayIf} proto 157 scope global`, 'm'));
      }
    }
  });

  test('a lease written by hand gets a route; deleting it removes the route', async () => {
    await c.etcdctl('put', `${c.prefix}/subnets/10.8.250.0-24`, '{"PublicIP":"192.168.100.77","PublicIPv6":null,"BackendType":"host-gw"}');
    await eventually(async () => (await ipj(lab, ns(1), 'ip', 'route', 'show', '10.8.250.0/24')).length, (n) => n === 1, 5000, 'the route');
    await c.etcdctl('del', `${c.prefix}/subnets/10.8.250.0-24`);
    await eventually(async () => (await ipj(lab, ns(1), 'ip', 'route', 'show', '10.8.250.0/24')).length, (n) => n === 0, 5000, 'the route gone');
  });

  test('a route deleted or changed by hand is restored', async () => {
    const peer = c.topology.nodes[2]!;
    await lab.exec(ns(1), 'ip', ['route', 'del', peer.podSubnet.toString()]);
    await eventually(async () => (await ipj(lab, ns(1), 'ip', 'route', 'show', peer.podSubnet.toString())).length, (n) => n === 1, 5000, 'restored after deletion');
    await lab.exec(ns(1), 'ip', ['route', 'replace', peer.podSubnet.toString(), 'via', '192.168.100.2']);
    await eventually(
      async () => (await ipj(lab, ns(1), 'ip', 'route', 'show', peer.podSubnet.toString()))[0]?.['gateway'],
      (g) => g === peer.underlayAddress,
      5000,
      'restored after a change',
    );
    assert.ok(c.nodes[0]!.messages().some((m) => /^repaired: Route recovered/.test(m)));
    await allPodsPing(lab, c, [1, 3]);
  });

  test('an off-link peer is explained once in the log', async () => {
    await c.etcdctl('put', `${c.prefix}/subnets/10.8.251.0-24`, '{"PublicIP":"10.99.99.99","PublicIPv6":null,"BackendType":"host-gw"}');
    await eventually(() => c.nodes[0]!.messages(), (m) => m.some((x) => /Error adding route to 10\.8\.251\.0\/24 via 10\.99\.99\.99 .*host-gw needs every node on the same layer-2 segment/.test(x)), 5000, 'the error');
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(c.nodes[0]!.messages().filter((x) => /Error adding route to 10\.8\.251\.0\/24/.test(x)).length, 1);
    await c.etcdctl('del', `${c.prefix}/subnets/10.8.251.0-24`);
  });

  test('bad records cannot hurt a node: a default route, an alias of our subnet, host bits, our own address as a peer', { timeout: 60_000 }, async () => {
    const hostGw = (ip: string) => `{"PublicIP":"${ip}","PublicIPv6":null,"BackendType":"host-gw"}`;
    const [n1, n2] = [c.topology.nodes[0]!, c.topology.nodes[1]!];
    const defaultBefore = await ipj(lab, ns(1), 'ip', 'route', 'show', 'default');
    const alias = n2.podSubnet.toString().replace('/', '-').replace(/\.0-/, '.1-'); // host bits: "10.8.x.1-24"
    const writes: Array<[string, string]> = [
      ['0.0.0.0-0', hostGw(n2.underlayAddress)], // upstream: replaces the node's default route
      [n1.podSubnet.toString().replace('/', '-').replace(/-24$/, '-25'), hostGw(n2.underlayAddress)], // inside node 1's own subnet
      ['10.9.1.0-24', hostGw(n2.underlayAddress)], // outside the Network
      ['10.8.240.0-24', hostGw(n1.underlayAddress)], // node 1's own address as a peer
      [alias, hostGw('192.168.100.99')], // put, then deleted: upstream withdraws node 2's route
    ];
    for (const [k, v] of writes) await c.etcdctl('put', `${c.prefix}/subnets/${k}`, v);
    await c.etcdctl('del', `${c.prefix}/subnets/${alias}`);
    await eventually(() => c.nodes[0]!.messages(), (m) => m.filter((x) => /^Ignoring lease|^Ignoring bad subnet node/.test(x)).length >= 5, 5000, 'every bad record refused');
    await new Promise((r) => setTimeout(r, 500));
    assert.deepEqual(await ipj(lab, ns(1), 'ip', 'route', 'show', 'default'), defaultBefore, 'the default route is untouched');
    assert.deepEqual(await ipj(lab, ns(1), 'ip', 'route', 'show', '10.8.240.0/24'), [], 'no route via our own address');
    assert.deepEqual(await ipj(lab, ns(1), 'ip', 'route', 'show', '10.9.1.0/24'), [], 'nothing outside the Network');
    const toNode2 = await ipj(lab, ns(1), 'ip', 'route', 'show', n2.podSubnet.toString());
    assert.equal(toNode2[0]?.['gateway'], n2.underlayAddress, "node 2's route survived the alias's deletion");
    const msgs = c.nodes[0]!.messages();
    for (const why of ['not inside the Network', "overlaps this node's own subnet", "this node's own address", 'host bits set']) {
      assert.ok(msgs.some((m) => m.includes(why)), `logged: ${why}`);
    }
    await allPodsPing(lab, c, [1, 2, 3]);
    for (const [k] of writes) await c.etcdctl('del', `${c.prefix}/subnets/${k}`);
  });

  test('behind NAT (PublicIP differs from the interface IP): exit 1 with upstream\'s message', async () => {
    const node = c.startNode(3, [`-iface=${c.topology.nodes[2]!.underlayIf}`, '-public-ip=203.0.113.9', `-subnet-file=${c.subnetFileOf(3)}.nat`]);
    assert.equal(await node.waitExit(15_000), 1);
    assert.ok(node.messages().some((m) => m === "Error fetching backend: your PublicIP differs from interface IP, meaning that probably you're on a NAT, which is not supported by host-gw backend"));
  });
});

describe('vxlan with DirectRouting on a shared segment', ROOT_SUITE, () => {
  let lab: Lab;
  let c: FlannelCluster;

  before(async () => {
    lab = new Lab();
    c = await FlannelCluster.create(lab, { nodes: 2, config: { Network: '10.9.0.0/16', Backend: { Type: 'vxlan', DirectRouting: true } } });
    for (const i of [1, 2]) c.startNode(i);
    for (const i of [1, 2]) await c.waitSubnet(i);
    for (const i of [1, 2]) await c.attachPod(i);
  });
  after(async () => {
    await lab?.cleanup();
  });

  test('uses a plain route via the peer, no neighbour or FDB entry', async () => {
    await allPodsPing(lab, c, [1, 2]);
    const peer = c.topology.nodes[1]!;
    const node = c.topology.nodes[0]!;
    const out = (await lab.exec(node.ns, 'ip', ['route', 'show', peer.podSubnet.toString()])).stdout;
    assert.match(out, new RegExp(`via ${peer.underlayAddress.replace(/\./g, '\\.')} dev ${node.underlayIf}`));
    assert.equal((await ipj(lab, node.ns, 'ip', 'neigh', 'show', 'dev', 'flannel.1')).filter((n) => (n['state'] as string[]).includes('PERMANENT')).length, 0);
    assert.equal((await ipj(lab, node.ns, 'bridge', 'fdb', 'show', 'dev', 'flannel.1')).filter((f) => f['state'] === 'permanent').length, 0);
  });
});

describe('two daemons on the same nodes: vxlan and host-gw (upstream\'s "multi")', ROOT_SUITE, () => {
  let lab: Lab;
  let c: FlannelCluster;

  before(async () => {
    lab = new Lab();
    c = await FlannelCluster.create(lab, { nodes: 2, prefix: '/vxlan/network', config: { Network: '10.11.0.0/16', Backend: { Type: 'vxlan' } } });
    await c.etcdctl('put', '/hostgw/network/config', JSON.stringify({ Network: '10.12.0.0/16', Backend: { Type: 'host-gw' } }));
  });
  after(async () => {
    await lab?.cleanup();
  });

  test('both networks carry traffic', { timeout: 60_000 }, async () => {
    const subnets: string[][] = [];
    for (const i of [1, 2]) {
      const vx = c.startNode(i, [`-subnet-file=${c.subnetFileOf(i)}.vxlan`, '-etcd-prefix=/vxlan/network']);
      const hg = c.startNode(i, [`-subnet-file=${c.subnetFileOf(i)}.hostgw`, '-etcd-prefix=/hostgw/network']);
      const wait = async (n: typeof vx) => eventually(() => n.subnetEnv()?.get('FLANNEL_SUBNET'), (s) => s !== undefined, 20_000, 'subnet.env');
      subnets.push([(await wait(vx))!, (await wait(hg))!]);
      // Like upstream's test: an address from each network's subnet on a local device.
      const node = c.topology.nodes[i - 1]!;
      await lab.exec(node.ns, 'ip', ['link', 'add', 'mva', 'type', 'veth', 'peer', 'name', 'mvb']);
      await lab.exec(node.ns, 'ip', ['link', 'set', 'mva', 'up']);
      await lab.exec(node.ns, 'ip', ['link', 'set', 'mvb', 'up']);
      await lab.exec(node.ns, 'ip', ['addr', 'add', subnets[i - 1]![0]!, 'dev', 'mva']);
      await lab.exec(node.ns, 'ip', ['addr', 'add', subnets[i - 1]![1]!, 'dev', 'mvb']);
    }
    const addr = (s: string) => s.split('/')[0]!;
    const ns1 = c.topology.nodes[0]!.ns;
    assert.ok(await eventually(() => ping(lab, ns1, addr(subnets[1]![0]!), 1, ['-I', addr(subnets[0]![0]!)]), (ok) => ok, 10_000, 'vxlan network'));
    assert.ok(await eventually(() => ping(lab, ns1, addr(subnets[1]![1]!), 1, ['-I', addr(subnets[0]![1]!)]), (ok) => ok, 10_000, 'host-gw network'));
    const routes = (await lab.exec(ns1, 'ip', ['route'])).stdout;
    assert.match(routes, /^10\.11\.\d+\.0\/24 via 10\.11\.\d+\.0 dev flannel\.1 proto 157 onlink/m);
    assert.match(routes, /^10\.12\.\d+\.0\/24 via 192\.168\.100\.2 dev /m);
  });
});
