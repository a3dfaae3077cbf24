/**
 * vxlan and host-gw without a kernel: options, BackendData bytes, the lease
 * event -> kernel operation mapping (docs/compatibility.md §6.3, §7.2), repair plans, the
 * device compatibility check (docs/compatibility.md §6.1), the linkinfo codec and the reconciler.
 */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, test } from 'node:test';
import { repairOps as hostGwRepairOps, routeFromLease } from '../src/backends/gateway-routes';
import { IPV4 } from '../src/backends/lease-family';
import { encodeVxlanBackendData, parseVxlanBackendConfig, VxlanConfigError, vxlanDeviceName } from '../src/backends/vxlan/config';
import { incompatibility, type VxlanDeviceSpec } from '../src/backends/vxlan/device';
import { addOps, peerFromLease, removeOps, repairOps, type VxlanPeer } from '../src/backends/vxlan/peers';
import { RecordingLogger } from '../src/logging';
import { describeOp } from '../src/routing/kernel-ops';
import { decodeAttrs, decodeVxlanLinkInfo, encodeAttrs, encodeVxlanLinkInfo, linkKind } from '../src/routing/nlattr';
import { Reconciler } from '../src/routing/reconciler';
import type { LinkDetails, NeighborEntry, RouteInfo } from '../src/routing/rtnetlink';
import { Ipv4Net, parseIpv4 } from '../src/util/ipv4';
import { randomLocalMac } from '../src/util/mac';
import { testLease } from './helpers/leases';

const lease = testLease;
const DEV = 7;
const names = (i: number) => (i === DEV ? 'flannel.1' : `#${i}`);

describe('vxlan options and lease data', () => {
  test('defaults and case-insensitive keys', () => {
    assert.deepEqual(parseVxlanBackendConfig({ Type: 'vxlan' }), { vni: 1, port: 0, mtu: undefined, gbp: false, learning: false, directRouting: false });
    assert.deepEqual(parseVxlanBackendConfig({ type: 'vxlan', vni: 42, port: 4789, mtu: 9000, gbp: true, learning: true, directrouting: true }), {
      vni: 42,
      port: 4789,
      mtu: 9000,
      gbp: true,
      learning: true,
      directRouting: true,
    });
    assert.throws(() => parseVxlanBackendConfig({ VNI: 'x' }), (e: unknown) => e instanceof VxlanConfigError && /^error decoding VXLAN backend config: json: cannot unmarshal string/.test(e.message));
    assert.throws(() => parseVxlanBackendConfig({ VNI: 1 << 24 }), /VNI must be/);
    assert.equal(vxlanDeviceName(1), 'flannel.1');
  });

  test('BackendData has upstream\'s exact bytes', () => {
    assert.equal(encodeVxlanBackendData(1, 'C6:D2:32:6F:8F:44'), '{"VNI":1,"VtepMAC":"c6:d2:32:6f:8f:44"}');
  });

  test('a random MAC is unicast and locally administered', () => {
    for (let i = 0; i < 200; i++) {
      const first = parseInt(randomLocalMac().slice(0, 2), 16);
      assert.equal(first & 1, 0);
      assert.equal(first & 2, 2);
    }
    assert.equal(randomLocalMac(() => Buffer.from([0xff, 1, 2, 3, 4, 5])), 'fe:01:02:03:04:05');
  });
});

describe('vxlan: lease events -> kernel operations', () => {
  const peer: VxlanPeer = { subnet: Ipv4Net.parse('10.5.52.0/24'), gateway: parseIpv4('10.5.52.0'), mac: 'aa:bb:cc:dd:ee:01', publicIp: parseIpv4('192.168.1.2'), direct: false };

  test('only vxlan leases with a VtepMAC become peers', () => {
    const ok = peerFromLease(lease('10.5.52.0/24', '192.168.1.2', 'vxlan', '{"VNI":1,"VtepMAC":"AA:BB:CC:DD:EE:01"}'), IPV4);
    assert.ok(ok.ok);
    assert.deepEqual(ok.peer, peer);
    for (const l of [
      lease('10.5.53.0/24', '192.168.1.3', 'host-gw'),
      lease('10.5.54.0/24', '192.168.1.4', ''),
      lease('10.5.55.0/24', '192.168.1.5', 'vxlan', '{"VNI":1}'),
      lease('10.5.56.0/24', '192.168.1.6', 'vxlan', '{"VtepMAC":"zz"}'),
    ]) {
      assert.equal(peerFromLease(l, IPV4).ok, false);
    }
  });

  test('added: neighbour, FDB entry, onlink route, in that order', () => {
    assert.deepEqual(addOps(DEV, peer).map((o) => describeOp(o, names)), [
      'ip neigh replace 10.5.52.0 lladdr aa:bb:cc:dd:ee:01 dev flannel.1 nud permanent',
      'bridge fdb replace aa:bb:cc:dd:ee:01 dev flannel.1 dst 192.168.1.2 self permanent',
      'ip route replace 10.5.52.0/24 via 10.5.52.0 dev flannel.1 onlink',
    ]);
  });

  test('removed: all three deleted; DirectRouting: one plain route', () => {
    assert.deepEqual(removeOps(DEV, peer).map((o) => o.op), ['deleteNeighbor', 'deleteFdb', 'deleteRoute']);
    const direct = { ...peer, direct: true };
    assert.deepEqual(addOps(DEV, direct).map((o) => describeOp(o, names)), ['ip route replace 10.5.52.0/24 via 192.168.1.2']);
    assert.deepEqual(removeOps(DEV, direct).map((o) => describeOp(o, names)), ['ip route del 10.5.52.0/24 via 192.168.1.2']);
  });

  const route = (dst: string, gw: string, oif: number, onlink: boolean): RouteInfo => ({ dst: Ipv4Net.parse(dst), gateway: parseIpv4(gw), oif, table: 254, protocol: 3, scope: 'universe', type: 'unicast', onlink, priority: 0 });
  const neigh = (ip: string, mac: string, permanent = true): NeighborEntry => ({ ifindex: DEV, ip: parseIpv4(ip), mac, permanent, self: false });
  const fdb = (mac: string, dst: string): NeighborEntry => ({ ifindex: DEV, ip: parseIpv4(dst), mac, permanent: true, self: true });

  test('repair: nothing to do when the kernel matches', () => {
    const k = { neighbors: [neigh('10.5.52.0', peer.mac)], fdb: [fdb(peer.mac, '192.168.1.2')], routes: [route('10.5.52.0/24', '10.5.52.0', DEV, true)] };
    assert.deepEqual(repairOps(DEV, [peer], k, true), []);
  });

  test('repair: missing or different entries are restored', () => {
    const k = { neighbors: [neigh('10.5.52.0', 'aa:bb:cc:dd:ee:99')], fdb: [], routes: [route('10.5.52.0/24', '10.5.52.0', DEV, false)] };
    const plan = repairOps(DEV, [peer], k, false);
    assert.deepEqual(plan.map((p) => `${p.why} ${p.kind}: ${describeOp(p.op, names)}`), [
      'restore neighbor: ip neigh replace 10.5.52.0 lladdr aa:bb:cc:dd:ee:01 dev flannel.1 nud permanent',
      'restore fdb: bridge fdb replace aa:bb:cc:dd:ee:01 dev flannel.1 dst 192.168.1.2 self permanent',
      'restore route: ip route replace 10.5.52.0/24 via 10.5.52.0 dev flannel.1 onlink',
    ]);
  });

  test('repair: stale entries are removed only once synced, and dynamic ones never', () => {
    const k = {
      neighbors: [neigh('10.5.99.0', 'aa:bb:cc:dd:ee:99'), neigh('10.5.98.0', 'aa:bb:cc:dd:ee:98', false)],
      fdb: [fdb('aa:bb:cc:dd:ee:99', '192.168.1.99'), fdb('00:00:00:00:00:00', '192.168.1.1')],
      routes: [route('10.5.99.0/24', '10.5.99.0', DEV, true), route('10.6.0.0/16', '192.168.1.1', 3, false)],
    };
    assert.deepEqual(repairOps(DEV, [], k, false), []);
    assert.deepEqual(repairOps(DEV, [], k, true).map((p) => describeOp(p.op, names)), [
      'ip neigh del 10.5.99.0 dev flannel.1',
      'bridge fdb del aa:bb:cc:dd:ee:99 dev flannel.1 dst 192.168.1.99 self',
      'ip route del 10.5.99.0/24 via 10.5.99.0 dev flannel.1',
    ]);
  });
});

describe('vxlan device compatibility (upstream ensureLink)', () => {
  const spec: VxlanDeviceSpec = { name: 'flannel.1', vni: 1, link: 3, local: parseIpv4('192.168.1.1'), port: 0, learning: false, gbp: false, mtu: 1450 };
  const dev = (vx: Partial<NonNullable<LinkDetails['vxlan']>>, kind = 'vxlan'): LinkDetails => ({
    index: 9,
    name: 'flannel.1',
    mtu: 1400,
    up: true,
    type: 1,
    txQueueLen: 1000,
    mac: 'aa:bb:cc:dd:ee:ff',
    kind,
    vxlan: kind === 'vxlan' ? { vni: 1, link: 3, local: parseIpv4('192.168.1.1'), group: 0, port: 8472, learning: true, gbp: false, l2miss: false, l3miss: false, proxy: false, rsc: false, ttl: 0, tos: 0, ...vx } : undefined,
  });
  test('compatible: MTU, learning and the kernel default port do not matter', () => {
    assert.equal(incompatibility(dev({}), spec), undefined);
    assert.equal(incompatibility(dev({ link: 0 }), spec), undefined, 'an unset underlay is not compared');
  });
  test('each incompatible field is named', () => {
    assert.equal(incompatibility(dev({}, 'veth'), spec), 'type: veth vs vxlan');
    assert.equal(incompatibility(dev({ vni: 2 }), spec), 'vni: 2 vs 1');
    assert.equal(incompatibility(dev({ link: 4 }), spec), 'underlay index: 4 vs 3');
    assert.equal(incompatibility(dev({ local: parseIpv4('10.0.0.1') }), spec), 'local address: 10.0.0.1 vs 192.168.1.1');
    assert.equal(incompatibility(dev({ l2miss: true }), spec), 'l2miss: true vs false');
    assert.equal(incompatibility(dev({ port: 4789 }), { ...spec, port: 8472 }), 'port: 4789 vs 8472');
    assert.equal(incompatibility(dev({ gbp: true }), spec), 'gbp: true vs false');
  });
});

describe('linkinfo codec', () => {
  test('vxlan settings round-trip; attributes are 4-byte aligned', () => {
    const info = encodeVxlanLinkInfo({ vni: 5, link: 3, local: parseIpv4('10.0.0.1'), port: 4789, learning: true, gbp: true });
    assert.equal(info.length % 4, 0);
    assert.equal(linkKind(info), 'vxlan');
    const v = decodeVxlanLinkInfo(info)!;
    assert.deepEqual([v.vni, v.link, v.local, v.port, v.learning, v.gbp, v.l2miss], [5, 3, parseIpv4('10.0.0.1'), 4789, true, true, false]);
    const noPort = decodeVxlanLinkInfo(encodeVxlanLinkInfo({ vni: 1, link: 0, local: 0, port: 0, learning: false, gbp: false }))!;
    assert.deepEqual([noPort.port, noPort.gbp, noPort.local], [0, false, 0]);
    assert.deepEqual(decodeAttrs(encodeAttrs([{ type: 1, value: Buffer.from('abc') }, { type: 2, value: Buffer.alloc(0) }])).map((a) => [a.type, a.value.toString()]), [[1, 'abc'], [2, '']]);
    assert.deepEqual(decodeAttrs(Buffer.from([8, 0])), [], 'a truncated attribute is ignored');
  });
});

describe('host-gw: lease events -> routes', () => {
  test('only host-gw leases; a route via the PublicIP through the external interface', () => {
    assert.deepEqual(routeFromLease(lease('10.5.3.0/24', '192.168.1.3', 'vxlan'), 3, IPV4), { ok: false, reason: 'type=vxlan' });
    const parsed = routeFromLease(lease('10.5.2.0/24', '192.168.1.2', 'host-gw'), 3, IPV4);
    assert.ok(parsed.ok);
    const r = parsed.peer;
    assert.deepEqual(hostGwRepairOps([r], []).map((o) => describeOp(o.op, (i) => (i === 3 ? 'eth0' : `#${i}`))), ['ip route replace 10.5.2.0/24 via 192.168.1.2 dev eth0']);
    const same: RouteInfo = { dst: Ipv4Net.parse('10.5.2.0/24'), gateway: parseIpv4('192.168.1.2'), oif: 3, table: 254, protocol: 3, scope: 'universe', type: 'unicast', onlink: false, priority: 0 };
    assert.deepEqual(hostGwRepairOps([r], [same]), []);
    assert.equal(hostGwRepairOps([r], [{ ...same, gateway: parseIpv4('192.168.1.9') }]).length, 1, 'a different gateway is replaced');
  });
});

describe('reconciler engine', () => {
  test('debounces events, never overlaps runs, counts repairs, logs a failure once', async () => {
    const events = new EventEmitter() as EventEmitter & { close(): void };
    events.close = () => undefined;
    const log = new RecordingLogger();
    let running = 0;
    let maxRunning = 0;
    let calls = 0;
    let fail = false;
    const r = new Reconciler(
      { name: 't', intervalMs: 60_000, debounceMs: 20, relevant: (e) => e.kind === 'route' },
      async () => {
        calls++;
        running++;
        maxRunning = Math.max(maxRunning, running);
        await new Promise((res) => setTimeout(res, 30));
        running--;
        if (fail) throw new Error('boom');
        return [{ kind: 'route', description: 'restored x' }];
      },
      events as never,
      log,
    );
    r.start();
    for (let i = 0; i < 5; i++) events.emit('event', { kind: 'route', deleted: true, ifindex: undefined });
    events.emit('event', { kind: 'link', deleted: true, ifindex: 1 });
    await new Promise((res) => setTimeout(res, 100));
    assert.equal(calls, 1, 'five events, one run; an irrelevant one ignored');
    await Promise.all([r.runNow(), r.runNow(), r.runNow()]);
    assert.equal(maxRunning, 1);
    assert.equal(r.stats.repairs, r.stats.runs);
    assert.equal(r.stats.repairsByKind['route'], r.stats.runs);
    fail = true;
    await r.runNow();
    await r.runNow();
    assert.equal(log.records.filter((x) => /cannot reconcile kernel state/.test(x.msg)).length, 1);
    assert.equal(r.stats.failures, 2);
    fail = false;
    await r.runNow();
    assert.ok(log.records.some((x) => /reconciled again/.test(x.msg)));
    await r.stop();
  });
});
