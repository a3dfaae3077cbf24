/**
 * Records that would break a legitimate peer, written into etcd beside a
 * running vxlan cluster of real bin/flanneld processes (docs/reliability.md,
 * "Bad records"):
 *  - a record that reuses node 2's VtepMAC with another PublicIP: node 2's
 *    FDB entry stays pointed at node 2 and every ping is answered (upstream
 *    re-points it, and the reconciler then flaps);
 *  - a record whose PublicIP lies inside the Network (a cni0 address);
 *  - an address added on node 1 after flanneld started: a record with that
 *    PublicIP is refused, and a routed record whose PublicIP becomes node 1's
 *    own is withdrawn (the addresses are kept current from netlink events).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { FlannelCluster } from '../lab/flannel-cluster';
import { Lab } from '../lab/netns';
import { pingSeries } from '../lab/traffic';
import { allPodsPing, ipj } from './helpers/cluster-probes';
import { eventually } from './helpers/eventually';
import { ROOT_SUITE } from './helpers/root';

describe('bad records beside a vxlan cluster', ROOT_SUITE, () => {
  let lab: Lab;
  let c: FlannelCluster;
  const node = (i: number) => c.topology.nodes[i - 1]!;
  const put = (subnet: string, value: object) => c.etcdctl('put', `${c.prefix}/subnets/${subnet}`, JSON.stringify(value));
  const refused = (i: number, re: RegExp) => c.nodes[i - 1]!.messages().some((m) => /^Ignoring lease/.test(m) && re.test(m));

  before(async () => {
    lab = new Lab();
    c = await FlannelCluster.create(lab, { nodes: 2, config: { Network: '10.8.0.0/16', SubnetMax: '10.8.90.0', Backend: { Type: 'vxlan' } } });
    for (const i of [1, 2]) c.startNode(i);
    for (const i of [1, 2]) await c.waitSubnet(i);
    for (const i of [1, 2]) await c.attachPod(i);
    await allPodsPing(lab, c, [1, 2]);
  });
  after(async () => {
    await lab?.cleanup();
  });

  test("a record with node 2's VtepMAC and another PublicIP changes nothing: 30 of 30 pings, node 2's FDB entry kept", { timeout: 60_000 }, async () => {
    const [dev] = await ipj(lab, node(2).ns, 'ip', 'link', 'show', 'flannel.1');
    const mac = dev!['address'] as string;
    await put('10.8.200.0-24', { PublicIP: '192.168.100.99', PublicIPv6: null, BackendType: 'vxlan', BackendData: { VNI: 1, VtepMAC: mac } });
    await eventually(() => refused(1, new RegExp(`VtepMAC ${mac} is that of`)), (ok) => ok, 10_000, 'the rogue record refused on node 1');
    const series = await pingSeries(lab, node(1).pod.ns, node(2).pod.address, 30, 100);
    assert.equal(series.received, 30, `${series.received} of 30 pings answered`);
    const fdb = await ipj(lab, node(1).ns, 'bridge', 'fdb', 'show', 'dev', 'flannel.1');
    assert.deepEqual(fdb.filter((f) => f['mac'] === mac).map((f) => f['dst']), [node(2).underlayAddress]);
    assert.equal(c.nodes[0]!.messages().filter((m) => new RegExp(`VtepMAC ${mac} is that of`).test(m)).length, 1, 'logged once');
    assert.ok(!c.nodes[0]!.messages().some((m) => /restored: .*fdb/i.test(m)), 'no FDB repair flapping');
  });

  test('a record whose PublicIP lies inside the Network is refused', async () => {
    await put('10.8.201.0-24', { PublicIP: '10.8.201.1', PublicIPv6: null, BackendType: 'vxlan', BackendData: { VNI: 1, VtepMAC: '0a:00:00:00:c9:01' } });
    await eventually(() => refused(1, /PublicIP 10\.8\.201\.1 cannot be a peer's: it is inside the Network 10\.8\.0\.0\/16/), (ok) => ok, 10_000, 'refused');
    const routes = await ipj(lab, node(1).ns, 'ip', 'route', 'show', '10.8.201.0/24');
    assert.deepEqual(routes, []);
  });

  test("an address added on node 1 after start is its own: a routed record with it is withdrawn, a new one refused", { timeout: 30_000 }, async () => {
    await put('10.8.202.0-24', { PublicIP: '192.168.100.202', PublicIPv6: null, BackendType: 'vxlan', BackendData: { VNI: 1, VtepMAC: '0a:00:00:00:ca:02' } });
    await eventually(async () => (await ipj(lab, node(1).ns, 'ip', 'route', 'show', '10.8.202.0/24')).length, (n) => n === 1, 10_000, 'routed first');
    await lab.exec(node(1).ns, 'ip', ['addr', 'add', '192.168.100.202/32', 'dev', 'lo']);
    await lab.exec(node(1).ns, 'ip', ['addr', 'add', '192.168.100.203/32', 'dev', 'lo']);
    await eventually(async () => (await ipj(lab, node(1).ns, 'ip', 'route', 'show', '10.8.202.0/24')).length, (n) => n === 0, 10_000, 'withdrawn');
    await put('10.8.203.0-24', { PublicIP: '192.168.100.203', PublicIPv6: null, BackendType: 'vxlan', BackendData: { VNI: 1, VtepMAC: '0a:00:00:00:cb:03' } });
    await eventually(() => refused(1, /PublicIP 192\.168\.100\.203 cannot be a peer's: it is this node's own address/), (ok) => ok, 10_000, 'refused');
    assert.ok(c.nodes[0]!.messages().some((m) => /this node's addresses changed: added \[.*192\.168\.100\.202/.test(m)));
    // Node 2 does not have that address: it routes both.
    await eventually(async () => (await ipj(lab, node(2).ns, 'ip', 'route', 'show', '10.8.203.0/24')).length, (n) => n === 1, 10_000, 'node 2 routes it');
    await allPodsPing(lab, c, [1, 2]);
  });
});
