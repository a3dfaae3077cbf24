/**
 * The udp backend's kernel fast path (native/bpf/udp_fastpath.bpf.c), its
 * programs run by the kernel with BPF_PROG_TEST_RUN on hand-built frames, in
 * a namespace of their own (a TUN for flannel0, a veth for the underlay,
 * forwarding on): the bytes of a wrapped and an unwrapped packet, and every
 * case handed to the user-space datapath unchanged, with its counter.
 * The programs in action, on real traffic: test/udp-datapath.netns.test.ts
 * and the other datapath suites in their ebpf mode.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { fastPathObjectPath, KernelFastPath, TC_ACT_OK, TC_ACT_REDIRECT } from '../src/forwarder/fast-path';
import { parseIpv4 } from '../src/util/ipv4';
import { buildUdp6Packet, buildUdpPacket, checksum, ipv4Fields, ipv4HeaderChecksumValid, l4ChecksumValid, withTtl } from '../lab/packets';
import { Lab } from '../lab/netns';
import { runCleanup } from '../lab/flannel-cluster';
import { ROOT_SUITE } from './helpers/root';

const LOCAL = '192.168.77.1';
const PEER = '192.168.77.2';
const OTHER_PEER = '192.168.77.3';
const ETH = Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x08, 0x00]);
const ETH6 = Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x86, 0xdd]);
const SOURCE_PORTS = [8286, 8287, 8288, 8289];

/** native/core/flow_hash.h's mix_flow, written again from its formula (splitmix64's finalizer), to check the program's choice. */
function mixFlow(addrs: bigint, portsAndProtocol: bigint): number {
  const M = (1n << 64n) - 1n;
  let x = (addrs ^ ((portsAndProtocol * 0x9e3779b97f4a7c15n) & M)) & M;
  x ^= x >> 30n;
  x = (x * 0xbf58476d1ce4e5b9n) & M;
  x ^= x >> 27n;
  x = (x * 0x94d049bb133111ebn) & M;
  x ^= x >> 31n;
  return Number(x >> 32n);
}

/** A datagram as a peer sends it: Ethernet, outer IPv4 and UDP from `from`, `inner` as payload. */
function datagram(inner: Buffer, from: string, opts: { to?: string; dport?: number; flags?: number } = {}): Buffer {
  const outer = buildUdpPacket({ src: from, dst: opts.to ?? LOCAL, srcPort: 8290, dstPort: opts.dport ?? 8285, payload: inner, ttl: 64 });
  if (opts.flags !== undefined) {
    outer.writeUInt16BE(opts.flags, 6);
    outer.writeUInt16BE(0, 10);
    outer.writeUInt16BE(checksum(outer, 0, 20), 10);
  }
  return Buffer.concat([ETH, outer]);
}

describe('the kernel fast path, run by BPF_PROG_TEST_RUN', ROOT_SUITE, () => {
  let lab: Lab;
  let ns: string;
  let fp: KernelFastPath;
  let tun = 0;
  let veth = 0;
  const run = async (which: 'egress' | 'ingress', frame: Buffer) => {
    const r = await lab.exec(ns, process.execPath, ['-e', RUNNER, fastPathObjectPath(), which, frame.toString('hex'), String(which === 'egress' ? tun : veth), JSON.stringify(state)]);
    return JSON.parse(r.stdout) as { retval: number; data: string; counters: Record<string, number> };
  };
  /** The maps the runner loads (each run is a fresh process inside the namespace). */
  const state = {
    config: { enabled: true, localAddress: LOCAL, ownSubnet: { network: '10.5.1.0', prefixLen: 24 }, tunIfindex: 0, extIfindex: 0, port: 8285, sourcePorts: SOURCE_PORTS },
    setRoutes: [
      { network: '10.5.2.0', prefixLen: 24, peer: PEER, port: 8285, fast: true },
      { network: '10.5.3.0', prefixLen: 24, peer: OTHER_PEER, port: 8285, fast: false },
    ],
    localAddresses: [LOCAL, '10.5.2.77'],
  };

  before(async () => {
    lab = new Lab();
    ns = await lab.addNamespace('fp');
    for (const cmd of [
      ['sysctl', '-qw', 'net.ipv4.ip_forward=1'],
      ['ip', 'tuntap', 'add', 'mode', 'tun', 'name', 'flannel0'],
      ['ip', 'link', 'set', 'flannel0', 'up', 'mtu', '1472'],
      ['ip', 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth1'],
      ['ip', 'link', 'set', 'eth0', 'up'],
      ['ip', 'link', 'set', 'eth1', 'up'],
      ['ip', 'addr', 'add', `${LOCAL}/24`, 'dev', 'eth0'],
    ]) {
      await lab.exec(ns, cmd[0]!, cmd.slice(1));
    }
    tun = Number((await lab.exec(ns, 'cat', ['/sys/class/net/flannel0/ifindex'])).stdout);
    veth = Number((await lab.exec(ns, 'cat', ['/sys/class/net/eth0/ifindex'])).stdout);
    state.config.tunIfindex = tun;
    state.config.extIfindex = veth;
    fp = KernelFastPath.load(); // loads here too: the verifier's verdict, outside the namespace
  });
  after(async () => {
    fp?.close();
    await lab?.cleanup();
  });

  test('egress: a packet to a peer that unwraps in the kernel leaves wrapped as the user-space path wraps it', async () => {
    const inner = buildUdpPacket({ src: '10.5.1.2', dst: '10.5.2.2', srcPort: 40000, dstPort: 53, payload: Buffer.from('fast path'), ttl: 64 });
    const r = await run('egress', Buffer.concat([ETH, inner]));
    assert.equal(r.retval, TC_ACT_REDIRECT);
    const out = Buffer.from(r.data, 'hex');
    assert.equal(out.readUInt16BE(12), 0x0800, 'an Ethernet header for the underlay');
    const outer = out.subarray(14);
    const f = ipv4Fields(outer);
    assert.deepEqual([f.version, f.headerLen, f.tos, f.totalLen, f.id, f.flagsFrag, f.ttl, f.protocol, f.src, f.dst], [4, 20, 0, 28 + inner.length, 0, 0x4000, 64, 17, LOCAL, PEER]);
    assert.ok(ipv4HeaderChecksumValid(outer));
    const hash = mixFlow((BigInt(parseIpv4('10.5.1.2')) << 32n) | BigInt(parseIpv4('10.5.2.2')), (BigInt((40000 << 16) | 53) << 8n) | 17n);
    assert.deepEqual(
      [outer.readUInt16BE(20), outer.readUInt16BE(22), outer.readUInt16BE(24), outer.readUInt16BE(26)],
      [SOURCE_PORTS[hash % SOURCE_PORTS.length], 8285, 8 + inner.length, 0],
      'source port by the inner flow, as the user-space path picks it; no outer UDP checksum',
    );
    assert.deepEqual(outer.subarray(28), withTtl(inner, 63), 'the inner packet, its TTL decremented and its checksum patched');
    assert.equal(l4ChecksumValid(outer.subarray(28)), true);
    assert.deepEqual([r.counters['ebpf_egress_packets'], r.counters['ebpf_egress_bytes']], [1, inner.length]);
  });

  test('egress: everything else reaches the user-space path unchanged, counted by reason', async () => {
    const to = (dst: string, ttl = 64) => buildUdpPacket({ src: '10.5.1.2', dst, srcPort: 1, dstPort: 2, payload: Buffer.alloc(8), ttl });
    const withOptions = (() => {
      const p = to('10.5.2.2');
      const q = Buffer.concat([Buffer.from([0x46]), p.subarray(1, 20), Buffer.from([1, 1, 1, 0]), p.subarray(20)]);
      q.writeUInt16BE(q.length, 2);
      q.writeUInt16BE(0, 10);
      q.writeUInt16BE(checksum(q, 0, 24), 10);
      return q;
    })();
    const cases: Array<[string, Buffer, string]> = [
      ['a peer that takes the user-space datagrams only', Buffer.concat([ETH, to('10.5.3.2')]), 'ebpf_egress_pass_peer'],
      ['no route (the user-space path answers with net unreachable)', Buffer.concat([ETH, to('10.5.9.2')]), 'ebpf_egress_pass_no_route'],
      ['TTL 1 (the user-space path answers with time exceeded)', Buffer.concat([ETH, to('10.5.2.2', 1)]), 'ebpf_egress_pass_ttl'],
      ['IPv4 options', Buffer.concat([ETH, withOptions]), 'ebpf_egress_pass_not_ipv4'],
      ['IPv6', Buffer.concat([ETH6, buildUdp6Packet({ src: 'fd00:5:1::2', dst: 'fd00:5:2::2', srcPort: 1, dstPort: 2, payload: Buffer.alloc(8) })]), 'ebpf_egress_pass_not_ipv4'],
      ['too large for the underlay once wrapped', Buffer.concat([ETH, buildUdpPacket({ src: '10.5.1.2', dst: '10.5.2.2', srcPort: 1, dstPort: 2, payload: Buffer.alloc(1480 - 28) })]), 'ebpf_egress_pass_mtu'],
    ];
    for (const [what, frame, counter] of cases) {
      const r = await run('egress', frame);
      assert.equal(r.retval, TC_ACT_OK, what);
      assert.equal(r.data, frame.toString('hex'), `${what}: unchanged`);
      assert.equal(r.counters[counter], 1, `${what}: counted as ${counter}`);
      assert.equal(r.counters['ebpf_egress_packets'], 0, what);
    }
  });

  test('ingress: a datagram from the peer whose subnet holds the inner source is unwrapped and received on flannel0', async () => {
    const inner = buildUdpPacket({ src: '10.5.2.2', dst: '10.5.1.2', srcPort: 53, dstPort: 40000, payload: Buffer.from('back'), ttl: 64 });
    const r = await run('ingress', datagram(inner, PEER));
    assert.equal(r.retval, TC_ACT_REDIRECT);
    const out = Buffer.from(r.data, 'hex');
    assert.deepEqual(out.subarray(14), withTtl(inner, 63));
    assert.deepEqual([r.counters['ebpf_ingress_packets'], r.counters['ebpf_ingress_bytes']], [1, inner.length]);
  });

  test('ingress: what the source check does not pass outright, and what is not ours, is left alone', async () => {
    const inner = (src: string, dst: string, ttl = 64) => buildUdpPacket({ src, dst, srcPort: 1, dstPort: 2, payload: Buffer.alloc(8), ttl });
    const short = (() => {
      const d = datagram(inner('10.5.2.2', '10.5.1.2'), PEER);
      d.writeUInt16BE(d.readUInt16BE(14 + 20 + 8 + 2) + 4, 14 + 20 + 8 + 2); // the inner length says more than the datagram has
      return d;
    })();
    const cases: Array<[string, Buffer, string | undefined]> = [
      ['an inner source in another peer\'s subnet', datagram(inner('10.5.3.2', '10.5.1.2'), PEER), 'ebpf_ingress_pass_policy'],
      ['an inner source in no subnet', datagram(inner('10.9.9.9', '10.5.1.2'), PEER), 'ebpf_ingress_pass_policy'],
      ['an inner destination outside this node\'s subnet', datagram(inner('10.5.2.2', '10.5.7.2'), PEER), 'ebpf_ingress_pass_policy'],
      ['an inner source that is this node\'s own address', datagram(inner('10.5.2.77', '10.5.1.2'), PEER), 'ebpf_ingress_pass_policy'],
      ['inner TTL 1', datagram(inner('10.5.2.2', '10.5.1.2', 1), PEER), 'ebpf_ingress_pass_ttl'],
      ['inner IPv6', datagram(buildUdp6Packet({ src: 'fd00:5:2::2', dst: 'fd00:5:1::2', srcPort: 1, dstPort: 2, payload: Buffer.alloc(8) }), PEER), 'ebpf_ingress_pass_not_ipv4'],
      ['an inner length that disagrees with the datagram', short, 'ebpf_ingress_pass_malformed'],
      ['another port (not the udp backend\'s)', datagram(inner('10.5.2.2', '10.5.1.2'), PEER, { dport: 9999 }), undefined],
      ['another destination address', datagram(inner('10.5.2.2', '10.5.1.2'), PEER, { to: '192.168.77.9' }), undefined],
      ['a fragment', datagram(inner('10.5.2.2', '10.5.1.2'), PEER, { flags: 0x2000 }), undefined],
    ];
    for (const [what, frame, counter] of cases) {
      const r = await run('ingress', frame);
      assert.equal(r.retval, TC_ACT_OK, what);
      assert.equal(r.data, frame.toString('hex'), `${what}: unchanged`);
      const passed = Object.entries(r.counters).filter(([k, v]) => k.startsWith('ebpf_ingress_') && v > 0).map(([k]) => k);
      assert.deepEqual(passed, counter ? [counter] : [], what);
    }
  });

  test('disabled (the config says so): every packet goes to the user-space path, uncounted', async () => {
    const saved = state.config.enabled;
    state.config.enabled = false;
    try {
      const inner = buildUdpPacket({ src: '10.5.1.2', dst: '10.5.2.2', srcPort: 1, dstPort: 2, payload: Buffer.alloc(8) });
      const r = await run('egress', Buffer.concat([ETH, inner]));
      assert.deepEqual([r.retval, Object.values(r.counters).every((v) => v === 0)], [TC_ACT_OK, true]);
    } finally {
      state.config.enabled = saved;
    }
  });
});

/** Runs inside the namespace: loads the programs, fills the maps, runs one frame, prints the result and the counters. */
const RUNNER = `
const { KernelFastPath } = require(${JSON.stringify(require.resolve('../src/forwarder/fast-path'))});
const { Ipv4Net } = require(${JSON.stringify(require.resolve('../src/util/ipv4'))});
const [objectPath, which, hex, ifindex, stateText] = process.argv.slice(1);
const state = JSON.parse(stateText);
const fp = KernelFastPath.load(objectPath);
const net = (p) => Ipv4Net.parse(p.network + '/' + p.prefixLen);
fp.update({
  config: { ...state.config, ownSubnet: net(state.config.ownSubnet) },
  setRoutes: state.setRoutes.map((r) => ({ subnet: net(r), peer: r.peer, port: r.port, fast: r.fast })),
  localAddresses: state.localAddresses,
});
const r = fp.testRun(which, Buffer.from(hex, 'hex'), Number(ifindex));
process.stdout.write(JSON.stringify({ retval: r.retval, data: r.data.toString('hex'), counters: fp.counters() }));
fp.close();
`;

describe('the kernel fast path left behind by a flanneld that died', ROOT_SUITE, () => {
  test('flanneld cleanup removes the filters of ours and only those', { timeout: 60_000 }, async () => {
    const lab = new Lab();
    try {
      const ns = await lab.addNamespace('fc');
      await lab.exec(ns, 'ip', ['link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth1']);
      await lab.exec(ns, 'ip', ['tuntap', 'add', 'mode', 'tun', 'name', 'fpt0']);
      // Someone else's filter on the same hook stays.
      await lab.exec(ns, 'tc', ['qdisc', 'add', 'dev', 'eth0', 'clsact']);
      await lab.exec(ns, 'tc', ['filter', 'add', 'dev', 'eth0', 'ingress', 'pref', '1', 'bpf', 'bytecode', '1,6 0 0 0,']);
      // Attach, then exit without detaching, as a crash would.
      const script = `
        const { KernelFastPath } = require(${JSON.stringify(require.resolve('../src/forwarder/fast-path'))});
        const fs = require('fs');
        const idx = (n) => Number(fs.readFileSync('/sys/class/net/' + n + '/ifindex', 'utf8'));
        const fp = KernelFastPath.load();
        fp.attach(idx('fpt0'), idx('eth0'));
        process.exit(0);`;
      await lab.exec(ns, process.execPath, ['-e', script]);
      const filters = async () => (await lab.exec(ns, 'tc', ['filter', 'show', 'dev', 'eth0', 'ingress'])).stdout;
      assert.match(await filters(), /flannel_ingress/, 'the filter outlived the process');
      const r = await runCleanup(ns);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /tc ingress filter flannel_ingress on eth0/);
      assert.match(r.stdout, /tc egress filter flannel_egress on fpt0/);
      const left = await filters();
      assert.doesNotMatch(left, /flannel_ingress/);
      assert.match(left, /bytecode '1,6 0 0 0'/, "another program's filter stays");
    } finally {
      await lab.cleanup();
    }
  });
});
