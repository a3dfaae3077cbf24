/**
 * The udp datapath's offloads with real TUN devices in namespaces (TSO, USO, GSO, GRO):
 *  - interop: node 1 uses every offload and two workers; node 2 uses none
 *    and one worker, which on the wire is how an upstream flanneld behaves
 *    (one bare inner packet per datagram, no offload knowledge);
 *  - the wire, captured and checked here independently of the datapath:
 *    one whole inner IPv4 packet per datagram, valid checksums, none larger
 *    than the path MTU;
 *  - fallback: each offload forced to fail, traffic still flows and the
 *    stats say it is off;
 *  - the kernel fast path's wire, and a fast-path node beside a user-space
 *    one. The user-space offload and partial-checksum cases run in user mode
 *    only: beside the fast path GRO is off and partial checksums are not
 *    advertised (docs/datapath.md), so those paths do not run there.
 */
import * as path from 'node:path';
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { OffloadReport, OffloadStatus } from '../src/forwarder/offload';
import { Capture } from '../lab/capture';
import { Lab } from '../lab/netns';
import { ipv4Fields, ipv4HeaderChecksumValid, l4ChecksumValid } from '../lab/packets';
import { type StaticNodeExtra, type StaticUdpNode, startStaticUdpNodes } from '../lab/static-udp-nodes';
import { buildCluster, type Cluster, type NodeSpec, ping } from '../lab/topology';
import { kernelChecksumErrors, tcpTransfer, udpDatagrams } from '../lab/traffic';
import { ROOT_SUITE } from './helpers/root';

const PORT = 8285;
const UNDERLAY_MTU = 1500;
const ETHTOOL_FEATURES = path.resolve(__dirname, '..', '..', 'lab', 'bin', 'ethtool-features.py');
/** Sizes of UDP payloads: tiny, typical, the largest unfragmented (1472 - 28), and one the pod must fragment. */
const UDP_SIZES = [8, 100, 999, 1444, 3000];

async function setFeatures(lab: Lab, node: NodeSpec, ...changes: string[]): Promise<void> {
  await lab.exec(node.ns, 'python3', [ETHTOOL_FEATURES, node.underlayIf, ...changes]);
}

function statuses(o: OffloadReport | undefined): Record<string, OffloadStatus> {
  assert.ok(o, 'the stats report the offload state');
  return { tso: o.tso.status, uso: o.uso.status, gso: o.gso.status, udpGro: o.udpGro.status, gro: o.gro.status };
}

async function twoNodes(lab: Lab, extra: (node: NodeSpec, index: number) => StaticNodeExtra) {
  const cluster = await buildCluster(lab, { nodes: 2, underlayMtu: UNDERLAY_MTU });
  const nodes = await startStaticUdpNodes(lab, cluster, extra);
  return { cluster, nodes, a: cluster.nodes[0]!, b: cluster.nodes[1]! };
}

async function tcpBothWays(lab: Lab, a: NodeSpec, b: NodeSpec, size: number, portBase: number): Promise<void> {
  const [ab, ba] = await Promise.all([
    tcpTransfer(lab, a.pod.ns, b.pod.ns, b.pod.address, portBase, size),
    tcpTransfer(lab, b.pod.ns, a.pod.ns, a.pod.address, portBase + 1, size),
  ]);
  for (const [dir, r] of [['pod1->pod2', ab], ['pod2->pod1', ba]] as const) {
    assert.equal(r.bytes, size, `${dir}: bytes received`);
    assert.equal(r.receivedSha256, r.sentSha256, `${dir}: content`);
  }
}

async function udpBothWays(lab: Lab, a: NodeSpec, b: NodeSpec, gso: boolean, port: number): Promise<void> {
  for (const [from, to] of [[a, b], [b, a]] as const) {
    const sizes = gso ? [1200] : UDP_SIZES;
    const r = await udpDatagrams(lab, from.pod, to.pod, port, 320, sizes, gso);
    const dir = `${from.pod.address} -> ${to.pod.address}${gso ? ' (UDP_SEGMENT)' : ''}`;
    assert.equal(r.bad, 0, `${dir}: no datagram altered`);
    assert.equal(r.distinct, r.sent, `${dir}: every datagram arrived (${JSON.stringify(r)})`);
    assert.equal(r.received, r.sent, `${dir}: and none twice`);
  }
}

describe('udp offloads: a node with every offload beside one with none (as upstream)', ROOT_SUITE, () => {
  let lab: Lab;
  let cluster: Cluster;
  let nodes: StaticUdpNode[];
  let a: NodeSpec;
  let b: NodeSpec;

  before(async () => {
    lab = new Lab();
    ({ cluster, nodes, a, b } = await twoNodes(lab, (_n, i) => (i === 0 ? { workers: 2 } : { workers: 1, offloadEnv: 'off' })));
  });
  after(async () => {
    await lab?.cleanup();
  });

  test('node 1 probed every offload on; node 2 opened flannel0 as upstream does', async () => {
    const [s1, s2] = [await nodes[0]!.stats(), await nodes[1]!.stats()];
    assert.equal(s1.workers, 2);
    assert.deepEqual(statuses(s1.offload), { tso: 'on', uso: 'on', gso: 'on', udpGro: 'on', gro: 'on' });
    assert.equal(s1.offload!.vnetHdr, true);
    assert.equal(s2.workers, 1);
    assert.deepEqual(statuses(s2.offload), { tso: 'off', uso: 'off', gso: 'off', udpGro: 'off', gro: 'off' });
    assert.equal(s2.offload!.vnetHdr, false);
    // Two TUN queues on node 1 (IFF_MULTI_QUEUE), one on node 2.
    const queues = async (n: NodeSpec) => (await lab.exec(n.ns, 'ls', ['/sys/class/net/flannel0/queues'])).stdout.split(/\s+/).filter((q) => q.startsWith('tx-')).length;
    assert.equal(await queues(a), 2);
    assert.equal(await queues(b), 1);
  });

  test('pods ping each other, small and MTU-sized', async () => {
    assert.ok(await ping(lab, a.pod.ns, b.pod.address), 'pod1 -> pod2');
    assert.ok(await ping(lab, b.pod.ns, a.pod.address), 'pod2 -> pod1');
    assert.ok(await ping(lab, a.pod.ns, b.pod.address, 3, ['-s', '1444', '-M', 'do']), 'pod1 -> pod2, 1472-byte packets, DF');
  });

  test('100 MB over TCP each way, bytes checked; node 1 split TSO packets and coalesced what it received', { timeout: 180_000 }, async () => {
    const before1 = (await nodes[0]!.stats()).counters;
    await tcpBothWays(lab, a, b, 100 * 1000 * 1000, 5001);
    const c = (await nodes[0]!.stats()).counters;
    assert.ok(c.egress_read_gso_packets - before1.egress_read_gso_packets > 100, `TSO reads: ${c.egress_read_gso_packets}`);
    assert.ok(c.egress_split_segments > c.egress_read_gso_packets * 2, 'each TSO read became several wire packets');
    assert.ok(c.egress_gso_messages > 100, `UDP GSO sends: ${c.egress_gso_messages}`);
    assert.ok(c.ingress_coalesced_writes > 100, `coalesced TUN writes: ${c.ingress_coalesced_writes}`);
    assert.ok(c.ingress_coalesced_packets > c.ingress_coalesced_writes * 2);
    assert.equal(c.egress_drop_bad_offload, 0);
    const c2 = (await nodes[1]!.stats()).counters;
    assert.equal(c2.ingress_drop_bad_header + c2.ingress_drop_too_short + c2.ingress_drop_oversize, 0, 'node 2 read every datagram as one packet');
    assert.equal(c2.egress_gso_messages + c2.ingress_coalesced_writes + c2.egress_read_gso_packets, 0, 'node 2 used no offload');
  });

  test('UDP both ways: many sizes (fragmented ones too), and a pod\'s UDP_SEGMENT send (USO) arrives as its datagrams', { timeout: 60_000 }, async () => {
    await udpBothWays(lab, a, b, false, 6001);
    const c0 = (await nodes[0]!.stats()).counters;
    await udpBothWays(lab, a, b, true, 6002);
    const c1 = (await nodes[0]!.stats()).counters;
    assert.ok(c1.egress_read_gso_packets > c0.egress_read_gso_packets, 'node 1 read USO packets from flannel0');
    // Runs of equal-size datagrams from node 2 went into flannel0 as USO packets (VIRTIO_NET_HDR_GSO_UDP_L4),
    // and the pod's socket still received every datagram on its own (checked above).
    const writes = c1.ingress_coalesced_writes - c0.ingress_coalesced_writes;
    assert.ok(writes > 0 && c1.ingress_coalesced_packets - c0.ingress_coalesced_packets > writes, `node 1 coalesced UDP writes: ${writes}`);
  });

  test('the wire: one whole inner packet per datagram, valid checksums, none above the path MTU', { timeout: 120_000 }, async () => {
    // veth hands UDP GSO packets to the peer whole; a NIC would cut them.
    // Without tx-udp-segmentation the kernel cuts them before the capture
    // point, where a NIC would: what tcpdump sees is then the wire.
    await setFeatures(lab, a, 'tx-udp-segmentation=off');
    const cap = await Capture.start(lab, a.ns, a.underlayIf, `udp port ${PORT}`, 6000);
    await Promise.all([
      tcpBothWays(lab, a, b, 4 * 1000 * 1000, 5101),
      udpDatagrams(lab, a.pod, b.pod, 6101, 64, [1200], true),
    ]);
    const packets = await cap.packets(10_000);
    await setFeatures(lab, a, 'tx-udp-segmentation=on');
    assert.ok(packets.length > 1000, `captured ${packets.length} datagrams`);
    let fromA = 0;
    let tcpFromA = 0;
    for (const outer of packets) {
      const o = ipv4Fields(outer);
      assert.ok(o.totalLen <= UNDERLAY_MTU, `a ${o.totalLen}-byte datagram exceeds the path MTU`);
      const udpLen = outer.readUInt16BE(o.headerLen + 4);
      const inner = outer.subarray(o.headerLen + 8, o.headerLen + udpLen);
      const i = ipv4Fields(inner);
      const where = `datagram ${o.src} -> ${o.dst} (${udpLen} bytes), inner ${i.src} -> ${i.dst} proto ${i.protocol}`;
      assert.equal(i.version, 4, `${where}: an IPv4 packet`);
      assert.equal(i.totalLen, inner.length, `${where}: exactly one whole inner packet`);
      assert.ok(ipv4HeaderChecksumValid(inner), `${where}: inner header checksum`);
      assert.notEqual(l4ChecksumValid(inner), false, `${where}: inner TCP/UDP checksum`);
      if (o.src === a.underlayAddress) {
        fromA++;
        if (i.protocol === 6 && i.totalLen > 1000) tcpFromA++;
      }
    }
    assert.ok(fromA > 500 && tcpFromA > 500, `node 1's datagrams were captured (${fromA}, ${tcpFromA} full-size TCP)`);
  });
});

describe('the kernel fast path on the wire: two nodes with it, one peer without', ROOT_SUITE, () => {
  let lab: Lab;
  let nodes: StaticUdpNode[];
  let a: NodeSpec;
  let b: NodeSpec;

  before(async () => {
    lab = new Lab();
    ({ nodes, a, b } = await twoNodes(lab, () => ({ ebpf: true })));
  });
  after(async () => {
    await lab?.cleanup();
  });

  test('what leaves is one whole inner packet per datagram, none above the path MTU, from the per-flow ports; the kernel cut the GSO packets', { timeout: 120_000 }, async () => {
    // Without tunnel segmentation and checksum offload on the veth, the kernel
    // cuts the fast path's UDP-tunnel GSO packets and completes their
    // checksums before the capture point, as it would for a NIC without them.
    await setFeatures(lab, a, 'tx-udp_tnl-segmentation=off', 'tx-udp_tnl-csum-segmentation=off', 'tx-checksum-ip-generic=off');
    const before = (await nodes[0]!.stats()).counters as Record<string, number>;
    const cap = await Capture.start(lab, a.ns, a.underlayIf, `udp and src host ${a.underlayAddress} and dst port ${PORT}`, 1500);
    await Promise.all([tcpBothWays(lab, a, b, 4 * 1000 * 1000, 5201), udpDatagrams(lab, a.pod, b.pod, 6201, 64, [1200], true)]);
    const packets = await cap.packets(10_000);
    await setFeatures(lab, a, 'tx-udp_tnl-segmentation=on', 'tx-udp_tnl-csum-segmentation=on', 'tx-checksum-ip-generic=on');
    const after = (await nodes[0]!.stats()).counters as Record<string, number>;
    assert.ok(after['ebpf_egress_packets']! - before['ebpf_egress_packets']! > 1000, 'node 1 sent through the fast path');
    assert.ok(packets.length > 1000, `captured ${packets.length} datagrams`);
    let fullSize = 0;
    for (const outer of packets) {
      const o = ipv4Fields(outer);
      assert.ok(o.totalLen <= UNDERLAY_MTU, `a ${o.totalLen}-byte datagram exceeds the path MTU`);
      assert.ok(ipv4HeaderChecksumValid(outer));
      const sport = outer.readUInt16BE(o.headerLen);
      assert.ok(sport > PORT && sport <= PORT + 16, `from a per-flow source port (${sport})`);
      const udpLen = outer.readUInt16BE(o.headerLen + 4);
      assert.equal(udpLen, o.totalLen - o.headerLen);
      const inner = outer.subarray(o.headerLen + 8, o.headerLen + udpLen);
      const i = ipv4Fields(inner);
      const where = `datagram (${udpLen} bytes), inner ${i.src} -> ${i.dst} proto ${i.protocol}`;
      assert.equal(i.totalLen, inner.length, `${where}: exactly one whole inner packet`);
      assert.ok(ipv4HeaderChecksumValid(inner), `${where}: inner header checksum`);
      assert.notEqual(l4ChecksumValid(inner), false, `${where}: inner TCP/UDP checksum`);
      if (i.protocol === 6 && i.totalLen > 1000) fullSize++;
    }
    assert.ok(fullSize > 500, `${fullSize} full-size TCP segments`);
  });

  test('between a fast-path node and a user-space node with every offload, both ways, the user-space path carries it', { timeout: 120_000 }, async () => {
    const lab2 = new Lab();
    try {
      const two = await twoNodes(lab2, (_n, i) => (i === 0 ? { ebpf: true } : {}));
      await tcpBothWays(lab2, two.a, two.b, 20 * 1000 * 1000, 5301);
      await udpBothWays(lab2, two.a, two.b, false, 6301);
      const c = (await two.nodes[0]!.stats()).counters as Record<string, number>;
      assert.equal(c['ebpf_egress_packets'], 0, 'nothing sent by the fast path to a peer that does not unwrap in the kernel');
      assert.ok(c['ebpf_egress_pass_peer']! > 1000, 'it handed those packets on');
      // Its single datagrams come in through the fast path; its UDP GSO trains
      // (kept whole by the veth, where a NIC would cut them) go to the user-space path.
      assert.ok(c['ebpf_ingress_packets']! > 100, `what the peer sent came in through the fast path (${c['ebpf_ingress_packets']})`);
      assert.ok(c['ebpf_ingress_pass_train']! > 0, 'its UDP GSO trains went to the user-space path');
      assert.equal(c['ebpf_ingress_pass_malformed'], 0);
    } finally {
      await lab2.cleanup();
    }
  });
});

/** One node with a fault, the other with every offload: traffic must flow, the stats must say what is off. */
describe('udp offloads: fallback when the kernel refuses one', ROOT_SUITE, () => {
  const cases: Array<{ name: string; fault: string; expect: Record<string, OffloadStatus>; code: string; counter?: 'offload_gso_failures' | 'offload_gro_failures' }> = [
    { name: 'TUN TSO refused at start', fault: 'tun-tso', expect: { tso: 'refused' }, code: 'EINVAL' },
    { name: 'TUN USO refused at start', fault: 'tun-uso', expect: { uso: 'refused' }, code: 'EINVAL' },
    { name: 'UDP GRO refused at start', fault: 'udp-gro', expect: { udpGro: 'refused' }, code: 'ENOPROTOOPT' },
    // A refused GSO send sends that message unsegmented and backs off GSO for that peer only: GSO stays on.
    { name: 'UDP GSO send fails (injected EIO)', fault: 'udp-gso-send', expect: {}, code: '', counter: 'offload_gso_failures' },
    { name: 'coalesced TUN write fails (injected EINVAL)', fault: 'tun-gro-write', expect: { gro: 'failed' }, code: 'EINVAL', counter: 'offload_gro_failures' },
  ];

  for (const c of cases) {
    test(`${c.name}: traffic flows, the stats show what is off`, { timeout: 120_000 }, async () => {
      const lab = new Lab();
      try {
        const cluster = await buildCluster(lab, { nodes: 2, underlayMtu: UNDERLAY_MTU });
        const [a, b] = [cluster.nodes[0]!, cluster.nodes[1]!];
        const nodes = await startStaticUdpNodes(lab, cluster, (_n, i) => (i === 0 ? { testFaults: [c.fault] } : {}));
        assert.ok(await ping(lab, a.pod.ns, b.pod.address), 'ping');
        await tcpBothWays(lab, a, b, 20 * 1000 * 1000, 5001);
        await udpBothWays(lab, a, b, true, 6001);
        const s = await nodes[0]!.stats();
        const got = statuses(s.offload);
        const want = { tso: 'on', uso: 'on', gso: 'on', udpGro: 'on', gro: 'on', ...c.expect };
        assert.deepEqual(got, want);
        const key = Object.keys(c.expect)[0] as keyof OffloadReport | undefined;
        if (key !== undefined) assert.equal((s.offload![key] as { code?: string }).code, c.code);
        if (c.counter) assert.equal(s.counters[c.counter], 1, `${c.counter}: counted once`);
        // The partner node still uses everything.
        assert.deepEqual(statuses((await nodes[1]!.stats()).offload), { tso: 'on', uso: 'on', gso: 'on', udpGro: 'on', gro: 'on' });
      } finally {
        await lab.cleanup();
      }
    });
  }

  test('an underlay without checksum offload: traffic flows with UDP GSO (software checksums) or without it (EIO)', { timeout: 120_000 }, async () => {
    // Kernels before 6.x answered a UDP GSO send on such a device with EIO
    // (wireguard-go conn/errors_linux.go); this one checksums in software. Either way
    // nothing may be lost.
    const lab = new Lab();
    try {
      const cluster = await buildCluster(lab, { nodes: 2, underlayMtu: UNDERLAY_MTU });
      const [a, b] = [cluster.nodes[0]!, cluster.nodes[1]!];
      await setFeatures(lab, a, 'tx-checksum-ip-generic=off');
      const nodes = await startStaticUdpNodes(lab, cluster);
      await tcpBothWays(lab, a, b, 20 * 1000 * 1000, 5001);
      await udpBothWays(lab, a, b, true, 6001);
      const s = await nodes[0]!.stats();
      // An EIO backs off GSO toward that peer only; GSO itself stays on.
      assert.equal(s.offload!.gso.status, 'on');
    } finally {
      await lab.cleanup();
    }
  });
});

describe('udp offloads: one peer behind a smaller path MTU, and the most workers', ROOT_SUITE, () => {
  test('GSO sends to a peer whose path MTU is below the segment size fall back for that peer only', { timeout: 120_000 }, async () => {
    const lab = new Lab();
    try {
      const cluster = await buildCluster(lab, { nodes: 3 });
      const [a, b, c] = cluster.nodes as [NodeSpec, NodeSpec, NodeSpec];
      // A locked smaller MTU toward node 2 only: its 1500-byte datagrams
      // must be fragmented, which UDP GSO refuses to do.
      await lab.exec(a.ns, 'ip', ['route', 'add', `${b.underlayAddress}/32`, 'dev', a.underlayIf, 'mtu', 'lock', '1400']);
      const nodes = await startStaticUdpNodes(lab, cluster, (_n, i) => (i === 0 ? { workers: 1 } : {}));
      const r = await tcpTransfer(lab, a.pod.ns, b.pod.ns, b.pod.address, 5001, 20_000_000);
      assert.equal(r.receivedSha256, r.sentSha256, 'pod 1 -> pod 2 over the smaller path: intact');
      const s1 = await nodes[0]!.stats();
      assert.ok(s1.counters.offload_gso_failures >= 1, 'the refused GSO send was counted');
      assert.equal(s1.offload!.gso.status, 'on', 'GSO itself stays on');
      assert.equal(s1.counters.egress_drop_send_error, 0, 'nothing was dropped');
      // Node 3 still gets GSO sends.
      const gsoBefore = s1.counters.egress_gso_messages;
      const r3 = await tcpTransfer(lab, a.pod.ns, c.pod.ns, c.pod.address, 5002, 20_000_000);
      assert.equal(r3.receivedSha256, r3.sentSha256);
      const s2 = await nodes[0]!.stats();
      assert.ok(s2.counters.egress_gso_messages - gsoBefore > 100, `GSO sends to node 3: ${s2.counters.egress_gso_messages - gsoBefore}`);
    } finally {
      await lab.cleanup();
    }
  });

  test('64 workers (the documented maximum) start and forward', { timeout: 60_000 }, async () => {
    const lab = new Lab();
    try {
      const { nodes, a, b } = await twoNodes(lab, () => ({ workers: 64 }));
      assert.equal((await nodes[0]!.stats()).workers, 64);
      assert.ok(await ping(lab, a.pod.ns, b.pod.address), 'pod 1 -> pod 2');
      await tcpBothWays(lab, a, b, 5_000_000, 5001);
    } finally {
      await lab.cleanup();
    }
  });
});

describe('udp datapath: a read buffer smaller than what flannel0 hands over', ROOT_SUITE, () => {
  test('a TSO packet longer than the read buffer is dropped and counted, never read past the slot', { timeout: 60_000 }, async () => {
    const lab = new Lab();
    try {
      // The smallest buffer the datapath takes: a TSO super-packet of tens of KiB cannot fit.
      const { nodes, a, b } = await twoNodes(lab, (_n, i) => (i === 0 ? { bufferSize: 1600, workers: 1 } : {}));
      assert.ok(await ping(lab, a.pod.ns, b.pod.address), 'small packets still pass');
      const transfer = tcpTransfer(lab, a.pod.ns, b.pod.ns, b.pod.address, 5101, 2_000_000, 8000).catch(() => undefined);
      let oversize = 0;
      for (let k = 0; k < 80 && oversize === 0; k++) {
        await new Promise((r) => setTimeout(r, 100));
        oversize = (await nodes[0]!.stats()).counters.egress_drop_oversize;
      }
      await transfer;
      assert.ok(oversize > 0, 'reads longer than the buffer are counted as egress_drop_oversize');
      const s = await nodes[0]!.stats();
      assert.ok(s.running, 'the datapath kept running');
      assert.ok(await ping(lab, a.pod.ns, b.pod.address), 'and still forwards');
    } finally {
      await lab.cleanup();
    }
  });
});

describe('udp partial checksums between flannel-ts nodes', ROOT_SUITE, () => {
  test('both take them: TCP and UDP intact end to end, no checksum pass on either side, no checksum error in the pods', { timeout: 180_000 }, async () => {
    const lab = new Lab();
    try {
      const { nodes, a, b } = await twoNodes(lab, () => ({}));
      const errorsBefore = await Promise.all([a, b].map((n) => kernelChecksumErrors(lab, n.pod.ns)));
      const cap = await Capture.start(lab, a.ns, a.underlayIf, `udp and dst port ${PORT} and src host ${a.underlayAddress}`, 2000);
      await tcpBothWays(lab, a, b, 50 * 1000 * 1000, 5001);
      await udpBothWays(lab, a, b, false, 6001);
      await udpBothWays(lab, a, b, true, 6002);
      assert.deepEqual(await Promise.all([a, b].map((n) => kernelChecksumErrors(lab, n.pod.ns))), errorsBefore, 'no pod dropped a packet for a bad checksum');
      for (const [i, node] of nodes.entries()) {
        const c = (await node.stats()).counters;
        assert.ok(c.egress_partial_checksum_packets > 10_000, `node ${i + 1} sent ${c.egress_partial_checksum_packets} packets with partial checksums`);
        assert.ok(c.ingress_partial_checksum_packets > 10_000, `node ${i + 1} wrote ${c.ingress_partial_checksum_packets} marked NEEDS_CSUM`);
        assert.equal(c.egress_drop_bad_checksum + c.offload_partial_checksum_failures, 0);
      }
      // On the wire the inner TCP checksums are left to the receiver (the outer UDP checksum covers them).
      const tcp = (await cap.packets(1000)).map((outer) => outer.subarray(ipv4Fields(outer).headerLen + 8)).filter((inner) => inner[9] === 6 && inner.length > 1000);
      assert.ok(tcp.length > 100, `captured ${tcp.length} full-size TCP packets`);
      assert.ok(tcp.filter((inner) => l4ChecksumValid(inner) === false).length > tcp.length / 2, 'most inner TCP checksums are partial on the wire');
    } finally {
      await lab.cleanup();
    }
  });

  test('a TUN that refuses NEEDS_CSUM writes: checksums are completed in software, nothing is lost', { timeout: 120_000 }, async () => {
    const lab = new Lab();
    try {
      const { nodes, a, b } = await twoNodes(lab, (_n, i) => (i === 1 ? { testFaults: ['tun-partial-write'] } : {}));
      await tcpBothWays(lab, a, b, 20 * 1000 * 1000, 5001);
      await udpBothWays(lab, a, b, false, 6001);
      const c = (await nodes[1]!.stats()).counters;
      assert.equal(c.offload_partial_checksum_failures, 1, 'the refusal was counted once');
      assert.ok(c.ingress_partial_checksum_packets > 1000, 'node 2 still received partial checksums and completed them');
    } finally {
      await lab.cleanup();
    }
  });
});
