/**
 * The guard between the stores' lease watches and the backends
 * (src/lease/peer-lease-guard.ts): the bad records that hurt a node
 * upstream are not routed, each refusal is logged once, overlapping records
 * and records that share a VtepMAC are chosen the same way whatever order
 * they arrive in, this node's addresses are kept current, and memory and
 * logs stay bounded with thousands of refused records. Pure: no store, no
 * kernel.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Lease, LeaseEvent, LeaseRecord, RecordBatch } from '../src/lease/lease';
import { checkNetworkConfig, kubeNetworkConfig, parseNetworkConfig } from '../src/lease/network-config';
import { type GuardContext, PeerLeaseGuard } from '../src/lease/peer-lease-guard';
import { RecordingLogger } from '../src/logging';
import { Ipv4Net, parseIpv4 } from '../src/util/ipv4';
import { Ipv6Net, tryParseIpv6 } from '../src/util/ipv6';
import { LOG_ONCE_DIGEST_CHARS, LogOnce } from '../src/util/repeat-log';
import { testLease, testLease6 } from './helpers/leases';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';

const OWN = testLease('10.5.1.0/24', '192.168.1.1', 'host-gw');
const ctx = (extra: Partial<GuardContext> = {}): GuardContext => ({
  network: checkNetworkConfig(parseNetworkConfig('{"Network":"10.5.0.0/16","Backend":{"Type":"host-gw"}}')),
  own: OWN,
  local: { ipv4: [parseIpv4('192.168.1.1'), parseIpv4('127.0.0.1')], ipv6: [], directedBroadcasts: [parseIpv4('192.168.1.255')] },
  ...extra,
});
const rec = (id: string, cidr: string, ip: string, since = 1): LeaseRecord => ({ id, lease: testLease(cidr, ip, 'host-gw'), since });

function guard(c: GuardContext = ctx()) {
  const log = new RecordingLogger();
  const batches: LeaseEvent[][] = [];
  const g = new PeerLeaseGuard(c, (ev) => batches.push(ev), log);
  const text = (ev: LeaseEvent[]) => ev.map((e) => `${e.type} ${e.lease.subnet} via ${e.lease.attrs.publicIp === 0 ? '0' : e.lease.attrs.publicIp}`);
  const apply = (b: RecordBatch) => g.apply(b).map((e) => `${e.type} ${e.lease.subnet}`);
  const refusals = (re: RegExp) => log.records.filter((r) => /^Ignoring lease/.test(r.msg) && re.test(r.msg));
  return { g, log, batches, text, apply, refusals };
}

describe('the peer lease guard', () => {
  test('good records pass; the first batch is delivered even when empty; a removal carries the lease last routed', () => {
    const { apply, batches } = guard();
    assert.deepEqual(apply({ kind: 'snapshot', records: [] }), []);
    assert.equal(batches.length, 1, 'the backend learns it is in sync');
    assert.deepEqual(apply({ kind: 'changes', changes: [{ type: 'put', record: rec('k2', '10.5.2.0/24', '192.168.1.2') }] }), ['added 10.5.2.0/24']);
    assert.deepEqual(apply({ kind: 'changes', changes: [{ type: 'put', record: rec('k2', '10.5.2.0/24', '192.168.1.22') }] }), ['added 10.5.2.0/24'], 'a changed PublicIP is re-added');
    const removed = guard();
    removed.apply({ kind: 'snapshot', records: [rec('k2', '10.5.2.0/24', '192.168.1.2')] });
    const ev = removed.g.apply({ kind: 'changes', changes: [{ type: 'delete', id: 'k2' }] });
    assert.deepEqual(ev.map((e) => [e.type, e.lease.attrs.publicIp]), [['removed', parseIpv4('192.168.1.2')]]);
    assert.equal(batches.length, 3, 'no empty batch after the first');
  });

  test('0.0.0.0/0 and leases outside the Network are not routed; the rest is', () => {
    const { apply, refusals, g } = guard();
    const got = apply({
      kind: 'snapshot',
      records: [rec('default', '0.0.0.0/0', '192.168.1.9'), rec('outside', '10.6.0.0/24', '192.168.1.8'), rec('k2', '10.5.2.0/24', '192.168.1.2')],
    });
    assert.deepEqual(got, ['added 10.5.2.0/24']);
    assert.equal(refusals(/not inside the Network 10\.5\.0\.0\/16/).length, 2);
    assert.equal(g.stats.refused.outside_network, 2);
  });

  test('a lease overlapping our own subnet is never routed, whatever its age', () => {
    const { apply, refusals } = guard();
    assert.deepEqual(apply({ kind: 'snapshot', records: [rec('alias', '10.5.1.0/24', '192.168.1.7', 0), rec('inside', '10.5.1.128/25', '192.168.1.6', 0), rec('k2', '10.5.2.0/24', '192.168.1.2')] }), ['added 10.5.2.0/24']);
    assert.equal(refusals(/overlaps this node's own subnet 10\.5\.1\.0\/24/).length, 2);
  });

  test("unusable PublicIPs: this node's own, 0.0.0.0, loopback, multicast, 255.255.255.255, the directed broadcast", () => {
    const { apply, refusals } = guard();
    const bad = ['192.168.1.1', '0.0.0.0', '127.0.0.2', '224.0.0.5', '255.255.255.255', '192.168.1.255'];
    const got = apply({ kind: 'snapshot', records: [...bad.map((ip, i) => rec(`b${i}`, `10.5.${10 + i}.0/24`, ip)), rec('k2', '10.5.2.0/24', '192.168.1.2')] });
    assert.deepEqual(got, ['added 10.5.2.0/24']);
    for (const why of ["this node's own address", 'it is 0.0.0.0', 'loopback', 'multicast', 'limited broadcast', "external interface's broadcast"]) {
      assert.equal(refusals(new RegExp(why)).length, 1, why);
    }
  });

  test('overlapping records: the same choice whatever the order they arrive in, and after a relist', () => {
    // The same subnet under two keys (differing only in their IPv6 part), and a /32 inside another node's subnet.
    const a = rec('10.5.3.0-24&fd00:1::-64', '10.5.3.0/24', '192.168.1.3', 5);
    const b = rec('10.5.3.0-24&fd00:2::-64', '10.5.3.0/24', '192.168.1.33', 7);
    const host = rec('10.5.4.7-32', '10.5.4.7/32', '192.168.1.47', 1);
    const node4 = rec('10.5.4.0-24', '10.5.4.0/24', '192.168.1.4', 9);
    const orders = [
      [a, b, host, node4],
      [node4, host, b, a],
      [b, node4, a, host],
    ];
    const outcomes = orders.map((order) => {
      const { g, batches } = guard();
      g.apply({ kind: 'snapshot', records: [] });
      for (const r of order) g.apply({ kind: 'changes', changes: [{ type: 'put', record: r }] });
      const routed = new Map<string, number>();
      for (const e of batches.flat()) if (e.type === 'added') routed.set(e.lease.subnet.toString(), e.lease.attrs.publicIp);
      else routed.delete(e.lease.subnet.toString());
      return [...routed].sort();
    });
    assert.deepEqual(outcomes[1], outcomes[0]);
    assert.deepEqual(outcomes[2], outcomes[0]);
    assert.deepEqual(outcomes[0], [
      ['10.5.3.0/24', parseIpv4('192.168.1.3')],
      ['10.5.4.0/24', parseIpv4('192.168.1.4')],
    ], 'the older of two equal subnets; the subnet of the network\'s size over an older /32 inside it');
    const { apply, refusals } = guard();
    apply({ kind: 'snapshot', records: [b, a, node4, host] });
    assert.deepEqual(apply({ kind: 'snapshot', records: [host, node4, a, b] }), [], 'a relist in another order changes nothing');
    assert.equal(refusals(/overlaps/).length, 2, 'each loser logged once');
  });

  test('when the routed record goes, the one it shadowed is routed', () => {
    const { apply } = guard();
    apply({ kind: 'snapshot', records: [rec('old', '10.5.3.0/24', '192.168.1.3', 1), rec('new', '10.5.3.0/24', '192.168.1.33', 2)] });
    assert.deepEqual(apply({ kind: 'changes', changes: [{ type: 'delete', id: 'old' }] }), ['added 10.5.3.0/24'], 'one "added": the subnet moves, it is never withdrawn');
  });

  test('each address family is checked separately; a failing IPv6 part is dropped and the IPv4 part routed', () => {
    const dual = ctx({
      network: checkNetworkConfig(parseNetworkConfig('{"Network":"10.5.0.0/16","EnableIPv6":true,"IPv6Network":"fd00:5::/32"}')),
      own: { subnet: Ipv4Net.parse('10.5.1.0/24'), ipv6Subnet: Ipv6Net.tryParse('fd00:5:1::/64') },
      local: { ipv4: [parseIpv4('192.168.1.1')], ipv6: [tryParseIpv6('fd00::1')!], directedBroadcasts: [] },
    });
    const { apply, g } = guard(dual);
    const withV6 = (id: string, cidr: string, v6: string, pub6: string): LeaseRecord => {
      const l: Lease = testLease(cidr, '192.168.1.2', 'host-gw');
      return { id, since: 1, lease: { ...l, ipv6Subnet: Ipv6Net.tryParse(v6)!, attrs: { ...l.attrs, publicIpv6: tryParseIpv6(pub6)! } } };
    };
    apply({ kind: 'snapshot', records: [withV6('good', '10.5.2.0/24', 'fd00:5:2::/64', 'fd00::2'), withV6('v6out', '10.5.3.0/24', 'fd00:6::/64', 'fd00::3'), withV6('v6self', '10.5.4.0/24', 'fd00:5:4::/64', 'fd00::1')] });
    const routed = g['routed'] as Map<string, { lease: Lease }>;
    assert.equal(routed.get('10.5.2.0/24')!.lease.ipv6Subnet?.toString(), 'fd00:5:2::/64');
    assert.equal(routed.get('10.5.3.0/24')!.lease.ipv6Subnet, undefined);
    assert.equal(routed.get('10.5.4.0/24')!.lease.attrs.publicIpv6, undefined);
  });

  test('IPv4 off (a v6-only kube cluster): PublicIP 0.0.0.0 and a 0.0.0.0/0 IPv4 part are fine', () => {
    const v6only = ctx({
      network: kubeNetworkConfig(parseNetworkConfig('{"EnableIPv4":false,"EnableIPv6":true,"IPv6Network":"fd00:5::/32"}')),
      own: { subnet: Ipv4Net.parse('0.0.0.0/0'), ipv6Subnet: Ipv6Net.tryParse('fd00:5:1::/64') },
    });
    const { g } = guard(v6only);
    const l = testLease('0.0.0.0/0', '0.0.0.0', 'host-gw');
    const ev = g.apply({ kind: 'snapshot', records: [{ id: 'node-b', since: 1, lease: { ...l, ipv6Subnet: Ipv6Net.tryParse('fd00:5:2::/64')!, attrs: { ...l.attrs, publicIpv6: tryParseIpv6('fd00::2')! } } }] });
    assert.equal(ev.length, 1);
  });

  test('a refusal is logged once, and a 1.5 MiB bad value is quoted cut', () => {
    const { apply, log } = guard();
    const huge = 'x'.repeat(1_500_000);
    for (let i = 0; i < 3; i++) apply({ kind: 'snapshot', records: [rec(`/p/subnets/${huge}`, '0.0.0.0/0', '192.168.1.9')] });
    const lines = log.records.filter((r) => /^Ignoring lease/.test(r.msg));
    assert.equal(lines.length, 1);
    assert.ok(lines[0]!.msg.length < 2000, `the line has ${lines[0]!.msg.length} characters`);
  });
});

test('log-once forgets the oldest id past its capacity, not all of them', () => {
  const once = new LogOnce(3);
  for (const id of ['a', 'b', 'c']) assert.equal(once.first(id), true);
  assert.equal(once.first('d'), true, 'a new id is logged');
  assert.equal(once.first('a'), true, 'the oldest was forgotten');
  assert.deepEqual(['c', 'd'].map((id) => once.first(id)), [false, false], 'the rest stay remembered');
});

test('log-once keeps a bounded digest per id, however large the ids', () => {
  const once = new LogOnce(10_000);
  const big = 'y'.repeat(1_500_000);
  for (let i = 0; i < 20_000; i++) assert.equal(once.first(`${i}:${big}`), true);
  assert.equal(once.first(`19999:${big}`), false);
  assert.ok(once.retainedChars <= 10_000 * LOG_ONCE_DIGEST_CHARS, `${once.retainedChars} characters retained`);
});

describe('the peer lease guard: records that would break another node (the second audit)', () => {
  const vxlanCtx = (extra: Partial<GuardContext> = {}): GuardContext =>
    ctx({ network: checkNetworkConfig(parseNetworkConfig('{"Network":"10.5.0.0/16","Backend":{"Type":"vxlan"}}')), ...extra });
  const vx = (id: string, cidr: string, ip: string, mac: string, since: number): LeaseRecord => ({ id, since, lease: testLease(cidr, ip, 'vxlan', `{"VNI":1,"VtepMAC":"${mac}"}`) });

  test('a VtepMAC no machine can have is refused: all zeros, multicast, broadcast, malformed', () => {
    const { apply, refusals } = guard(vxlanCtx());
    const got = apply({
      kind: 'snapshot',
      records: [
        vx('z', '10.5.10.0/24', '192.168.1.10', '00:00:00:00:00:00', 1),
        vx('m', '10.5.11.0/24', '192.168.1.11', '01:00:5e:00:00:01', 1),
        vx('b', '10.5.12.0/24', '192.168.1.12', 'ff:ff:ff:ff:ff:ff', 1),
        vx('x', '10.5.13.0/24', '192.168.1.13', 'not-a-mac', 1),
        vx('ok', '10.5.2.0/24', '192.168.1.2', '0a:00:00:00:00:02', 1),
      ],
    });
    assert.deepEqual(got, ['added 10.5.2.0/24']);
    for (const why of ['all zeros', 'multicast', 'broadcast address', 'not a MAC address']) assert.equal(refusals(new RegExp(`VtepMAC .*${why}`)).length, 1, why);
  });

  test("a reused VtepMAC with another PublicIP: the older record keeps it, in any order, logged once, never flapping", () => {
    const honest = vx('node-b', '10.5.2.0/24', '192.168.1.2', '0a:00:00:00:00:02', 5);
    const rogue = vx('rogue', '10.5.9.0/24', '192.168.1.99', '0A:00:00:00:00:02', 8);
    for (const order of [[honest, rogue], [rogue, honest]]) {
      const { g, apply, refusals } = guard(vxlanCtx());
      apply({ kind: 'snapshot', records: [] });
      const added: string[] = [];
      for (const r of order) added.push(...apply({ kind: 'changes', changes: [{ type: 'put', record: r }] }));
      // The rogue record, whichever came first, is not routed once the older one is there.
      assert.deepEqual(added, order[0] === rogue ? ['added 10.5.9.0/24', 'removed 10.5.9.0/24', 'added 10.5.2.0/24'] : ['added 10.5.2.0/24']);
      assert.deepEqual(apply({ kind: 'snapshot', records: [rogue, honest] }), []);
      assert.equal(g.stats.refused.duplicate_identity, 1);
      // Relists and unrelated puts change nothing and log nothing more.
      for (let i = 0; i < 3; i++) assert.deepEqual(apply({ kind: 'snapshot', records: [honest, rogue] }), []);
      assert.deepEqual(apply({ kind: 'changes', changes: [{ type: 'put', record: vx('c', '10.5.3.0/24', '192.168.1.3', '0a:00:00:00:00:03', 9) }] }), ['added 10.5.3.0/24']);
      assert.equal(refusals(/VtepMAC 0a:00:00:00:00:02 is that of node-b \(10\.5\.2\.0\/24/).length, 1);
    }
  });

  test('one machine with two records (the same PublicIP) may use one VtepMAC', () => {
    const { apply } = guard(vxlanCtx());
    assert.deepEqual(apply({ kind: 'snapshot', records: [vx('a', '10.5.2.0/24', '192.168.1.2', '0a:00:00:00:00:02', 1), vx('b', '10.5.7.0/24', '192.168.1.2', '0a:00:00:00:00:02', 2)] }), ['added 10.5.2.0/24', 'added 10.5.7.0/24']);
  });

  test('a PublicIP inside the Network (a node advertising its cni0 address) is refused, per family', () => {
    const dual = ctx({
      network: checkNetworkConfig(parseNetworkConfig('{"Network":"10.5.0.0/16","EnableIPv6":true,"IPv6Network":"fd00:5::/32","Backend":{"Type":"host-gw"}}')),
      own: { subnet: Ipv4Net.parse('10.5.1.0/24'), ipv6Subnet: Ipv6Net.tryParse('fd00:5:1::/64') },
    });
    const { apply, refusals, log: lg } = guard(dual);
    const got = apply({
      kind: 'snapshot',
      records: [
        { id: 'cni4', since: 1, lease: testLease('10.5.3.0/24', '10.5.3.1', 'host-gw') },
        { id: 'cni6', since: 1, lease: testLease6('10.5.4.0/24', '192.168.1.4', 'fd00:5:4::/64', 'fd00:5:4::1', 'host-gw') },
      ],
    });
    assert.deepEqual(got, ['added 10.5.4.0/24']);
    assert.equal(refusals(/PublicIP 10\.5\.3\.1 cannot be a peer's: it is inside the Network 10\.5\.0\.0\/16/).length, 1);
    assert.match(lg.records.find((r) => /IPv6 part/.test(r.msg))!.msg, /PublicIPv6 fd00:5:4::1 .* inside the IPv6Network fd00:5::\/32; only its IPv4 part is routed/);
  });

  test('IPv6 PublicIPs no peer can have: v4-mapped and link-local; unique-local ones are fine', () => {
    const v6only = ctx({
      network: kubeNetworkConfig(parseNetworkConfig('{"EnableIPv4":false,"EnableIPv6":true,"IPv6Network":"fd00:5::/32"}')),
      own: { subnet: Ipv4Net.parse('0.0.0.0/0'), ipv6Subnet: Ipv6Net.tryParse('fd00:5:1::/64') },
    });
    const { apply, refusals } = guard(v6only);
    const rec6 = (id: string, cidr6: string, pub6: string): LeaseRecord => ({ id, since: 1, lease: testLease6('0.0.0.0/0', '0.0.0.0', cidr6, pub6, 'host-gw') });
    const got = apply({ kind: 'snapshot', records: [rec6('mapped', 'fd00:5:2::/64', '::ffff:192.168.1.2'), rec6('ll', 'fd00:5:3::/64', 'fe80::2'), rec6('ula', 'fd00:5:4::/64', 'fd99::4')] });
    assert.deepEqual(got, ['added 0.0.0.0/0']);
    assert.equal(refusals(/IPv4-mapped/).length, 1);
    assert.equal(refusals(/link-local/).length, 1);
  });

  test("this node's addresses kept current: a routed record whose PublicIP became ours is withdrawn; refused ones are re-listed when one goes", () => {
    const { g, apply } = guard();
    let resyncs = 0;
    g.onResyncNeeded = () => resyncs++;
    apply({ kind: 'snapshot', records: [rec('k2', '10.5.2.0/24', '192.168.1.2'), rec('k3', '10.5.3.0/24', '192.168.1.1')] });
    const next = { ipv4: [parseIpv4('192.168.1.1'), parseIpv4('192.168.1.2')], ipv6: [], directedBroadcasts: [] };
    assert.deepEqual(g.setLocalAddresses(next).map((e) => `${e.type} ${e.lease.subnet}`), ['removed 10.5.2.0/24']);
    assert.equal(resyncs, 1, 'k3 (refused as our address) may pass now: the store re-lists');
    g.setLocalAddresses({ ipv4: [], ipv6: [], directedBroadcasts: [] });
    // The re-list brings both back with their data.
    assert.deepEqual(apply({ kind: 'snapshot', records: [rec('k2', '10.5.2.0/24', '192.168.1.2'), rec('k3', '10.5.3.0/24', '192.168.1.1')] }), ['added 10.5.2.0/24', 'added 10.5.3.0/24']);
  });

  test('10,000 refused records of 1 KiB each: kept as key and reason (under 5 MB), logged once, one put logs one line', () => {
    const gc = (() => {
      v8.setFlagsFromString('--expose-gc');
      return vm.runInNewContext('gc') as () => void;
    })();
    const { g, apply, log: lg } = guard();
    const filler = 'z'.repeat(1024);
    const records = Array.from({ length: 10_001 }, (_, i) => ({ id: `/coreos.com/network/subnets/10.6.${i >> 8}.${i & 255}-32`, since: i + 10, lease: testLease(`10.6.${i >> 8}.${i & 255}/32`, '192.168.1.9', 'host-gw', `{"Filler":"${filler}"}`) }));
    gc();
    const before = process.memoryUsage().heapUsed;
    apply({ kind: 'snapshot', records });
    records.length = 0;
    const lines = () => lg.records.filter((r) => /^Ignoring lease/.test(r.msg)).length;
    assert.equal(lines(), 10_001);
    lg.records.length = 0; // the test's logger keeps every line; the guard must not
    gc();
    const retained = process.memoryUsage().heapUsed - before;
    assert.ok(retained < 5_000_000, `the guard retains ${retained} bytes for 10,001 refused records`);
    assert.equal(g.stats.refused.outside_network, 10_001);
    apply({ kind: 'changes', changes: [{ type: 'put', record: rec('k2', '10.5.2.0/24', '192.168.1.2') }] });
    assert.equal(lines(), 0, 'an ordinary put logs no refusal again');
    assert.equal(g.refusedSummary(), 'outside_network 10001');
    lg.records.length = 0;
  });
});
