/**
 * Inner IPv6 over the udp backend, end to end (beyond upstream, whose udp
 * backend is IPv4-only): etcd and three flannel-ts nodes with EnableIPv6 and
 * dual-stack pods, the real bin/flanneld. Pods reach each other over IPv4
 * and IPv6 (full size too) and TCP over IPv6 arrives intact; flannel0 has
 * the v6 address and route (restored when deleted by hand); the lease advertises "ipv6" in its capability
 * object and its PublicIPv6 (nodes without a PublicIP reach it there), and
 * the datagrams between these nodes, which all have a PublicIP, travel over
 * the IPv4 underlay. A node in upstream's bytes (no
 * capability; node 4 runs the upstream-style forwarder) gets IPv4 and no IPv6
 * from us: its pod's v6 address is answered with ICMPv6 unreachable, no IPv6
 * packet reaches its flannel0, and inner IPv6 from it is refused; a capable peer's
 * forged IPv6 sources are refused as IPv4 ones are. Each refusal is counted.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { httpGet } from '../lab/daemon-probes';
import { FlannelCluster } from '../lab/flannel-cluster';
import { Lab } from '../lab/netns';
import { buildUdp6Packet } from '../lab/packets';
import { attachPod, ping, underlayAddress6 } from '../lab/topology';
import { UpstreamUdpNode } from '../lab/upstream-udp-node';
import { Ipv4Net } from '../src/util/ipv4';
import { Capture } from '../lab/capture';
import { sendUdpDatagram, tcpTransfer } from '../lab/traffic';
import { eventually } from './helpers/eventually';
import { ROOT_SUITE } from './helpers/root';

const CONFIG = { Network: '10.5.0.0/16', EnableIPv6: true, IPv6Network: 'fd00:5::/48', IPv6SubnetLen: 64 };
const HEALTHZ_PORT = 18471;
/**
 * Node 4 runs the upstream-style forwarder (lab/upstream-udp, IPv4 only, as upstream's
 * udp backend): its lease, in upstream's bytes, has no capability object, and its etcd
 * manager gave it a v6 subnet too (EnableIPv6), which its datapath cannot carry.
 */
const UPSTREAM_SUBNET = '10.5.250.0/24';
const UPSTREAM_KEY = '10.5.250.0-24&fd00:5:0:fa::-64';

async function ipj(lab: Lab, ns: string, ...args: string[]): Promise<Array<Record<string, unknown>>> {
  const out = (await lab.exec(ns, args[0]!, ['-j', ...args.slice(1)])).stdout.trim();
  return out === '' ? [] : (JSON.parse(out) as Array<Record<string, unknown>>);
}

// The flannel-ts nodes run the user-space datapath, then the kernel fast path
// beside it ("Datapath": "ebpf"): the fast path carries inner IPv4 only and
// hands every IPv6 packet to the user-space path, which must behave the same.
for (const datapath of ['user', 'ebpf'] as const) {
describe(`udp backend, dual stack: three nodes${datapath === 'ebpf' ? ', with the kernel fast path' : ''}`, ROOT_SUITE, () => {
  let lab: Lab;
  let cluster: FlannelCluster;
  let upstream: UpstreamUdpNode;
  const pod = (i: number) => cluster.topology.nodes[i - 1]!.pod;
  const node = (i: number) => cluster.topology.nodes[i - 1]!;

  /** One series of node 1's /metrics, e.g. series('flanneld_datapath_drops_total', 'direction="egress",reason="no_route"'). */
  async function series(name: string, labels: string): Promise<number> {
    const body = (await httpGet(lab, node(1).ns, HEALTHZ_PORT, '/metrics')).body;
    const m = new RegExp(`^${name}\\{${labels}\\} (\\d+)$`, 'm').exec(body);
    assert.ok(m, `no series ${name}{${labels}}:\n${body.split('\n').filter((l) => l.startsWith(name)).join('\n')}`);
    return Number(m[1]);
  }
  const drops = (direction: string, reason: string) => series('flanneld_datapath_drops_total', `direction="${direction}",reason="${reason}"`);
  const offload = (kind: string) => series('flanneld_datapath_offload_packets_total', `kind="${kind}"`);

  before(async () => {
    lab = new Lab();
    cluster = await FlannelCluster.create(lab, { nodes: 4, ipv6: true, config: { ...CONFIG, Backend: { Type: 'udp', Datapath: datapath } } });
    const n4 = node(4);
    await cluster.etcdctl('put', `${cluster.prefix}/subnets/${UPSTREAM_KEY}`, `{"PublicIP":"${n4.underlayAddress}","PublicIPv6":null}`);
    upstream = await UpstreamUdpNode.start(lab, { ns: n4.ns, bindAddress: n4.underlayAddress, subnet: Ipv4Net.parse(UPSTREAM_SUBNET), network: Ipv4Net.parse(CONFIG.Network), mtu: 1472 });
    n4.podSubnet = Ipv4Net.parse(UPSTREAM_SUBNET);
    n4.pod.address = '10.5.250.2';
    n4.pod.gateway = '10.5.250.1';
    delete n4.pod.address6; // IPv4 only, as upstream's udp backend carries
    await attachPod(lab, n4, 1472);
    cluster.startNode(1, [`-healthz-port=${HEALTHZ_PORT}`]);
    for (const i of [2, 3]) cluster.startNode(i);
    for (const i of [1, 2, 3]) await cluster.waitSubnet(i);
    for (const i of [1, 2, 3]) {
      await cluster.attachPod(i);
      await upstream.setRoute(node(i).podSubnet, node(i).underlayAddress);
    }
  });
  after(async () => {
    await lab?.cleanup();
  });

  test('the lease advertises "ipv6" and the PublicIPv6 of the IPv6 underlay; flannel0 has the v6 address and route, and the MTU leaves room for IPv6+UDP', async () => {
    const env = cluster.nodes[0]!.subnetEnv()!;
    assert.equal(env.get('FLANNEL_IPV6_NETWORK'), 'fd00:5::/48');
    const v6 = env.get('FLANNEL_IPV6_SUBNET')!;
    assert.match(v6, /^fd00:5:0:[0-9a-f]+::1\/64$/);
    assert.equal(Number(env.get('FLANNEL_MTU')), 1500 - 48);
    const ownKey = `${cluster.prefix}/subnets/${env.get('FLANNEL_SUBNET')!.replace('.1/24', '.0-24')}&${v6.replace('::1/64', '::-64')}`;
    const value = JSON.parse((await cluster.etcdctl('get', ownKey, '--print-value-only')).trim()) as Record<string, unknown>;
    assert.equal(value['PublicIP'], node(1).underlayAddress);
    assert.equal(value['PublicIPv6'], underlayAddress6(1));
    assert.equal(value['BackendType'], undefined, 'the udp lease has no BackendType, as upstream writes it');
    assert.ok((value['BackendData'] as { Capabilities: string[] }).Capabilities.includes('ipv6'), JSON.stringify(value));
    const ns = node(1).ns;
    const addrs = (await ipj(lab, ns, 'ip', '-6', 'addr', 'show', 'dev', 'flannel0'))[0]!['addr_info'] as Array<Record<string, unknown>>;
    assert.ok(addrs.some((a) => a['local'] === v6.replace('::1/64', '::') && a['prefixlen'] === 128), JSON.stringify(addrs));
    const routes = await ipj(lab, ns, 'ip', '-6', 'route', 'show', 'fd00:5::/48');
    assert.deepEqual(routes.map((r) => r['dev']), ['flannel0']);
  });

  test('flannel0\'s IPv6 address and route come back when deleted by hand', { timeout: 60_000 }, async () => {
    const ns = node(1).ns;
    const own = cluster.nodes[0]!.subnetEnv()!.get('FLANNEL_IPV6_SUBNET')!.replace('::1/64', '::');
    const state = async () => {
      const addrs = (await ipj(lab, ns, 'ip', '-6', 'addr', 'show', 'dev', 'flannel0'))[0]!['addr_info'] as Array<Record<string, unknown>>;
      const routes = await ipj(lab, ns, 'ip', '-6', 'route', 'show', 'fd00:5::/48');
      return `${addrs.some((a) => a['local'] === own && a['prefixlen'] === 128) ? 'address' : '-'} ${routes.map((r) => r['dev']).join(',')}`;
    };
    assert.equal(await state(), 'address flannel0');
    await lab.exec(ns, 'ip', ['-6', 'route', 'del', 'fd00:5::/48', 'dev', 'flannel0']);
    await lab.exec(ns, 'ip', ['-6', 'addr', 'del', `${own}/128`, 'dev', 'flannel0']);
    await eventually(() => state(), (s) => s === 'address flannel0', 20_000, 'the IPv6 address and route back');
    assert.ok(await eventually(() => ping(lab, pod(2).ns, pod(1).address6!, 1), (ok) => ok, 10_000, 'IPv6 to node 1 after the repair'));
  });

  test('every pod pings every other over IPv4 and IPv6, and full-size over IPv6', { timeout: 60_000 }, async () => {
    for (const a of [1, 2, 3]) {
      for (const b of [1, 2, 3]) {
        if (a === b) continue;
        assert.ok(await eventually(() => ping(lab, pod(a).ns, pod(b).address, 1), (ok) => ok, 10_000, `${pod(a).address} -> ${pod(b).address}`));
        assert.ok(await eventually(() => ping(lab, pod(a).ns, pod(b).address6!, 1), (ok) => ok, 10_000, `${pod(a).address6} -> ${pod(b).address6}`));
      }
    }
    const mtu = Number(cluster.nodes[0]!.subnetEnv()!.get('FLANNEL_MTU'));
    assert.ok(await ping(lab, pod(1).ns, pod(2).address6!, 3, ['-s', String(mtu - 48), '-M', 'do']), `a ${mtu}-byte IPv6 packet crosses`);
    assert.equal(await ping(lab, pod(1).ns, pod(2).address6!, 1, ['-s', String(mtu - 47), '-M', 'do']), false, 'one byte more does not');
  });

  test('TCP over IPv6 both ways, bytes checked, with TSO6 reads, partial checksums and coalesced writes', { timeout: 120_000 }, async () => {
    // Beside the fast path a node advertises kernel-decap instead of partial
    // checksums, and GRO is off (tc must see one datagram per packet): only the TSO6 reads remain.
    const kinds = datapath === 'ebpf' ? ['tun_gso_read'] : ['tun_gso_read', 'partial_checksum_sent', 'partial_checksum_received', 'coalesced'];
    const before = await Promise.all(kinds.map(offload));
    const [ab, ba] = await Promise.all([
      tcpTransfer(lab, pod(1).ns, pod(2).ns, pod(2).address6!, 5001, 20_000_000),
      tcpTransfer(lab, pod(2).ns, pod(1).ns, pod(1).address6!, 5002, 20_000_000),
    ]);
    for (const r of [ab, ba]) {
      assert.equal(r.bytes, 20_000_000);
      assert.equal(r.receivedSha256, r.sentSha256);
    }
    // Node 1 read TSO6 super-packets from flannel0, sent and received IPv6 TCP with the
    // checksum left to the receiving kernel, and wrote coalesced IPv6 TCP to flannel0.
    const after = await Promise.all(kinds.map(offload));
    for (const [i, kind] of kinds.entries()) assert.ok(after[i]! > before[i]!, `${kind}: ${before[i]} -> ${after[i]}`);
  });

  test('the upstream-style node gets IPv4 and no IPv6: its pod\'s v6 address is answered with ICMPv6 unreachable, counted; its inner IPv6 is refused', { timeout: 60_000 }, async () => {
    const n4 = node(4);
    assert.ok(await eventually(() => ping(lab, pod(1).ns, pod(4).address, 1), (ok) => ok, 10_000, 'IPv4 to the upstream node\'s pod'));
    const ip6Seen = await Capture.start(lab, n4.ns, upstream.tun, 'ip6', 1);
    const before = await drops('egress', 'ipv6_peer_incapable');
    const out = await lab.exec(pod(1).ns, 'ping', ['-6', '-n', '-c', '1', '-W', '2', 'fd00:5:0:fa::2'], { timeoutMs: 10_000 }).then(
      (r) => r.stdout,
      (e: { stdout?: string }) => e.stdout ?? '',
    );
    assert.match(out, /Destination unreachable|Administratively prohibited/i, out);
    await eventually(() => drops('egress', 'ipv6_peer_incapable'), (n) => n > before, 5000, 'the drop counted');
    assert.deepEqual(await ip6Seen.packets(2000), [], 'no IPv6 packet reached the upstream node\'s flannel0');
    const refusedBefore = await drops('ingress', 'ipv6_sender_incapable');
    const inner = buildUdp6Packet({ src: 'fd00:5:0:fa::2', dst: pod(1).address6!, srcPort: 40000, dstPort: 9, payload: Buffer.from('from an upstream node') });
    await sendUdpDatagram(lab, n4.ns, n4.underlayAddress, node(1).underlayAddress, 8285, inner);
    await eventually(() => drops('ingress', 'ipv6_sender_incapable'), (n) => n > refusedBefore, 5000, 'the inner IPv6 refused');
    await eventually(() => cluster.nodes[0]!.messages().filter((m) => m.includes(`IPv6 packet from peer ${n4.underlayAddress}`)).length, (n) => n === 1, 5000, 'one log line naming the sender');
  });

  test('a capable peer\'s forged IPv6 sources and foreign destinations are refused and counted', { timeout: 60_000 }, async () => {
    const spoofed = await drops('ingress', 'spoofed_source');
    const foreign = await drops('ingress', 'foreign_destination');
    const send = (src: string, dst: string) =>
      sendUdpDatagram(lab, node(2).ns, node(2).underlayAddress, node(1).underlayAddress, 8285, buildUdp6Packet({ src, dst, srcPort: 40000, dstPort: 9, payload: Buffer.from('forged') }));
    await send(pod(3).address6!, pod(1).address6!); // node 3's pod, sent by node 2
    await send(pod(1).address6!.replace(/::\d+$/, '::77'), pod(1).address6!); // our own subnet
    await send('2001:db8::1', pod(1).address6!); // outside the IPv6 Network
    await send(pod(2).address6!, pod(3).address6!); // to a third node's pod
    await eventually(() => drops('ingress', 'spoofed_source'), (n) => n >= spoofed + 3, 5000, 'three forged sources');
    await eventually(() => drops('ingress', 'foreign_destination'), (n) => n >= foreign + 1, 5000, 'one foreign destination');
    // Each (sender, reason) is logged once: whichever forged source a worker reported first, with its IPv6 addresses.
    const forged = new RegExp(`dropped a packet [0-9a-f:]+ -> ${pod(1).address6!.replace(/[.]/g, '\\.')} from peer ${node(2).underlayAddress.replace(/[.]/g, '\\.')}:`);
    const line = await eventually(() => cluster.nodes[0]!.messages().find((m) => forged.test(m)), (m) => m !== undefined, 5000, 'the refusal logged with its IPv6 addresses');
    assert.match(line!, /may be forged/);
    assert.ok(await ping(lab, pod(2).ns, pod(1).address6!, 1), 'legitimate IPv6 keeps flowing');
  });
});
}
