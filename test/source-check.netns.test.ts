/**
 * The udp datapath's ingress policy with real TUN devices in namespaces:
 * three nodes on a bridge, our datapath in each (lab/bin/static-udp-node).
 * A known peer (node 2) sends hand-built datagrams whose inner packets claim
 * another node's pods, node 1's own subnet or the outside as their source, or
 * head for somewhere other than node 1's subnet: node 1 drops them, counts
 * them by reason, reports each (sender, reason) once and answers none; in the
 * same run the traffic a cluster needs keeps flowing: pod to pod, host to pod,
 * ICMP errors of a peer's datapath, masqueraded and the peer host's own traffic.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { CounterName } from '../src/forwarder/native-datapath';
import { Capture } from '../lab/capture';
import { CommandError, Lab } from '../lab/netns';
import { buildUdpPacket, ipv4Fields } from '../lab/packets';
import { type StaticUdpNode, startStaticUdpNodes } from '../lab/static-udp-nodes';
import { buildCluster, type Cluster, type NodeSpec, ping } from '../lab/topology';
import { sendUdpBurst, sendUdpDatagram, tcpTransfer } from '../lab/traffic';
import { eventually } from './helpers/eventually';
import { ROOT_SUITE } from './helpers/root';

const PORT = 8285;
/** A host address of node 2 outside the Network and the underlay (a second address, an external client's). */
const OUTSIDE_ON_NODE2 = '172.16.9.1';

// With the user-space datapath alone, then with the kernel fast path beside
// it: the fast path takes only what passes the check outright and hands the
// rest on, so every refusal is the user-space path's, counted and reported.
for (const ebpf of [false, true]) {
describe(`udp ingress policy: three nodes, forged inner packets from a known peer${ebpf ? ', with the kernel fast path' : ''}`, ROOT_SUITE, () => {
  let lab: Lab;
  let cluster: Cluster;
  let nodes: StaticUdpNode[];
  let n1: NodeSpec;
  let n2: NodeSpec;
  let n3: NodeSpec;

  async function counters(i = 0): Promise<Record<CounterName, number>> {
    return (await nodes[i]!.stats()).counters;
  }
  /** Waits until node 1's `name` grew by at least `by` since `base`. */
  function grows(name: CounterName, base: Record<CounterName, number>, by: number): Promise<number> {
    return eventually(async () => (await counters())[name], (v) => v >= base[name] + by, 3000, `${name} += ${by}`);
  }
  /** A UDP packet from `src` to `dst` port `port` carrying `tag`. */
  const packet = (src: string, dst: string, port: number, tag: string) =>
    buildUdpPacket({ src, dst, srcPort: 40000, dstPort: port, payload: Buffer.from(tag.padEnd(24, '.')) });
  /** Sends `inner` to node 1's datapath as node 2 (its PublicIP, a known peer). */
  const fromPeer2 = (inner: Buffer) => sendUdpDatagram(lab, n2.ns, n2.underlayAddress, n1.underlayAddress, PORT, inner);

  before(async () => {
    lab = new Lab();
    cluster = await buildCluster(lab, { nodes: 3 });
    [n1, n2, n3] = cluster.nodes as [NodeSpec, NodeSpec, NodeSpec];
    nodes = await startStaticUdpNodes(lab, cluster, { ebpf });
    await lab.exec(n2.ns, 'ip', ['addr', 'add', `${OUTSIDE_ON_NODE2}/32`, 'dev', 'lo']);
  });
  after(async () => {
    await lab?.cleanup();
  });

  test('forged sources and foreign destinations are dropped, counted, reported once and never answered; pods keep talking', { timeout: 120_000 }, async () => {
    const base = await counters();
    await nodes[0]!.drainRefusals();
    const atPod1 = await Capture.start(lab, n1.pod.ns, 'eth0', 'udp and dst port 9900', 1);
    const atPod3 = await Capture.start(lab, n3.pod.ns, 'eth0', 'udp and dst port 9900', 1);
    const answers = await Capture.start(lab, n2.ns, n2.underlayIf, `icmp and src ${n1.underlayAddress}`, 1);
    // Real traffic between the same nodes while the forgeries arrive.
    const transfer = tcpTransfer(lab, n2.pod.ns, n1.pod.ns, n1.pod.address, 5001, 5_000_000);
    const forged = [
      packet(n3.pod.address, n1.pod.address, 9900, "node 3's pod"),
      packet('10.5.1.9', n1.pod.address, 9900, "node 1's own subnet"),
      packet('203.0.113.5', n1.pod.address, 9900, 'outside the Network'),
    ];
    const foreign = [
      packet(n2.pod.address, n3.pod.address, 9900, "node 3's pod"),
      packet(n2.pod.address, n1.underlayAddress, 9900, "node 1's underlay address"),
      packet(n2.pod.address, '198.51.100.1', 9900, 'outside the Network'),
    ];
    for (const p of [...forged, ...foreign]) await fromPeer2(p);
    await grows('ingress_drop_spoofed_source', base, 3);
    await grows('ingress_drop_foreign_destination', base, 3);
    const r = await transfer;
    assert.equal(r.receivedSha256, r.sentSha256, 'the TCP transfer between the same nodes is intact');

    const after = await counters();
    assert.equal(after.ingress_drop_spoofed_source - base.ingress_drop_spoofed_source, 3);
    assert.equal(after.ingress_drop_foreign_destination - base.ingress_drop_foreign_destination, 3);
    assert.equal(after.ingress_drop_unknown_source, base.ingress_drop_unknown_source, 'node 2 is a known peer');
    assert.equal((await atPod1.packets(300)).length, 0, 'nothing forged reached pod 1');
    assert.equal((await atPod3.packets(300)).length, 0, 'nothing was forwarded on to node 3');
    assert.equal((await answers.packets(300)).length, 0, 'no ICMP error answered a refusal');

    // One report per (sender, reason); which datagram is reported depends on
    // the worker that received it first.
    const refusals = await nodes[0]!.drainRefusals();
    assert.deepEqual(refusals.map((x) => `${x.sender} ${x.reason}`).sort(), [
      `${n2.underlayAddress} ingress_drop_foreign_destination`,
      `${n2.underlayAddress} ingress_drop_spoofed_source`,
    ]);
    const sent = new Set([...forged, ...foreign].map((p) => `${ipv4Fields(p).src} -> ${ipv4Fields(p).dst}`));
    for (const x of refusals) assert.ok(sent.has(`${x.innerSource} -> ${x.innerDestination}`), `reported ${JSON.stringify(x)}`);
    assert.ok(await ping(lab, n1.pod.ns, n2.pod.address), 'pod 1 -> pod 2 after the forgeries');
    assert.ok(await ping(lab, n3.pod.ns, n1.pod.address), 'pod 3 -> pod 1');
  });

  test(`the source check holds for every datagram of a ${ebpf ? 'UDP_SEGMENT burst' : 'message UDP GRO coalesced'}`, async () => {
    const base = await counters();
    // Alternating genuine and forged datagrams of one size in one UDP_SEGMENT send.
    const burst: Buffer[] = [];
    for (let i = 0; i < 8; i++) {
      burst.push(packet(i % 2 === 0 ? n2.pod.address : n3.pod.address, n1.pod.address, 9901, `burst ${i}`));
    }
    const atPod1 = await Capture.start(lab, n1.pod.ns, 'eth0', 'udp and dst port 9901', 8);
    await sendUdpBurst(lab, n2.ns, n2.underlayAddress, n1.underlayAddress, PORT, burst);
    await grows('ingress_drop_spoofed_source', base, 4);
    const delivered = await atPod1.packets(1000);
    // Only the genuine four reach the pod, in order: one packet each, or (the
    // user-space path coalescing a run of one flow into a USO write) fewer
    // packets that carry them back to back.
    assert.ok(delivered.every((p) => ipv4Fields(p).src === n2.pod.address), 'every packet from pod 2');
    const payloads = Buffer.concat(delivered.map((p) => p.subarray(ipv4Fields(p).headerLen + 8))).toString();
    assert.equal(payloads, [0, 2, 4, 6].map((i) => `burst ${i}`.padEnd(24, '.')).join(''));
    const c = await counters();
    // Beside the fast path UDP GRO is off: the genuine four go through it one by one.
    if (!ebpf) assert.ok(c.ingress_gro_messages > base.ingress_gro_messages, 'the burst arrived as one coalesced message');
    assert.equal(c.ingress_drop_spoofed_source - base.ingress_drop_spoofed_source, 4);
  });

  test('host to pod and a peer datapath\'s ICMP errors pass', async () => {
    assert.ok(await ping(lab, n2.ns, n1.pod.address), 'node 2 host (source: its flannel0 address) -> pod 1');
    // TTL 3: node 1 forwards (2), its datapath sends (1), node 2's datapath answers Time Exceeded.
    // ping exits 1 when no echo reply came: its output is what counts.
    const out = await lab.exec(n1.pod.ns, 'ping', ['-c', '1', '-t', '3', '-W', '2', n2.pod.address], { timeoutMs: 5000 }).then(
      (r) => r.stdout,
      (e: unknown) => (e instanceof CommandError ? e.stdout : Promise.reject(e)),
    );
    assert.match(out, /From 10\.5\.2\.0 .*Time to live exceeded/i, out);
  });

  test('the peer host\'s own and masqueraded traffic pass; an unmasqueraded outside source needs AllowExternalSources', { timeout: 60_000 }, async () => {
    const base = await counters();
    const sendFrom = async (bind: string, tag: string): Promise<Buffer[]> => {
      const cap = await Capture.start(lab, n1.pod.ns, 'eth0', 'udp and dst port 9902', 1);
      await sendUdpDatagram(lab, n2.ns, bind, n1.pod.address, 9902, Buffer.from(tag));
      return cap.packets(1000);
    };
    const own = await sendFrom(n2.underlayAddress, 'own');
    assert.equal(own.length, 1, "the peer host's PublicIP as source is accepted");
    assert.equal(ipv4Fields(own[0]!).src, n2.underlayAddress);

    assert.equal((await sendFrom(OUTSIDE_ON_NODE2, 'outside')).length, 0, 'an outside source is refused by default');
    await grows('ingress_drop_spoofed_source', base, 1);

    const masq = ['-t', 'nat', '-A', 'POSTROUTING', '-s', OUTSIDE_ON_NODE2, '-o', 'flannel0', '-j', 'MASQUERADE'];
    await lab.exec(n2.ns, 'iptables', masq);
    try {
      const masqueraded = await sendFrom(OUTSIDE_ON_NODE2, 'masqueraded');
      assert.equal(masqueraded.length, 1, 'masqueraded (as kube-proxy does), it passes');
      assert.equal(ipv4Fields(masqueraded[0]!).src, '10.5.2.0');
    } finally {
      await lab.exec(n2.ns, 'iptables', ['-t', 'nat', '-D', ...masq.slice(3)]);
    }

    await nodes[0]!.setIngressPolicy({ sourceCheck: true, allowExternalSources: true });
    try {
      const allowed = await sendFrom(OUTSIDE_ON_NODE2, 'allowed');
      assert.equal(allowed.length, 1, 'with AllowExternalSources the outside source passes');
      assert.equal(ipv4Fields(allowed[0]!).src, OUTSIDE_ON_NODE2);
      const spoofed = (await counters()).ingress_drop_spoofed_source;
      await fromPeer2(packet(n3.pod.address, n1.pod.address, 9903, "still node 3's pod"));
      await grows('ingress_drop_spoofed_source', { ...base, ingress_drop_spoofed_source: spoofed }, 1);
    } finally {
      await nodes[0]!.setIngressPolicy({ sourceCheck: true });
    }
  });

  test("sources no overlay packet may carry are refused even with AllowExternalSources: loopback, link-local, the node's own addresses", { timeout: 60_000 }, async () => {
    await nodes[0]!.setIngressPolicy({ sourceCheck: true, allowExternalSources: true });
    // An address added after start (cni0's, a second underlay address) counts as the node's own once the control side says so.
    const later = '172.31.0.1';
    await nodes[0]!.setLocalAddresses([n1.underlayAddress, later]);
    try {
      const base = await counters();
      await nodes[0]!.drainRefusals();
      const atPod1 = await Capture.start(lab, n1.pod.ns, 'eth0', 'udp and dst port 9906', 1);
      for (const src of ['127.0.0.1', '169.254.169.254', '0.0.0.9', n1.underlayAddress, later]) {
        await fromPeer2(packet(src, n1.pod.address, 9906, `from ${src}`));
      }
      await grows('ingress_drop_martian_source', base, 5);
      assert.equal((await atPod1.packets(300)).length, 0, 'none reached pod 1');
      const refusals = await nodes[0]!.drainRefusals();
      assert.deepEqual(refusals.map((x) => x.reason), ['ingress_drop_martian_source'], 'reported under their own reason, once per sender');
      // An ordinary outside source still passes with AllowExternalSources.
      const ok = await Capture.start(lab, n1.pod.ns, 'eth0', 'udp and dst port 9907', 1);
      await fromPeer2(packet('203.0.113.5', n1.pod.address, 9907, 'outside'));
      assert.equal((await ok.packets(1000)).length, 1);
    } finally {
      await nodes[0]!.setIngressPolicy({ sourceCheck: true });
      await nodes[0]!.setLocalAddresses([n1.underlayAddress]);
    }
  });

  test('SourceCheck off (NAT between nodes): any sender, inner sources of the Network but our subnet', async () => {
    const stranger = '192.168.100.77';
    await lab.exec(n2.ns, 'ip', ['addr', 'add', `${stranger}/24`, 'dev', n2.underlayIf]);
    await nodes[0]!.setIngressPolicy({ sourceCheck: false });
    try {
      const base = await counters();
      const cap = await Capture.start(lab, n1.pod.ns, 'eth0', 'udp and dst port 9904', 1);
      await sendUdpDatagram(lab, n2.ns, stranger, n1.underlayAddress, PORT, packet(n3.pod.address, n1.pod.address, 9904, 'via NAT'));
      assert.equal((await cap.packets(1000)).length, 1, "another node's pod as source is accepted from any sender");
      await sendUdpDatagram(lab, n2.ns, stranger, n1.underlayAddress, PORT, packet('10.5.1.9', n1.pod.address, 9905, 'ours'));
      await sendUdpDatagram(lab, n2.ns, stranger, n1.underlayAddress, PORT, packet('203.0.113.5', n1.pod.address, 9905, 'outside'));
      await sendUdpDatagram(lab, n2.ns, stranger, n1.underlayAddress, PORT, packet(n3.pod.address, n3.pod.address, 9905, 'foreign'));
      await grows('ingress_drop_spoofed_source', base, 2);
      await grows('ingress_drop_foreign_destination', base, 1);
    } finally {
      await nodes[0]!.setIngressPolicy({ sourceCheck: true });
      await lab.exec(n2.ns, 'ip', ['addr', 'del', `${stranger}/24`, 'dev', n2.underlayIf]);
    }
  });
});
}
