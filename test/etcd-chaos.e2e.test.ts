/**
 * etcd trouble, survived: three nodes running the real bin/flanneld (udp
 * backend) in namespaces, pods pinging at 10 Hz, and etcd killed, paused
 * past the request deadline, cut off for 30 s with a compaction and a lease
 * renewal falling in the gap, a renewal whose reply is lost, and wiped. In
 * every case no route is lost, no node exits, and changes made meanwhile
 * arrive within seconds once etcd is back. One cluster serves every case,
 * in order (the renewal is due 60 s after the lease: -subnet-lease-renew-margin=1439).
 * The measured numbers are reported as test diagnostics (docs/reliability.md).
 */
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';
import { ETCD_HOST, ETCD_PORT, FlannelCluster } from '../lab/flannel-cluster';
import { JsonChannel } from '../lab/json-channel';
import { Lab } from '../lab/netns';
import { pingSeries, type PingSeries } from '../lab/traffic';
import { allPodsPing } from './helpers/cluster-probes';
import { eventually } from './helpers/eventually';
import { ROOT_SUITE } from './helpers/root';

const PROXY_SCRIPT = path.join(__dirname, '..', 'lab', 'bin', 'etcd-reply-proxy.js');
const PREFIX = '/coreos.com/network';
const udpValue = (ip: string) => `{"PublicIP":"${ip}","PublicIPv6":null}`;

describe('etcd trouble, survived: three udp nodes, pods pinging at 10 Hz', ROOT_SUITE, () => {
  let lab: Lab;
  let cluster: FlannelCluster;
  let proxy: JsonChannel;
  let extraLease = 200;

  const keyOfNode = (i: number) => `${PREFIX}/subnets/${cluster.topology.nodes[i - 1]!.podSubnet.toString().replace('/', '-')}`;
  const msgs = (i: number) => cluster.nodes[i - 1]!.messages();
  /** When node i's renewal is due (ms since the epoch), from its own log line. */
  const renewalDue = (i: number): number => {
    for (const line of cluster.nodes[i - 1]!.logLines) {
      try {
        const j = JSON.parse(line) as { msg?: string; time?: string; renewInMs?: number };
        if (j.msg?.startsWith('Waiting for') && j.time && j.renewInMs !== undefined) return Date.parse(j.time) + j.renewInMs;
      } catch {
        /* not JSON */
      }
    }
    throw new Error(`node ${i} logged no renewal schedule`);
  };

  before(async () => {
    lab = new Lab();
    cluster = await FlannelCluster.create(lab, { nodes: 3, config: { Network: '10.9.0.0/16', SubnetMax: '10.9.150.0', Backend: { Type: 'udp' } } });
    // Node 3 reaches etcd through a proxy that can lose a reply.
    const ns3 = cluster.topology.nodes[2]!.ns;
    const child = lab.spawn(ns3, process.execPath, [PROXY_SCRIPT, `127.0.0.1:${ETCD_PORT}`, `${ETCD_HOST}:${ETCD_PORT}`]);
    proxy = new JsonChannel(child, 'etcd-reply-proxy');
    await proxy.wait((m) => m['event'] === 'ready', 10_000, 'the proxy');
    const renewSoon = '-subnet-lease-renew-margin=1439';
    cluster.startNode(1, [renewSoon]);
    cluster.startNode(2, [renewSoon]);
    cluster.startNode(3, [renewSoon, `-etcd-endpoints=http://127.0.0.1:${ETCD_PORT}`]);
    for (const i of [1, 2, 3]) await cluster.waitSubnet(i);
    for (const i of [1, 2, 3]) await cluster.attachPod(i);
    await allPodsPing(lab, cluster, [1, 2, 3]);
  });
  after(async () => {
    await lab?.cleanup();
  });

  /** Pings pod1 -> pod2 and pod3 -> pod1 at 10 Hz while `during` runs; then checks nothing was lost. */
  async function survives(t: TestContext, seconds: number, during: () => Promise<void>): Promise<void> {
    const [p1, p2, p3] = [1, 2, 3].map((i) => cluster.topology.nodes[i - 1]!.pod);
    const pings: Array<Promise<PingSeries>> = [pingSeries(lab, p1!.ns, p2!.address, seconds * 10), pingSeries(lab, p3!.ns, p1!.address, seconds * 10)];
    const subnets = [1, 2, 3].map((i) => cluster.nodes[i - 1]!.subnetEnv()?.get('FLANNEL_SUBNET'));
    await during();
    for (const [k, s] of (await Promise.all(pings)).entries()) {
      t.diagnostic(`pings ${k === 0 ? 'pod1->pod2' : 'pod3->pod1'}: ${s.received}/${s.sent} answered, longest gap ${s.longestGapMs} ms`);
      assert.ok(s.received >= s.sent - 3, `pings answered: ${s.received}/${s.sent}`);
      assert.ok(s.longestGapMs <= 300, `longest gap ${s.longestGapMs} ms`);
    }
    for (const i of [1, 2, 3]) {
      assert.ok(cluster.nodes[i - 1]!.running, `node ${i} is running:\n${msgs(i).slice(-8).join('\n')}`);
      assert.equal(cluster.nodes[i - 1]!.subnetEnv()?.get('FLANNEL_SUBNET'), subnets[i - 1], `node ${i} kept its subnet`);
      const bad = msgs(i).filter((m) => /LEASE LOST|Subnet removed: 10\.9\.([0-9]|[1-9][0-9]|1[0-4][0-9])\./.test(m));
      assert.deepEqual(bad, [], `node ${i} lost nothing:\n${msgs(i).slice(-15).join('\n')}`);
    }
  }

  /** A lease written now reaches every node; returns how long that took (ms). */
  async function propagates(what: string): Promise<number> {
    const subnet = `10.9.${extraLease++}.0/24`;
    const start = Date.now();
    await cluster.etcdctl('put', `${PREFIX}/subnets/${subnet.replace('/', '-')}`, udpValue(`192.168.100.${extraLease}`));
    for (const i of [1, 2, 3]) {
      await eventually(() => msgs(i), (m) => m.some((x) => x.startsWith(`Subnet added: ${subnet}`)), 20_000, `node ${i} routes ${subnet} (${what})`);
    }
    return Date.now() - start;
  }

  test('etcd killed and restarted on its data', { timeout: 60_000 }, async (t) => {
    await survives(t, 8, async () => {
      await cluster.etcd.kill();
      await new Promise((r) => setTimeout(r, 3000));
      await cluster.etcd.launch();
      t.diagnostic(`a lease written after the restart reached every node in ${await propagates('after the restart')} ms`);
    });
  });

  test('etcd paused (SIGSTOP) for 8 s, past the 5 s request deadline, then resumed', { timeout: 60_000 }, async (t) => {
    await survives(t, 12, async () => {
      cluster.etcd.pause();
      await new Promise((r) => setTimeout(r, 8000));
      cluster.etcd.resume();
      t.diagnostic(`a lease written after the pause reached every node in ${await propagates('after the pause')} ms`);
    });
  });

  test('node 2 cut off from etcd for 30 s while a lease is added, the revision it watches is compacted and its renewal falls due; node 3 loses a renewal reply', { timeout: 150_000 }, async (t) => {
    const ns2 = cluster.topology.nodes[1]!.ns;
    const due2 = renewalDue(2);
    const due3 = renewalDue(3);
    // The 30 s gap must cover node 2's renewal.
    const waitMs = due2 - 15_000 - Date.now();
    t.diagnostic(`node 2's renewal is due in ${Math.round((due2 - Date.now()) / 1000)} s, node 3's in ${Math.round((due3 - Date.now()) / 1000)} s`);
    if (waitMs > 0) await new Promise((r) => setTimeout(r, waitMs));
    await proxy.request({ cmd: 'arm', minDataBytes: 120, holdMs: 8000 });
    // Both directions: with only OUTPUT dropped, etcd's pushes would still arrive.
    const rules = [
      ['OUTPUT', '-d', ETCD_HOST, '-p', 'tcp', '--dport', String(ETCD_PORT), '-j', 'DROP'],
      ['INPUT', '-s', ETCD_HOST, '-p', 'tcp', '--sport', String(ETCD_PORT), '-j', 'DROP'],
    ];
    let restoredAt = 0;
    const added = `10.9.${extraLease}.0/24`;
    await survives(t, 45, async () => {
      for (const r of rules) await lab.exec(ns2, 'iptables', ['-I', ...r]);
      try {
        await new Promise((r) => setTimeout(r, 3000));
        await cluster.etcdctl('put', `${PREFIX}/subnets/${added.replace('/', '-')}`, udpValue(`192.168.100.${extraLease++}`));
        for (const i of [1, 3]) await eventually(() => msgs(i), (m) => m.some((x) => x.startsWith(`Subnet added: ${added}`)), 20_000, `node ${i} routes ${added}`);
        // One more write, then a compaction at the newest revision: the lease's put is gone from
        // etcd's history, so node 2's watch cannot resume from before it and must re-list.
        await cluster.etcdctl('put', `${PREFIX}/chaos-marker`, 'x');
        const rev = /"revision":(\d+)/.exec(await cluster.etcdctl('get', `${PREFIX}/config`, '-w', 'json'))![1]!;
        await cluster.etcdctl('compact', rev);
        await new Promise((r) => setTimeout(r, Math.max(0, due2 + 15_000 - Date.now())));
        assert.ok(!msgs(2).some((m) => m.startsWith(`Subnet added: ${added}`)), 'node 2 was cut off: it did not hear of the lease');
      } finally {
        for (const r of rules) await lab.exec(ns2, 'iptables', ['-D', ...r]);
        restoredAt = Date.now();
      }
      await eventually(() => msgs(2), (m) => m.some((x) => x.startsWith(`Subnet added: ${added}`)), 20_000, 'node 2 resynced after the compaction');
      t.diagnostic(`node 2 routed the lease added while it was cut off ${Date.now() - restoredAt} ms after the path was back`);
    });
    assert.ok(msgs(2).some((m) => /resyncing leases/.test(m)), 'node 2 re-listed after the compaction');
    assert.ok(msgs(2).some((m) => /Error renewing lease/.test(m)), `node 2 tried to renew while cut off:\n${msgs(2).slice(-20).join('\n')}`);
    await eventually(() => msgs(2).filter((m) => /^Lease renewed/.test(m)).length, (n) => n >= 1, 20_000, "node 2's renewal once etcd is reachable");
    const leaseId = BigInt(/"lease":(\d+)/.exec(await cluster.etcdctl('get', keyOfNode(2), '-w', 'json'))![1]!).toString(16); // etcdctl takes lease ids in hex
    const ttl2 = Number(/"ttl":(\d+)/.exec(await cluster.etcdctl('lease', 'timetolive', leaseId, '-w', 'json'))?.[1] ?? 0);
    assert.ok(ttl2 > 86_000, `node 2's key has a fresh 24 h lease (TTL ${ttl2})`);
    // Node 3: its renewal's reply was held past the deadline; the write had landed.
    const status = await proxy.request<{ held: number }>({ cmd: 'status' });
    assert.equal(status.held, 1, `the proxy held a reply; node 3:\n${msgs(3).slice(-15).join('\n')}\nproxy: ${JSON.stringify(proxy.received)}`);
    assert.ok(cluster.nodes[2]!.running, 'node 3 did not exit');
    assert.ok(!msgs(3).some((m) => /LEASE LOST|has been revoked/.test(m)), msgs(3).slice(-10).join('\n'));
    assert.ok((await cluster.etcdctl('get', keyOfNode(3), '--print-value-only')).includes('PublicIP'), "node 3's key is there");
  });

  test('a wiped etcd: every node re-creates its lease with the same subnet; no route is withdrawn', { timeout: 90_000 }, async (t) => {
    const keys = [1, 2, 3].map(keyOfNode);
    await survives(t, 15, async () => {
      const start = Date.now();
      await cluster.etcd.wipe();
      await cluster.etcdctl('put', `${PREFIX}/config`, JSON.stringify({ Network: '10.9.0.0/16', SubnetMax: '10.9.150.0', Backend: { Type: 'udp' } }));
      await eventually(async () => (await cluster.etcdctl('get', `${PREFIX}/subnets`, '--prefix', '--keys-only')).split('\n').filter((k) => k.trim() !== ''), (k) => keys.every((x) => k.includes(x)), 30_000, 'every node re-created its key');
      t.diagnostic(`every node re-created its lease ${Date.now() - start} ms after the wipe began`);
    });
    for (const i of [1, 2, 3]) assert.ok(msgs(i).some((m) => /re-created the own lease/.test(m)), `node ${i} says so`);
    t.diagnostic(`a lease written after the wipe reached every node in ${await propagates('after the wipe')} ms`);
  });
});
