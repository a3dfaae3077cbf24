/**
 * flanneld in etcd mode end to end, as an operator runs it: etcd plus nodes
 * and pods in namespaces, each node running the real `bin/flanneld
 * -etcd-endpoints=... -iface=...` with the udp backend.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { Capture } from '../lab/capture';
import { httpGet, type NotifyListener, notifyListener } from '../lab/daemon-probes';
import { FlannelCluster } from '../lab/flannel-cluster';
import { Lab } from '../lab/netns';
import { ipv4Fields, ipv4HeaderChecksumValid } from '../lab/packets';
import { ping } from '../lab/topology';
import { sendUdpDatagram, tcpTransfer } from '../lab/traffic';
import { eventually } from './helpers/eventually';
import { ROOT_SUITE } from './helpers/root';

const HEALTHZ_PORT = 10254;

describe('flanneld in etcd mode: three nodes, udp backend', ROOT_SUITE, () => {
  let lab: Lab;
  let cluster: FlannelCluster;
  let notify: NotifyListener;

  const pods = () => [1, 2, 3].map((i) => cluster.topology.nodes[i - 1]!.pod);

  before(async () => {
    lab = new Lab();
    cluster = await FlannelCluster.create(lab, { nodes: 4, config: { Network: '10.5.0.0/16', SubnetMax: '10.5.199.0', Backend: { Type: 'udp' } } });
    notify = await notifyListener(lab);
    cluster.startNode(1, [`-healthz-port=${HEALTHZ_PORT}`], { NOTIFY_SOCKET: notify.path });
    // Node 2 runs with every offload off (test/mixed-cluster.e2e.test.ts has a real upstream-style peer).
    cluster.startNode(2, [], { FLANNEL_TS_OFFLOAD: 'off' });
    cluster.startNode(3);
    for (const i of [1, 2, 3]) await cluster.waitSubnet(i);
    for (const i of [1, 2, 3]) await cluster.attachPod(i);
  });
  after(async () => {
    await lab?.cleanup();
  });

  test('offloads: node 1 logs every one on with a worker per core, node 2 (FLANNEL_TS_OFFLOAD=off) every one off', async () => {
    const m1 = cluster.nodes[0]!.messages();
    assert.ok(m1.some((m) => m === 'udp datapath offloads: tso on, uso on, gso on, udpGro on, gro on'), m1.join('\n'));
    assert.ok(m1.some((m) => /^udp datapath started with \d+ worker\(s\)$/.test(m)));
    const m2 = cluster.nodes[1]!.messages();
    assert.ok(m2.some((m) => m === 'udp datapath offloads: tso off, uso off, gso off, udpGro off, gro off'), m2.join('\n'));
  });

  test('every pod pings every other pod', async () => {
    for (const a of pods()) {
      for (const b of pods()) {
        if (a === b) continue;
        assert.ok(await eventually(() => ping(lab, a.ns, b.address, 1), (ok) => ok, 10_000, `${a.address} -> ${b.address}`));
      }
    }
  });

  test('10 MB over TCP both ways between every pair, bytes checked', { timeout: 120_000 }, async () => {
    const p = pods();
    let port = 6000;
    for (const [a, b] of [[p[0]!, p[1]!], [p[1]!, p[2]!], [p[2]!, p[0]!]] as const) {
      const [ab, ba] = await Promise.all([
        tcpTransfer(lab, a.ns, b.ns, b.address, port++, 10_000_000),
        tcpTransfer(lab, b.ns, a.ns, a.address, port++, 10_000_000),
      ]);
      for (const r of [ab, ba]) {
        assert.equal(r.bytes, 10_000_000);
        assert.equal(r.receivedSha256, r.sentSha256);
      }
    }
  });

  test('subnet.env, the own lease in etcd (with the capability object where it applies) and flannel0 are exactly upstream\'s', async () => {
    for (const i of [1, 2, 3]) {
      const node = cluster.nodes[i - 1]!;
      const subnet = cluster.topology.nodes[i - 1]!.podSubnet;
      const file = fs.readFileSync(node.subnetFile, 'utf8');
      assert.equal(file, `FLANNEL_NETWORK=10.5.0.0/16\nFLANNEL_SUBNET=${subnet.firstHost().toString()}\nFLANNEL_MTU=1472\nFLANNEL_IPMASQ=false\n`);
      assert.equal(fs.statSync(node.subnetFile).mode & 0o777, 0o644);
      const key = `/coreos.com/network/subnets/${subnet.toString().replace('/', '-')}`;
      const value = (await cluster.etcdctl('get', key, '--print-value-only')).trim();
      // Node 2 runs without offloads, so it takes no partial checksums and
      // its lease is upstream's to the byte; the others add their capability.
      const backendData = i === 2 ? '' : ',"BackendData":{"Capabilities":["partial-checksums"]}';
      assert.equal(value, `{"PublicIP":"192.168.100.${i}","PublicIPv6":null${backendData}}`);
      const ns = node.spec.ns;
      const link = (await lab.exec(ns, 'ip', ['-o', 'link', 'show', 'flannel0'])).stdout;
      assert.match(link, / mtu 1472 /);
      const addrs = (await lab.exec(ns, 'ip', ['-o', '-4', 'addr', 'show', 'dev', 'flannel0'])).stdout.trim().split('\n');
      assert.deepEqual(addrs.map((l) => /inet (\S+)/.exec(l)![1]), [`${subnet.toString().split('/')[0]}/32`]);
      assert.match((await lab.exec(ns, 'ip', ['-d', 'route', 'show', '10.5.0.0/16'])).stdout, /^unicast 10\.5\.0\.0\/16 dev flannel0 proto 157 scope global/m);
    }
  });

  test('/healthz and /readyz answer as upstream; READY=1 reached $NOTIFY_SOCKET', async () => {
    const ns = cluster.nodes[0]!.spec.ns;
    const get = (p: string) => httpGet(lab, ns, HEALTHZ_PORT, p);
    assert.deepEqual(await get('/healthz'), { status: 200, body: 'flanneld is running', contentType: 'text/plain; charset=utf-8' });
    assert.deepEqual(await get('/readyz'), { status: 200, body: 'flanneld is ready', contentType: 'text/plain; charset=utf-8' });
    assert.equal((await get('/nope')).status, 404);
    assert.match(notify.received(), /^READY=1$/m);
  });

  test('a lease written by hand in upstream\'s bytes gets a route within a second; datagrams to it are bare IPv4 to 8285 from a source port of 8286-8301', async () => {
    const sw = cluster.topology.switchNs!;
    const br = lab.name('br');
    await lab.exec(sw, 'ip', ['addr', 'add', '192.168.100.50/24', 'dev', br]);
    const cap = await Capture.start(lab, sw, br, 'udp and dst port 8285 and dst host 192.168.100.50', 1);
    await cluster.etcdctl('put', '/coreos.com/network/subnets/10.5.200.0-24', '{"PublicIP":"192.168.100.50","PublicIPv6":null}');
    await new Promise((r) => setTimeout(r, 1000));
    const pod1 = pods()[0]!;
    await sendUdpDatagram(lab, pod1.ns, pod1.address, '10.5.200.2', 7000, Buffer.from('to the upstream node'));
    const [outer] = await cap.packets(3000);
    assert.ok(outer, 'a datagram left for the upstream node');
    const o = ipv4Fields(outer);
    assert.equal(o.src, '192.168.100.1');
    const udp = outer.subarray(o.headerLen);
    const sourcePort = udp.readUInt16BE(0);
    assert.ok(sourcePort >= 8286 && sourcePort <= 8301, `source port ${sourcePort}: one of the 16 per-flow ports above Port`);
    assert.equal(udp.readUInt16BE(2), 8285);
    const inner = udp.subarray(8, udp.readUInt16BE(4));
    const f = ipv4Fields(inner);
    assert.equal(f.version, 4);
    assert.equal(f.totalLen, inner.length, 'exactly one inner packet');
    assert.equal(f.src, pod1.address);
    assert.equal(f.dst, '10.5.200.2');
    assert.ok(ipv4HeaderChecksumValid(inner));
    assert.equal(inner.subarray(28).toString(), 'to the upstream node');
  });

  test('a garbage key under subnets changes nothing', async () => {
    await cluster.etcdctl('put', '/coreos.com/network/subnets/garbage', 'x');
    await cluster.etcdctl('put', '/coreos.com/network/subnets/10.5.201.0-24', 'not json');
    await eventually(() => cluster.nodes[0]!.messages(), (m) => m.some((x) => /Ignoring bad subnet node: .*10\.5\.201\.0-24/.test(x)), 5000, 'the skip log');
    for (const a of pods()) for (const b of pods()) if (a !== b) assert.ok(await ping(lab, a.ns, b.address, 1), `${a.address} -> ${b.address}`);
    for (const i of [1, 2, 3]) {
      assert.ok(!cluster.nodes[i - 1]!.messages().some((m) => /Subnet removed/.test(m)), `node ${i} withdrew nothing`);
    }
  });

  test('a restarted node keeps its subnet and traffic returns', { timeout: 60_000 }, async () => {
    const before = cluster.topology.nodes[1]!.podSubnet.toString();
    assert.equal(await cluster.nodes[1]!.stop('SIGTERM'), 0);
    assert.doesNotMatch((await lab.exec(cluster.nodes[1]!.spec.ns, 'ip', ['-o', 'link'])).stdout, /flannel0/, 'the TUN went away with the process');
    cluster.startNode(2);
    assert.equal((await cluster.waitSubnet(2)).toString(), before);
    const [p1, p2] = pods();
    assert.ok(await eventually(() => ping(lab, p1!.ns, p2!.address, 1), (ok) => ok, 10_000, 'traffic after the restart'));
  });

  test('etcd stopped for 10 s: traffic never stops, /healthz stays 200 while /readyz says 503; a node added afterwards becomes reachable', { timeout: 90_000 }, async () => {
    const [p1, p2] = pods();
    const pinger = lab.exec(p1!.ns, 'ping', ['-c', '150', '-i', '0.1', '-W', '1', '-q', p2!.address], { timeoutMs: 40_000 }).then(
      (r) => r.stdout,
      (e: Error & { stdout?: string }) => e.stdout ?? e.message,
    );
    await new Promise((r) => setTimeout(r, 1500));
    await cluster.etcd.stop();
    // Losing etcd affects readiness, never liveness (node 1 has the health listener).
    const ns1 = cluster.nodes[0]!.spec.ns;
    const health = (p: string) => httpGet(lab, ns1, HEALTHZ_PORT, p);
    await eventually(() => health('/readyz'), (r) => r.status === 503, 8000, '/readyz 503 while etcd is down');
    assert.deepEqual(await health('/healthz'), { status: 200, body: 'flanneld is running', contentType: 'text/plain; charset=utf-8' });
    await new Promise((r) => setTimeout(r, 10_000));
    await cluster.etcd.launch();
    await eventually(() => health('/readyz'), (r) => r.status === 200, 20_000, '/readyz 200 once etcd is back');
    const out = await pinger;
    const m = /(\d+) packets transmitted, (\d+) received/.exec(out);
    assert.ok(m, out);
    assert.equal(Number(m[2]), Number(m[1]), `every ping answered during the etcd outage: ${m[0]}`);
    for (const i of [1, 2, 3]) assert.ok(cluster.nodes[i - 1]!.running, `node ${i} survived the outage`);
    cluster.startNode(4);
    await cluster.waitSubnet(4, 30_000);
    const p4 = await cluster.attachPod(4);
    for (const p of pods()) {
      assert.ok(await eventually(() => ping(lab, p.ns, p4.address, 1), (ok) => ok, 20_000, `${p.address} -> new node's pod`));
    }
  });

  test('the own key deleted by hand: that daemon exits 0 and says why', { timeout: 30_000 }, async () => {
    const node = cluster.nodes[2]!;
    const key = `/coreos.com/network/subnets/${cluster.topology.nodes[2]!.podSubnet.toString().replace('/', '-')}`;
    await cluster.etcdctl('del', key);
    assert.equal(await node.waitExit(15_000), 0);
    const msgs = node.messages();
    assert.ok(msgs.some((m) => /LEASE LOST/.test(m) && /deleted/.test(m)), msgs.slice(-5).join('\n'));
    assert.ok(msgs.some((m) => /Exiting cleanly/.test(m)));
  });
});
