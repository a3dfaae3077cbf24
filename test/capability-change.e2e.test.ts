/**
 * The rolling restart that prepares a move back to upstream
 * (docs/compatibility.md, "Moving a node back to upstream"), as an operator
 * meets it: two flannel-ts udp nodes run with the default config, the config
 * in etcd is changed to `"AdvertiseCapabilities": false`, and only node 1 has
 * restarted so far. Node 1 no longer takes partial checksums, and must not
 * send them either: node 2 completes partial checksums only from leases that
 * advertise them, so partials from node 1 would reach node 2's pod unfinished
 * and be dropped there. TCP and UDP both ways arrive intact, no pod counts a
 * checksum error, and neither node sends or takes a partial checksum.
 * Before that, a second record with node 2's PublicIP and no capabilities (a
 * stale lease from before a reinstall) must not change how node 2's own
 * pods' packets are taken: capabilities belong to a lease, not an address.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { httpGet } from '../lab/daemon-probes';
import { FlannelCluster } from '../lab/flannel-cluster';
import { Lab } from '../lab/netns';
import { kernelChecksumErrors, tcpTransfer, udpDatagrams } from '../lab/traffic';
import { allPodsPing } from './helpers/cluster-probes';
import { eventually } from './helpers/eventually';
import { ROOT_SUITE } from './helpers/root';

const HEALTHZ_PORT = 18473;
const CONFIG = { Network: '10.5.0.0/16', SubnetMax: '10.5.90.0', Backend: { Type: 'udp' } };

describe('udp: one node restarted with "AdvertiseCapabilities": false beside one that still advertises', ROOT_SUITE, () => {
  let lab: Lab;
  let cluster: FlannelCluster;
  const pod = (i: number) => cluster.topology.nodes[i - 1]!.pod;
  const ns = (i: number) => cluster.topology.nodes[i - 1]!.ns;

  /** Node i's partial-checksum counters from its /metrics. */
  async function partials(i: number): Promise<{ sent: number; received: number }> {
    const body = (await httpGet(lab, ns(i), HEALTHZ_PORT, '/metrics')).body;
    const read = (kind: string): number => {
      const m = new RegExp(`^flanneld_datapath_offload_packets_total\\{kind="${kind}"\\} (\\d+)$`, 'm').exec(body);
      assert.ok(m, `node ${i} has no ${kind} series`);
      return Number(m[1]);
    };
    return { sent: read('partial_checksum_sent'), received: read('partial_checksum_received') };
  }

  async function checkedTraffic(port: number): Promise<void> {
    for (const [from, to] of [
      [1, 2],
      [2, 1],
    ] as const) {
      const t = await tcpTransfer(lab, pod(from).ns, pod(to).ns, pod(to).address, port + from, 4_000_000, 60_000);
      assert.equal(t.receivedSha256, t.sentSha256, `TCP pod${from} -> pod${to} intact`);
      const u = await udpDatagrams(lab, pod(from), pod(to), port + 10 + from, 200, [64, 700, 1400]);
      assert.equal(u.bad, 0, `UDP pod${from} -> pod${to}: no damaged datagram`);
      assert.ok(u.distinct >= 190, `UDP pod${from} -> pod${to}: ${u.distinct} of 200 arrived`);
    }
  }

  before(async () => {
    lab = new Lab();
    cluster = await FlannelCluster.create(lab, { nodes: 2, config: CONFIG });
    for (const i of [1, 2]) cluster.startNode(i, [`-healthz-port=${HEALTHZ_PORT}`]);
    for (const i of [1, 2]) await cluster.waitSubnet(i);
    for (const i of [1, 2]) await cluster.attachPod(i);
    await allPodsPing(lab, cluster, [1, 2]);
  });
  after(async () => {
    await lab?.cleanup();
  });

  test('with the default config both nodes send and take partial checksums', { timeout: 60_000 }, async () => {
    await checkedTraffic(6100);
    for (const i of [1, 2]) {
      const p = await partials(i);
      assert.ok(p.sent > 0 && p.received > 0, `node ${i}: ${JSON.stringify(p)}`);
    }
  });

  test("a second record with node 2's PublicIP and no capabilities changes nothing for node 2's pods", { timeout: 60_000 }, async () => {
    // A stale lease of node 2's from before a reinstall, or a rogue record.
    const stale = `${cluster.prefix}/subnets/10.5.200.0-24`;
    await cluster.etcdctl('put', stale, JSON.stringify({ PublicIP: cluster.topology.nodes[1]!.underlayAddress }));
    try {
      // Node 1 routes the record (it is the newest lease with that address) before traffic is judged.
      await eventually(() => cluster.nodes[0]!.messages().some((m) => m.includes('10.5.200.0/24')), (seen) => seen, 10_000, 'node 1 saw the record');
      const before = await partials(1);
      const errorsBefore = await kernelChecksumErrors(lab, pod(1).ns);
      await checkedTraffic(6150);
      assert.equal(await kernelChecksumErrors(lab, pod(1).ns), errorsBefore, "no checksum error in node 1's pod");
      const after = await partials(1);
      assert.ok(after.received > before.received, "node 2's partial checksums are still taken and completed by node 1");
    } finally {
      await cluster.etcdctl('del', stale);
    }
  });

  test('after node 1 restarts without them: traffic intact both ways, no checksum error, no partial checksum either way', { timeout: 120_000 }, async () => {
    await cluster.etcdctl('put', `${cluster.prefix}/config`, JSON.stringify({ ...CONFIG, Backend: { Type: 'udp', AdvertiseCapabilities: false } }));
    await cluster.nodes[0]!.stop();
    cluster.startNode(1, [`-healthz-port=${HEALTHZ_PORT}`]);
    await cluster.waitSubnet(1);
    // Node 2 has seen node 1's new lease when a ping crosses again.
    await allPodsPing(lab, cluster, [1, 2]);
    const lease = await cluster.etcdctl('get', '--prefix', `${cluster.prefix}/subnets/`);
    assert.doesNotMatch(lease.split('\n').filter((l) => l.includes(cluster.topology.nodes[0]!.underlayAddress)).join('\n'), /Capabilities/, "node 1's lease is upstream's bytes");
    const before = [await partials(1), await partials(2)];
    const errorsBefore = [await kernelChecksumErrors(lab, pod(1).ns), await kernelChecksumErrors(lab, pod(2).ns)];
    await checkedTraffic(6200);
    assert.deepEqual([await kernelChecksumErrors(lab, pod(1).ns), await kernelChecksumErrors(lab, pod(2).ns)], errorsBefore, 'no pod counted a checksum error');
    const after = [await partials(1), await partials(2)];
    assert.deepEqual(after, before, 'no partial checksum was sent or taken by either node');
  });
});
