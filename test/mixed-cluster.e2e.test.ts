/**
 * A mixed cluster in etcd mode: flanneld (flannel-ts, every offload on) on
 * nodes 1 and 3, and on node 2 the upstream-style forwarder
 * (lab/upstream-udp: one packet per syscall, no offloads, no checks) with its
 * lease written by hand in upstream's bytes and its routes set from the
 * leases, as upstream's watch does. Whatever flannel-ts sends an upstream
 * peer must be one complete inner packet with valid checksums, because
 * upstream writes it to its TUN as it is: the pods' kernels count every bad
 * checksum they drop (nstat), and the wire is checked packet by packet.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Capture } from '../lab/capture';
import { FlannelCluster, runCleanup } from '../lab/flannel-cluster';
import { Lab } from '../lab/netns';
import { ipv4Fields, ipv4HeaderChecksumValid, l4ChecksumValid } from '../lab/packets';
import { attachPod, ping } from '../lab/topology';
import { kernelChecksumErrors, sendUdpDatagram, tcpTransfer, udpDatagrams } from '../lab/traffic';
import { UpstreamUdpNode } from '../lab/upstream-udp-node';
import { Ipv4Net } from '../src/util/ipv4';
import { eventually } from './helpers/eventually';
import { ROOT_SUITE } from './helpers/root';

const NETWORK = Ipv4Net.parse('10.5.0.0/16');
const UPSTREAM_SUBNET = Ipv4Net.parse('10.5.2.0/24');

// The flannel-ts nodes run the user-space datapath, then the kernel fast path
// beside it ("Datapath": "ebpf"): toward the upstream node, which does not
// unwrap in the kernel, the user-space path sends in both cases.
for (const datapath of ['user', 'ebpf'] as const) {
describe(`mixed cluster: flannel-ts nodes beside an upstream-style udp node${datapath === 'ebpf' ? ', with the kernel fast path' : ''}`, ROOT_SUITE, () => {
  let lab: Lab;
  let cluster: FlannelCluster;
  let upstream: UpstreamUdpNode;

  const pod = (i: number) => cluster.topology.nodes[i - 1]!.pod;

  before(async () => {
    lab = new Lab();
    cluster = await FlannelCluster.create(lab, { nodes: 3, config: { Network: NETWORK.toString(), Backend: { Type: 'udp', Datapath: datapath } } });
    const n2 = cluster.topology.nodes[1]!;
    // Node 2's lease, exactly as upstream's udp backend writes it.
    await cluster.etcdctl('put', `${cluster.prefix}/subnets/10.5.2.0-24`, `{"PublicIP":"${n2.underlayAddress}","PublicIPv6":null}`);
    upstream = await UpstreamUdpNode.start(lab, { ns: n2.ns, bindAddress: n2.underlayAddress, subnet: UPSTREAM_SUBNET, network: NETWORK, mtu: 1472 });
    n2.podSubnet = UPSTREAM_SUBNET;
    n2.pod.address = '10.5.2.2';
    n2.pod.gateway = '10.5.2.1';
    await attachPod(lab, n2, 1472);
    for (const i of [1, 3]) cluster.startNode(i);
    for (const i of [1, 3]) await cluster.waitSubnet(i);
    for (const i of [1, 3]) {
      await cluster.attachPod(i);
      await upstream.setRoute(cluster.topology.nodes[i - 1]!.podSubnet, cluster.topology.nodes[i - 1]!.underlayAddress);
    }
  });
  after(async () => {
    await lab?.cleanup();
  });

  test('every pod pings every other pod', async () => {
    for (const a of [1, 2, 3]) {
      for (const b of [1, 2, 3]) {
        if (a === b) continue;
        assert.ok(await eventually(() => ping(lab, pod(a).ns, pod(b).address, 1), (ok) => ok, 10_000, `pod ${a} -> pod ${b}`));
      }
    }
  });

  test('TCP both ways between flannel-ts and upstream, bytes checked, no checksum error anywhere', { timeout: 120_000 }, async () => {
    const before = await Promise.all([1, 2, 3].map((i) => kernelChecksumErrors(lab, pod(i).ns)));
    const size = 30_000_000;
    const runs = await Promise.all([
      tcpTransfer(lab, pod(1).ns, pod(2).ns, pod(2).address, 5001, size),
      tcpTransfer(lab, pod(2).ns, pod(1).ns, pod(1).address, 5002, size),
      tcpTransfer(lab, pod(3).ns, pod(2).ns, pod(2).address, 5003, size),
    ]);
    for (const r of runs) {
      assert.equal(r.bytes, size);
      assert.equal(r.receivedSha256, r.sentSha256);
    }
    const after = await Promise.all([1, 2, 3].map((i) => kernelChecksumErrors(lab, pod(i).ns)));
    assert.deepEqual(after, before, 'no pod dropped a packet for a bad checksum');
  });

  test('UDP of many sizes (fragments too) and a USO send both ways, every datagram intact', { timeout: 60_000 }, async () => {
    const sizes = [8, 100, 1000, 1444, 3000, 9000];
    const cases = [[1, 2, sizes, false, 6001], [2, 1, sizes, false, 6002], [1, 2, [1200, 1444], true, 6003]] as const;
    for (const [from, to, these, gso, port] of cases) {
      const r = await udpDatagrams(lab, pod(from), pod(to), port, 120, [...these], gso);
      assert.equal(r.bad, 0, `pod ${from} -> pod ${to}: no datagram altered`);
      assert.equal(r.distinct, r.sent, `pod ${from} -> pod ${to}: every datagram arrived (${JSON.stringify(r)})`);
    }
  });

  test('the upstream node\'s flannel0 sees one complete packet with valid checksums per datagram', { timeout: 60_000 }, async () => {
    const n2 = cluster.topology.nodes[1]!;
    const cap = await Capture.start(lab, n2.ns, upstream.tun, `src net ${cluster.topology.nodes[0]!.podSubnet.toString()}`, 3000);
    // One after the other: beside a TCP transfer the upstream-style forwarder
    // (one packet per syscall) overflows its socket, and a USO burst can be
    // lost whole. What is checked here is the shape of what arrives.
    const udp = await udpDatagrams(lab, pod(1), pod(2), 6101, 64, [1200], true);
    assert.ok(udp.received > 0, `some of the USO datagrams arrived (${JSON.stringify(udp)})`);
    await tcpTransfer(lab, pod(1).ns, pod(2).ns, pod(2).address, 5101, 4_000_000);
    const packets = await cap.packets(5000);
    assert.ok(packets.length > 1000, `captured ${packets.length} packets`);
    for (const p of packets) {
      const f = ipv4Fields(p);
      const where = `${f.src} -> ${f.dst} proto ${f.protocol} (${f.totalLen} bytes)`;
      assert.equal(f.totalLen, p.length, `${where}: one whole packet`);
      assert.ok(f.totalLen <= 1472, `${where}: within the MTU`);
      assert.ok(ipv4HeaderChecksumValid(p), `${where}: IP header checksum`);
      assert.notEqual(l4ChecksumValid(p), false, `${where}: TCP/UDP checksum`);
    }
  });

  test('a route the upstream node lacks gets upstream\'s ICMP net unreachable, written to its flannel0', async () => {
    // Upstream writes it from flannel0's own address; without accept_local the
    // kernel drops it as a martian, so only the TUN sees it.
    const n2 = cluster.topology.nodes[1]!;
    await upstream.deleteRoute(cluster.topology.nodes[2]!.podSubnet);
    try {
      const cap = await Capture.start(lab, n2.ns, upstream.tun, 'icmp', 1);
      // UDP: upstream sends no ICMP error about an ICMP packet.
      await sendUdpDatagram(lab, pod(2).ns, pod(2).address, pod(3).address, 7000, Buffer.from('no route'));
      const [icmp] = await cap.packets(3000);
      assert.ok(icmp, 'an ICMP error was written to flannel0');
      const f = ipv4Fields(icmp);
      assert.deepEqual([f.src, f.dst, f.ttl, icmp[20], icmp[21]], ['10.5.2.0', pod(2).address, 8, 3, 0]);
      assert.equal(ipv4Fields(icmp.subarray(28)).dst, pod(3).address, 'it quotes the packet');
    } finally {
      await upstream.setRoute(cluster.topology.nodes[2]!.podSubnet, cluster.topology.nodes[2]!.underlayAddress);
    }
  });

  test('migrating node 2 from upstream to flannel-ts and back: the same subnet, the same pod addresses, traffic each time, no bad checksum', { timeout: 120_000 }, async () => {
    const n2 = cluster.topology.nodes[1]!;
    const key = `${cluster.prefix}/subnets/10.5.2.0-24`;
    const addedOn = (i: number) => cluster.nodes[i - 1]!.messages().filter((m) => m.startsWith(`Subnet added: 10.5.2.0/24 via ${n2.underlayAddress}`)).length;
    const pingsEveryWay = async (what: string) => {
      for (const [a, b] of [[1, 2], [2, 1], [3, 2], [2, 3]] as const) {
        assert.ok(await eventually(() => ping(lab, pod(a).ns, pod(b).address, 1), (ok) => ok, 10_000, `${what}: pod ${a} -> pod ${b}`));
      }
    };
    const tcpWithoutChecksumErrors = async (port: number) => {
      const before = await Promise.all([1, 2, 3].map((i) => kernelChecksumErrors(lab, pod(i).ns)));
      const runs = await Promise.all([
        tcpTransfer(lab, pod(1).ns, pod(2).ns, pod(2).address, port, 10_000_000),
        tcpTransfer(lab, pod(2).ns, pod(3).ns, pod(3).address, port + 1, 10_000_000),
      ]);
      for (const r of runs) assert.equal(r.receivedSha256, r.sentSha256);
      assert.deepEqual(await Promise.all([1, 2, 3].map((i) => kernelChecksumErrors(lab, pod(i).ns))), before, 'no pod dropped a packet for a bad checksum');
    };

    // Upstream -> flannel-ts: stop upstream's datapath (flannel0 goes with it),
    // start flanneld against the same etcd. It finds the lease with its
    // PublicIP and keeps the subnet, so the pod keeps its address.
    await upstream.stop();
    assert.ok(!(await lab.exec(n2.ns, 'ip', ['link', 'show'])).stdout.includes(upstream.tun), 'flannel0 left with upstream');
    const seen = [addedOn(1), addedOn(3)];
    cluster.startNode(2);
    assert.equal((await cluster.waitSubnet(2)).toString(), UPSTREAM_SUBNET.toString(), 'the same subnet');
    // The user-space datapath takes partial checksums; beside the fast path the node unwraps in the kernel instead.
    const takes = datapath === 'ebpf' ? /"Capabilities":\["kernel-decap"\]/ : /"Capabilities":\["partial-checksums"\]/;
    assert.match(await cluster.etcdctl('get', '--print-value-only', key), takes, 'the lease now says what flannel-ts takes');
    await eventually(async () => [addedOn(1), addedOn(3)], (n) => n[0]! > seen[0]! && n[1]! > seen[1]!, 10_000, 'the peers saw the changed lease');
    await pingsEveryWay('on flannel-ts');
    await tcpWithoutChecksumErrors(5201);

    // And back: stop flanneld, `flanneld cleanup` removes its rules (flannel0
    // went with the process), and upstream takes the node over with the
    // same subnet, rewriting the lease in its own bytes.
    assert.equal(await cluster.nodes[1]!.stop('SIGTERM', 5000), 0);
    const c = await runCleanup(n2.ns);
    assert.equal(c.code, 0, c.stderr);
    assert.match(c.stdout, /^removed rule iptables -t filter -A FORWARD -m comment --comment "flanneld forward" -j FLANNEL-FWD$/m);
    assert.ok(!(await lab.exec(n2.ns, 'ip', ['link', 'show'])).stdout.includes('flannel0'), 'no flannel0 left for upstream to trip over');
    const seenBack = [addedOn(1), addedOn(3)];
    await cluster.etcdctl('put', key, `{"PublicIP":"${n2.underlayAddress}","PublicIPv6":null}`);
    await eventually(async () => [addedOn(1), addedOn(3)], (n) => n[0]! > seenBack[0]! && n[1]! > seenBack[1]!, 10_000, 'the peers saw upstream\'s lease');
    upstream = await UpstreamUdpNode.start(lab, { ns: n2.ns, bindAddress: n2.underlayAddress, subnet: UPSTREAM_SUBNET, network: NETWORK, mtu: 1472 });
    for (const i of [1, 3]) await upstream.setRoute(cluster.topology.nodes[i - 1]!.podSubnet, cluster.topology.nodes[i - 1]!.underlayAddress);
    await pingsEveryWay('back on upstream');
    await tcpWithoutChecksumErrors(5211);
  });
});
}
