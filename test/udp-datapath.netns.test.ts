/**
 * The udp datapath with real TUN devices in namespaces: two nodes on a veth
 * underlay, one pod each, our datapath in each node with static routes
 * (lab/bin/static-udp-node). Wire conformance is checked against packets
 * built and verified here, independently of the datapath's code.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { after, before, describe, test } from 'node:test';
import type { CounterName } from '../src/forwarder/native-datapath';
import { parseIpv4 } from '../src/util/ipv4';
import { Capture } from '../lab/capture';
import { Lab } from '../lab/netns';
import { buildUdpPacket, checksum, ipv4Fields, ipv4HeaderChecksumValid, withTtl, withUdpChecksum } from '../lab/packets';
import { type StaticUdpNode, startStaticUdpNodes } from '../lab/static-udp-nodes';
import { buildCluster, type Cluster, ping } from '../lab/topology';
import { sendUdpDatagram, tcpTransfer } from '../lab/traffic';
import { eventually } from './helpers/eventually';
import { ROOT_SUITE } from './helpers/root';

const PORT = 8285;

async function counter(node: StaticUdpNode, name: CounterName): Promise<number> {
  return (await node.stats()).counters[name];
}

/** Waits until counter `name` of `node` reaches at least `atLeast`. */
function counterReaches(node: StaticUdpNode, name: CounterName, atLeast: number): Promise<number> {
  return eventually(() => counter(node, name), (v) => v >= atLeast, 3000, `${name} >= ${atLeast}`);
}

/** Inner packets forwarded in a direction: by the user-space path and, beside it, the kernel fast path. */
function forwarded(c: Record<string, number>, direction: 'egress' | 'ingress'): number {
  return (direction === 'egress' ? c['egress_sent_packets']! : c['ingress_written_packets']!) + (c[`ebpf_${direction}_packets`] ?? 0);
}

// Every test runs with the user-space datapath alone, then with the kernel
// fast path beside it (Datapath ebpf): what it does not forward, it hands on.
for (const ebpf of [false, true]) {
describe(`udp datapath: two nodes, two pods${ebpf ? ', with the kernel fast path' : ''}`, ROOT_SUITE, () => {
  let lab: Lab;
  let cluster: Cluster;
  let nodes: StaticUdpNode[];

  before(async () => {
    lab = new Lab();
    cluster = await buildCluster(lab, { nodes: 2 });
    nodes = await startStaticUdpNodes(lab, cluster, { ebpf });
  });
  after(async () => {
    await lab?.cleanup();
  });

  test('flannel0 has the /32 address, MTU underlay-28, UP and the Network route', async () => {
    const n1 = cluster.nodes[0]!;
    const link = (await lab.exec(n1.ns, 'ip', ['-o', 'link', 'show', 'flannel0'])).stdout;
    assert.match(link, /mtu 1472 /);
    assert.match(link, /[<,]UP[,>]/);
    const addrs = (await lab.exec(n1.ns, 'ip', ['-o', '-4', 'addr', 'show', 'dev', 'flannel0'])).stdout;
    assert.match(addrs, /inet 10\.5\.1\.0\/32 /);
    assert.equal(addrs.trim().split('\n').length, 1);
    const routes = (await lab.exec(n1.ns, 'ip', ['-d', 'route', 'show', '10.5.0.0/16'])).stdout;
    assert.match(routes, /^unicast 10\.5\.0\.0\/16 dev flannel0 proto 157 scope global $/m);
  });

  test('pods ping each other through flannel0', async () => {
    const [a, b] = cluster.nodes as [Cluster['nodes'][0], Cluster['nodes'][0]];
    assert.ok(await ping(lab, a.pod.ns, b.pod.address), 'pod1 -> pod2');
    assert.ok(await ping(lab, b.pod.ns, a.pod.address), 'pod2 -> pod1');
  });

  test('100 MB over TCP each way, bytes checked', { timeout: 180_000 }, async () => {
    const [a, b] = cluster.nodes as [Cluster['nodes'][0], Cluster['nodes'][0]];
    const size = 100 * 1000 * 1000;
    const [ab, ba] = await Promise.all([
      tcpTransfer(lab, a.pod.ns, b.pod.ns, b.pod.address, 5001, size),
      tcpTransfer(lab, b.pod.ns, a.pod.ns, a.pod.address, 5002, size),
    ]);
    for (const [dir, r] of [['pod1->pod2', ab], ['pod2->pod1', ba]] as const) {
      assert.equal(r.bytes, size, `${dir}: bytes received`);
      assert.equal(r.receivedSha256, r.sentSha256, `${dir}: content`);
    }
    const c = (await nodes[0]!.stats()).counters as Record<string, number>;
    assert.ok(forwarded(c, 'egress') > 60_000, `node1 sent ${forwarded(c, 'egress')} datagrams`);
    assert.ok(forwarded(c, 'ingress') > 60_000);
    if (ebpf) assert.ok(c['ebpf_egress_packets']! > 60_000 && c['ebpf_ingress_packets']! > 60_000, 'the bulk went through the fast path');
  });

  test('a hand-built datagram from a known peer arrives in the pod with TTL - 2 and nothing else changed', async () => {
    const [n1, n2] = cluster.nodes as [Cluster['nodes'][0], Cluster['nodes'][0]];
    const inner = buildUdpPacket({
      src: n2.pod.address,
      dst: n1.pod.address,
      srcPort: 40000,
      dstPort: 9999,
      ttl: 64,
      id: 0x1357,
      payload: Buffer.from('flannel-ts wire conformance, peer -> pod'),
    });
    const cap = await Capture.start(lab, n1.pod.ns, 'eth0', 'udp and dst port 9999', 1);
    // From node2's underlay address (a known peer), as an upstream flanneld would send it.
    await sendUdpDatagram(lab, n2.ns, n2.underlayAddress, n1.underlayAddress, PORT, inner);
    const [got] = await cap.packets();
    assert.ok(got, 'the packet reached pod1');
    // One decrement by node1's datapath, one by node1's kernel routing flannel0 -> pod veth.
    // Node 2 takes partial checksums, so node 1 leaves the UDP checksum to the
    // kernel (the pod's capture sees the pseudo-header sum): completed here.
    assert.deepEqual(withUdpChecksum(got), withTtl(inner, 62));
    assert.ok(ipv4HeaderChecksumValid(got));
  });

  test('what a node sends is exactly the inner packet with TTL - 1 and a valid header checksum', async () => {
    const [n1, n2] = cluster.nodes as [Cluster['nodes'][0], Cluster['nodes'][0]];
    // Inner UDP destination port sits at outer UDP offset 8 + 20 + 2.
    const onWire = await Capture.start(lab, n1.ns, n1.underlayIf, `udp and dst port ${PORT} and udp[30:2] = 9998`, 1);
    const inPod = await Capture.start(lab, n1.pod.ns, 'eth0', 'udp and dst port 9998', 1);
    await sendUdpDatagram(lab, n1.pod.ns, n1.pod.address, n2.pod.address, 9998, Buffer.from('pod -> wire'));
    const [sentByPod] = await inPod.packets();
    const [outer] = await onWire.packets();
    const original = sentByPod && withUdpChecksum(sentByPod);
    assert.ok(original && outer, 'captured both the pod packet and the datagram');
    const o = ipv4Fields(outer);
    assert.equal(o.src, n1.underlayAddress);
    assert.equal(o.dst, n2.underlayAddress);
    assert.equal(o.protocol, 17);
    const udp = outer.subarray(o.headerLen);
    const sourcePort = udp.readUInt16BE(0);
    assert.ok(sourcePort > PORT && sourcePort <= PORT + 16, `sent from a per-flow source port (${sourcePort})`);
    assert.equal(udp.readUInt16BE(2), PORT, 'sent to the peer\'s port');
    const payload = udp.subarray(8, udp.readUInt16BE(4));
    // TTL - 1 in node1's kernel (pod veth -> flannel0) and - 1 in the datapath.
    const expected = withTtl(original, ipv4Fields(original).ttl - 2);
    // Node 2 takes partial checksums: the inner UDP checksum is left to it.
    assert.deepEqual(withUdpChecksum(payload), expected, 'the UDP payload is the bare inner packet');
    assert.ok(ipv4HeaderChecksumValid(payload));
  });

  test('no route: ICMP net-unreachable with upstream\'s bytes reaches the sender', async () => {
    const n1 = cluster.nodes[0]!;
    const before = await counter(nodes[0]!, 'icmp_net_unreachable_sent');
    const icmpCap = await Capture.start(lab, n1.pod.ns, 'eth0', 'icmp', 1);
    const origCap = await Capture.start(lab, n1.pod.ns, 'eth0', 'udp and dst port 7777', 1);
    await sendUdpDatagram(lab, n1.pod.ns, n1.pod.address, '10.5.99.2', 7777, Buffer.from('nobody owns 10.5.99.0/24'));
    const [sentByPod] = await origCap.packets();
    const [icmp] = await icmpCap.packets();
    const original = sentByPod && withUdpChecksum(sentByPod);
    assert.ok(original && icmp, 'captured the probe and the ICMP error');
    // The offender as the datapath read it: TTL - 1 from node1's kernel.
    const offender = withTtl(original, ipv4Fields(original).ttl - 1);
    const quote = offender.subarray(0, 20 + 8);
    const want = Buffer.alloc(20 + 8 + quote.length);
    want[0] = 0x45;
    want.writeUInt16BE(want.length, 2);
    want[8] = 8 - 1; // upstream's TTL 8, minus node1's kernel forwarding it to the pod
    want[9] = 1;
    want.writeUInt32BE(parseIpv4('10.5.1.0'), 12); // the TUN address
    want.writeUInt32BE(parseIpv4(n1.pod.address), 16);
    want.writeUInt16BE(checksum(want, 0, 20), 10);
    want[20] = 3; // destination unreachable
    want[21] = 0; // net unreachable
    quote.copy(want, 28);
    want.writeUInt16BE(checksum(want, 20), 22);
    assert.deepEqual(icmp, want);
    assert.equal(await counterReaches(nodes[0]!, 'icmp_net_unreachable_sent', before + 1), before + 1);
    assert.ok((await counter(nodes[0]!, 'egress_drop_no_route')) >= 1);
  });

  test('TTL running out on egress: dropped, counted, ICMP time-exceeded to the sender', async () => {
    const n1 = cluster.nodes[0]!;
    const n2 = cluster.nodes[1]!;
    const before = await nodes[0]!.stats();
    const icmpCap = await Capture.start(lab, n1.pod.ns, 'eth0', 'icmp', 1);
    // TTL 2 leaves the pod, node1's kernel makes it 1, the datapath must not forward it.
    await sendUdpDatagram(lab, n1.pod.ns, n1.pod.address, n2.pod.address, 7778, Buffer.from('short-lived'), 2);
    const [icmp] = await icmpCap.packets();
    assert.ok(icmp, 'an ICMP error arrived');
    const f = ipv4Fields(icmp);
    assert.equal(f.src, '10.5.1.0');
    assert.equal(f.dst, n1.pod.address);
    assert.equal(icmp[20], 11, 'type time exceeded');
    assert.equal(icmp[21], 0, 'code ttl exceeded in transit');
    assert.ok(ipv4HeaderChecksumValid(icmp));
    assert.equal(checksum(icmp, 20), 0, 'ICMP checksum');
    const quoted = icmp.subarray(28);
    assert.equal(ipv4Fields(quoted).ttl, 1);
    assert.equal(ipv4Fields(quoted).dst, n2.pod.address);
    await counterReaches(nodes[0]!, 'egress_drop_ttl_expired', before.counters.egress_drop_ttl_expired + 1);
    await counterReaches(nodes[0]!, 'icmp_time_exceeded_sent', before.counters.icmp_time_exceeded_sent + 1);
  });

  test('TTL running out on ingress: dropped, counted, time-exceeded travels back to the remote pod', async () => {
    const [n1, n2] = cluster.nodes as [Cluster['nodes'][0], Cluster['nodes'][0]];
    const before = await nodes[0]!.stats();
    const icmpCap = await Capture.start(lab, n2.pod.ns, 'eth0', 'icmp', 1);
    const inner = buildUdpPacket({ src: n2.pod.address, dst: n1.pod.address, srcPort: 40001, dstPort: 9996, ttl: 1, payload: Buffer.from('ttl 1') });
    await sendUdpDatagram(lab, n2.ns, n2.underlayAddress, n1.underlayAddress, PORT, inner);
    const [icmp] = await icmpCap.packets();
    assert.ok(icmp, 'the time-exceeded reached pod2 through the overlay');
    assert.equal(icmp[20], 11);
    assert.equal(ipv4Fields(icmp).src, '10.5.1.0');
    assert.deepEqual(icmp.subarray(28, 28 + 28), inner.subarray(0, 28), 'quotes the packet as received');
    await counterReaches(nodes[0]!, 'ingress_drop_ttl_expired', before.counters.ingress_drop_ttl_expired + 1);
  });

  test('a datagram from an unknown source is dropped, counted and reported once; SourceCheck off accepts it', async () => {
    const [n1, n2] = cluster.nodes as [Cluster['nodes'][0], Cluster['nodes'][0]];
    const stranger = '192.168.100.77';
    await lab.exec(n2.ns, 'ip', ['addr', 'add', `${stranger}/24`, 'dev', n2.underlayIf]);
    const inner = buildUdpPacket({ src: n2.pod.address, dst: n1.pod.address, srcPort: 40002, dstPort: 9997, payload: Buffer.from('spoofed?') });
    const before = await counter(nodes[0]!, 'ingress_drop_unknown_source');

    const cap = await Capture.start(lab, n1.pod.ns, 'eth0', 'udp and dst port 9997', 1);
    await sendUdpDatagram(lab, n2.ns, stranger, n1.underlayAddress, PORT, inner);
    await counterReaches(nodes[0]!, 'ingress_drop_unknown_source', before + 1);
    assert.deepEqual(await nodes[0]!.drainRefusals(), [{ sender: stranger, reason: 'ingress_drop_unknown_source' }]);
    await sendUdpDatagram(lab, n2.ns, stranger, n1.underlayAddress, PORT, inner);
    await counterReaches(nodes[0]!, 'ingress_drop_unknown_source', before + 2);
    assert.deepEqual(await nodes[0]!.drainRefusals(), [], 'each address is reported once');
    assert.equal((await cap.packets(500)).length, 0, 'nothing from the stranger reached the pod');

    await nodes[0]!.setIngressPolicy({ sourceCheck: false });
    try {
      const cap2 = await Capture.start(lab, n1.pod.ns, 'eth0', 'udp and dst port 9997', 1);
      await sendUdpDatagram(lab, n2.ns, stranger, n1.underlayAddress, PORT, inner);
      assert.equal((await cap2.packets()).length, 1, 'with SourceCheck off the datagram is forwarded');
    } finally {
      await nodes[0]!.setIngressPolicy({ sourceCheck: true });
    }
  });

  test('malformed datagrams are dropped and counted while forwarding goes on', async () => {
    const [n1, n2] = cluster.nodes as [Cluster['nodes'][0], Cluster['nodes'][0]];
    const before = (await nodes[0]!.stats()).counters;
    const good = buildUdpPacket({ src: n2.pod.address, dst: n1.pod.address, srcPort: 1, dstPort: 2, payload: Buffer.alloc(16, 7) });
    const ipv6 = Buffer.alloc(48);
    ipv6[0] = 0x60;
    const badIhl = Buffer.from(good);
    badIhl[0] = 0x44;
    const longer = Buffer.from(good);
    longer.writeUInt16BE(good.length + 100, 2);
    const send = (b: Buffer) => sendUdpDatagram(lab, n2.ns, n2.underlayAddress, n1.underlayAddress, PORT, b);
    await send(good.subarray(0, 12));
    await send(ipv6);
    await send(badIhl);
    await send(longer);
    await counterReaches(nodes[0]!, 'ingress_drop_too_short', before.ingress_drop_too_short + 1);
    await counterReaches(nodes[0]!, 'ingress_drop_not_ipv4', before.ingress_drop_not_ipv4 + 1);
    await counterReaches(nodes[0]!, 'ingress_drop_bad_header', before.ingress_drop_bad_header + 2);
    const after = (await nodes[0]!.stats()).counters;
    assert.equal(after.ingress_written_packets, before.ingress_written_packets, 'none of them was written to the TUN');
    assert.ok(await ping(lab, n2.pod.ns, n1.pod.address), 'forwarding goes on');
  });
});
}

describe('udp datapath: datagrams larger than the receive buffer', ROOT_SUITE, () => {
  let lab: Lab;
  let cluster: Cluster;
  let nodes: StaticUdpNode[];

  before(async () => {
    lab = new Lab();
    cluster = await buildCluster(lab, { nodes: 2 });
    nodes = await startStaticUdpNodes(lab, cluster, { bufferSize: 2048 });
  });
  after(async () => {
    await lab?.cleanup();
  });

  test('are dropped and counted, never truncated and forwarded', async () => {
    const [n1, n2] = cluster.nodes as [Cluster['nodes'][0], Cluster['nodes'][0]];
    const big = buildUdpPacket({ src: n2.pod.address, dst: n1.pod.address, srcPort: 3, dstPort: 9995, payload: Buffer.alloc(3000, 1) });
    const cap = await Capture.start(lab, n1.pod.ns, 'eth0', 'udp and dst port 9995', 1);
    await sendUdpDatagram(lab, n2.ns, n2.underlayAddress, n1.underlayAddress, PORT, big);
    await counterReaches(nodes[0]!, 'ingress_drop_oversize', 1);
    assert.equal((await cap.packets(500)).length, 0);
    assert.ok(await ping(lab, n2.pod.ns, n1.pod.address), 'normal traffic still flows');
  });
});

describe('udp datapath: one loop per worker, busy polling on one node', ROOT_SUITE, () => {
  let lab: Lab;
  let cluster: Cluster;
  let nodes: StaticUdpNode[];

  before(async () => {
    lab = new Lab();
    cluster = await buildCluster(lab, { nodes: 2 });
    // Node 1 polls for up to 200 µs after work ("BusyPollMicroseconds"); node 2 sleeps as soon as it is idle.
    nodes = await startStaticUdpNodes(lab, cluster, (_n, i) => (i === 0 ? { busyPollMicroseconds: 200, workers: 2 } : { workers: 2 }));
  });
  after(async () => {
    await lab?.cleanup();
  });

  test('each worker is one thread serving its flannel0 queue and its socket', async () => {
    const pid = nodes[0]!.pid;
    const names = fs.readdirSync(`/proc/${pid}/task`).map((t) => fs.readFileSync(`/proc/${pid}/task/${t}/comm`, 'utf8').trim());
    assert.deepEqual(names.filter((n) => n.startsWith('flannel-')).sort(), ['flannel-wrk00', 'flannel-wrk01']);
  });

  test('TCP both ways, bytes checked; the busy-polling node found work without sleeping, the other never polled busily', { timeout: 120_000 }, async () => {
    const [a, b] = cluster.nodes as [Cluster['nodes'][0], Cluster['nodes'][0]];
    const size = 20 * 1000 * 1000;
    const runs = await Promise.all([
      tcpTransfer(lab, a.pod.ns, b.pod.ns, b.pod.address, 5001, size),
      tcpTransfer(lab, b.pod.ns, a.pod.ns, a.pod.address, 5002, size),
    ]);
    for (const r of runs) assert.equal(r.receivedSha256, r.sentSha256);
    assert.ok(await ping(lab, a.pod.ns, b.pod.address), 'and a lone ping');
    const [c1, c2] = [(await nodes[0]!.stats()).counters, (await nodes[1]!.stats()).counters];
    assert.ok(c1.worker_busy_poll_wakeups > 0, `node 1 busy-poll wakeups: ${c1.worker_busy_poll_wakeups}`);
    assert.ok(c1.worker_sleep_wakeups > 0, 'and it still slept when idle');
    assert.equal(c2.worker_busy_poll_wakeups, 0, 'node 2 never busy polled');
    assert.ok(c2.worker_sleep_wakeups > 0);
  });
});
