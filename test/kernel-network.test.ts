/**
 * The kernel network engine (src/backends/kernel-network.ts) with the vxlan
 * and host-gw plans, registered against an in-memory kernel: no root, no
 * netlink. Lease events in, kernel state out: add and remove, stale entries
 * removed once the first batch is applied, rollback of a failed add, repair
 * after a change made by hand, a lease of the other backend type ignored
 * once, a lease replaced by one with another PublicIP.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { BackendContext, BackendNetwork } from '../src/backends/backend';
import { HostGwBackend } from '../src/backends/host-gw/host-gw-backend';
import type { KernelBackendNetwork } from '../src/backends/kernel-network';
import { VxlanBackend } from '../src/backends/vxlan/vxlan-backend';
import type { Lease, LeaseAttrs, LeaseEvent } from '../src/lease/lease';
import { checkNetworkConfig, parseNetworkConfig } from '../src/lease/network-config';
import { RecordingLogger } from '../src/log';
import { RTPROT_FLANNEL_TS } from '../src/routing/rtnetlink';
import { formatIpv4, Ipv4Net, parseIpv4 } from '../src/util/ipv4';
import { eventually } from './helpers/eventually';
import { MemoryKernel } from './helpers/memory-kernel';
import { testLease } from './helpers/leases';

const OWN = Ipv4Net.parse('10.5.1.0/24');
const UNDERLAY = parseIpv4('192.168.1.1');

function setup(backendType: 'vxlan' | 'host-gw'): { kernel: MemoryKernel; log: RecordingLogger; ctx: BackendContext; published: LeaseAttrs[] } {
  const kernel = new MemoryKernel();
  const eth = kernel.addLink('eth0', { address: UNDERLAY, prefixLen: 24 });
  const log = new RecordingLogger();
  const published: LeaseAttrs[] = [];
  const ctx: BackendContext = {
    network: checkNetworkConfig(parseNetworkConfig(`{"Network":"10.5.0.0/16","Backend":{"Type":"${backendType}"}}`)),
    extIface: { name: 'eth0', index: eth.index, mtu: 1500, ifaceAddr: UNDERLAY, ifaceAddr6: undefined, extAddr: UNDERLAY, extAddr6: undefined },
    subnets: {
      acquireLease: async (attrs) => {
        published.push(attrs);
        return { subnet: OWN, ipv6Subnet: undefined, attrs, expiration: undefined };
      },
    },
    log,
    signal: new AbortController().signal,
  };
  return { kernel, log, ctx, published };
}

const lease = testLease;
const vxlanLease = (cidr: string, ip: string, mac: string) => lease(cidr, ip, 'vxlan', `{"VNI":1,"VtepMAC":"${mac}"}`);
const added = (l: Lease): LeaseEvent => ({ type: 'added', lease: l });
const removed = (l: Lease): LeaseEvent => ({ type: 'removed', lease: l });

/** Applies a batch and waits for the engine to finish it. */
function apply(bn: BackendNetwork, events: LeaseEvent[]): Promise<void> {
  return (bn as KernelBackendNetwork<unknown, unknown>).engine.applyLeases(events);
}

function vxlanState(k: MemoryKernel) {
  const dev = k.link('flannel.1')!;
  return {
    neighbors: k.neighbors.filter((n) => n.ifindex === dev.index).map((n) => `${formatIpv4(n.ip!)} ${n.mac}`).sort(),
    fdb: k.fdb.filter((n) => n.ifindex === dev.index).map((n) => `${n.mac} dst ${formatIpv4(n.ip!)}`).sort(),
    routes: k.routes.filter((r) => r.oif === dev.index).map((r) => `${r.dst} via ${formatIpv4(r.gateway!)}${r.onlink ? ' onlink' : ''}`).sort(),
  };
}

const hostRoutes = (k: MemoryKernel) => k.routes.filter((r) => r.gateway !== undefined).map((r) => `${r.dst} via ${formatIpv4(r.gateway!)}`).sort();

describe('kernel network engine: vxlan plan on an in-memory kernel', () => {
  test('registration: flannel.1 as upstream makes it, its MAC published as VtepMAC', async () => {
    const { kernel, ctx, published } = setup('vxlan');
    const bn = await new VxlanBackend().register(ctx, kernel);
    const dev = kernel.link('flannel.1')!;
    assert.equal(dev.mtu, 1450);
    assert.ok(dev.up);
    assert.equal(dev.vxlan!.vni, 1);
    assert.equal(dev.vxlan!.local, UNDERLAY);
    assert.equal(kernel.sysctls.get('net/ipv6/conf/flannel.1/accept_ra'), '0');
    assert.deepEqual(kernel.addresses.filter((a) => a.index === dev.index).map((a) => `${formatIpv4(a.address)}/${a.prefixLen}`), ['10.5.1.0/32']);
    assert.equal(published[0]!.backendData, `{"VNI":1,"VtepMAC":"${dev.mac}"}`);
    assert.equal(bn.mtu, 1450);
    await bn.stop();
    assert.ok(kernel.closed, 'stop closes the port');
    assert.ok(kernel.link('flannel.1'), 'stop leaves the device');
  });

  test('add and remove: neighbour, FDB entry and onlink route, then none', async () => {
    const { kernel, ctx, log } = setup('vxlan');
    const bn = await new VxlanBackend().register(ctx, kernel);
    bn.start();
    const a = vxlanLease('10.5.2.0/24', '192.168.1.2', 'aa:bb:cc:dd:ee:02');
    await apply(bn, [added(a)]);
    assert.deepEqual(vxlanState(kernel), {
      neighbors: ['10.5.2.0 aa:bb:cc:dd:ee:02'],
      fdb: ['aa:bb:cc:dd:ee:02 dst 192.168.1.2'],
      routes: ['10.5.2.0/24 via 10.5.2.0 onlink'],
    });
    assert.deepEqual(await bn.status().then((s) => [s.synced, s.routesDesired, s.routesInstalled]), [true, 1, 1]);
    await apply(bn, [removed(a)]);
    assert.deepEqual(vxlanState(kernel), { neighbors: [], fdb: [], routes: [] });
    assert.ok(log.records.some((r) => /^Subnet added: 10\.5\.2\.0\/24 at 192\.168\.1\.2/.test(r.msg)));
    assert.ok(log.records.some((r) => /^Subnet removed: 10\.5\.2\.0\/24/.test(r.msg)));
    await bn.stop();
  });

  test('stale entries of a previous run stay until the first batch is applied, then go', async () => {
    const { kernel, ctx } = setup('vxlan');
    // A previous run left flannel.1 with a peer that has since left.
    const first = await new VxlanBackend().register(ctx, kernel);
    first.start();
    await apply(first, [added(vxlanLease('10.5.9.0/24', '192.168.1.9', 'aa:bb:cc:dd:ee:09'))]);
    await first.stop();
    const bn = await new VxlanBackend().register(ctx, kernel);
    bn.start();
    const engine = (bn as KernelBackendNetwork<unknown, unknown>).engine;
    await engine.reconciler.runNow();
    assert.deepEqual(vxlanState(kernel).routes, ['10.5.9.0/24 via 10.5.9.0 onlink'], 'nothing removed before the leases are known');
    await apply(bn, [added(vxlanLease('10.5.2.0/24', '192.168.1.2', 'aa:bb:cc:dd:ee:02'))]);
    await eventually(() => vxlanState(kernel), (s) => s.routes.length === 1 && s.routes[0] === '10.5.2.0/24 via 10.5.2.0 onlink' && s.neighbors.length === 1 && s.fdb.length === 1, 2000, 'the stale peer removed');
    assert.equal(engine.reconciler.stats.repairsByKind['route'], 1);
    await bn.stop();
  });

  test('a failed add is rolled back, logged once, and retried by the reconciler', async () => {
    const { kernel, ctx, log } = setup('vxlan');
    const bn = await new VxlanBackend().register(ctx, kernel);
    bn.start();
    kernel.failNext((op) => op.op === 'replaceRoute', 'ENETUNREACH');
    await apply(bn, [added(vxlanLease('10.5.2.0/24', '192.168.1.2', 'aa:bb:cc:dd:ee:02'))]);
    assert.deepEqual(vxlanState(kernel), { neighbors: [], fdb: [], routes: [] }, 'the neighbour and FDB entry were undone');
    assert.equal(log.records.filter((r) => r.level === 'error' && /failed to add 10\.5\.2\.0\/24/.test(r.msg)).length, 1);
    const engine = (bn as KernelBackendNetwork<unknown, unknown>).engine;
    await engine.reconciler.runNow();
    assert.equal(vxlanState(kernel).routes.length, 1, 'the next reconcile installs it');
    assert.equal(engine.reconciler.lastFailure, '', 'a peer failure does not fail the reconciler');
    assert.ok(log.records.some((r) => /is installed now/.test(r.msg)));
    await bn.stop();
  });

  test('repair: a route deleted by hand is restored; the device deleted by hand comes back with its MAC and entries', async () => {
    const { kernel, ctx, log } = setup('vxlan');
    const bn = await new VxlanBackend().register(ctx, kernel);
    bn.start();
    await apply(bn, [added(vxlanLease('10.5.2.0/24', '192.168.1.2', 'aa:bb:cc:dd:ee:02')), added(vxlanLease('10.5.3.0/24', '192.168.1.3', 'aa:bb:cc:dd:ee:03'))]);
    const before = vxlanState(kernel);
    const dev = kernel.link('flannel.1')!;
    const mac = dev.mac;
    kernel.outOfBand({ op: 'deleteRoute', route: { dst: Ipv4Net.parse('10.5.2.0/24') } });
    await eventually(() => vxlanState(kernel), (s) => JSON.stringify(s) === JSON.stringify(before), 2000, 'the route restored');
    kernel.outOfBand({ op: 'deleteLink', ifindex: dev.index });
    await eventually(() => kernel.link('flannel.1') !== undefined && vxlanState(kernel), (s) => s !== false && JSON.stringify(s) === JSON.stringify(before), 2000, 'the device and its entries back');
    const again = kernel.link('flannel.1')!;
    assert.notEqual(again.index, dev.index);
    assert.equal(again.mac, mac, 'the MAC peers know');
    assert.deepEqual(kernel.addresses.filter((a) => a.index === again.index).map((a) => formatIpv4(a.address)), ['10.5.1.0']);
    assert.ok(log.records.some((r) => /^repaired: created flannel\.1/.test(r.msg)));
    await bn.stop();
  });

  test('a lease of another backend type is ignored, with one warning however often it comes', async () => {
    const { kernel, ctx, log } = setup('vxlan');
    const bn = await new VxlanBackend().register(ctx, kernel);
    bn.start();
    const other = lease('10.5.7.0/24', '192.168.1.7', 'host-gw');
    await apply(bn, [added(other)]);
    await apply(bn, [added(other)]);
    await apply(bn, [added(other)]);
    assert.deepEqual(vxlanState(kernel), { neighbors: [], fdb: [], routes: [] });
    assert.equal(log.records.filter((r) => /Ignoring non-vxlan subnet 10\.5\.7\.0\/24/.test(r.msg)).length, 1);
    await bn.stop();
  });

  test('a lease replaced by one with another PublicIP and MAC: new entries first, then the old FDB entry goes', async () => {
    const { kernel, ctx } = setup('vxlan');
    const bn = await new VxlanBackend().register(ctx, kernel);
    bn.start();
    await apply(bn, [added(vxlanLease('10.5.2.0/24', '192.168.1.2', 'aa:bb:cc:dd:ee:02'))]);
    const dev = kernel.link('flannel.1')!.index;
    const from = kernel.applied.length;
    await apply(bn, [added(vxlanLease('10.5.2.0/24', '192.168.1.22', 'aa:bb:cc:dd:ee:22'))]);
    assert.deepEqual(vxlanState(kernel), {
      neighbors: ['10.5.2.0 aa:bb:cc:dd:ee:22'],
      fdb: ['aa:bb:cc:dd:ee:22 dst 192.168.1.22'],
      routes: ['10.5.2.0/24 via 10.5.2.0 onlink'],
    });
    assert.deepEqual(
      kernel.applied.slice(from).map((o) => o.op),
      ['replaceNeighbor', 'replaceFdb', 'replaceRoute', 'deleteFdb'],
      'make before break: the neighbour and route are overwritten in place, only the old FDB entry is deleted',
    );
    assert.ok(kernel.applied.slice(from).every((o) => !('ifindex' in o) || o.ifindex === dev));
    await bn.stop();
  });
});

describe('kernel network engine: host-gw plan on an in-memory kernel', () => {
  test('add and remove: a route via the PublicIP through the external interface, then none', async () => {
    const { kernel, ctx, published } = setup('host-gw');
    const bn = await new HostGwBackend().register(ctx, kernel);
    assert.equal(published[0]!.backendType, 'host-gw');
    assert.equal(bn.mtu, 1500);
    bn.start();
    const a = lease('10.5.2.0/24', '192.168.1.2', 'host-gw');
    await apply(bn, [added(a)]);
    assert.deepEqual(hostRoutes(kernel), ['10.5.2.0/24 via 192.168.1.2']);
    assert.equal(kernel.routes[0]!.oif, kernel.link('eth0')!.index);
    assert.equal(kernel.routes[0]!.protocol, RTPROT_FLANNEL_TS);
    await apply(bn, [removed(a)]);
    assert.deepEqual(hostRoutes(kernel), []);
    await bn.stop();
  });

  test('a route of ours for a subnet no lease wants is removed once the first batch is applied', async () => {
    const { kernel, ctx, log } = setup('host-gw');
    const eth = kernel.link('eth0')!.index;
    kernel.outOfBand({ op: 'replaceRoute', route: { dst: Ipv4Net.parse('10.5.9.0/24'), gateway: parseIpv4('192.168.1.9'), oif: eth, protocol: RTPROT_FLANNEL_TS } });
    kernel.outOfBand({ op: 'replaceRoute', route: { dst: Ipv4Net.parse('10.5.8.0/24'), gateway: parseIpv4('192.168.1.8'), oif: eth, protocol: 3 } });
    const bn = await new HostGwBackend().register(ctx, kernel);
    bn.start();
    await (bn as KernelBackendNetwork<unknown, unknown>).engine.reconciler.runNow();
    assert.equal(hostRoutes(kernel).length, 2, 'nothing removed before the leases are known');
    await apply(bn, []);
    await eventually(() => hostRoutes(kernel), (r) => JSON.stringify(r) === JSON.stringify(['10.5.8.0/24 via 192.168.1.8']), 2000, 'the stale route of ours gone, the proto boot one kept');
    assert.ok(log.records.some((r) => /^repaired: removed stale route: ip route del 10\.5\.9\.0\/24 via 192\.168\.1\.9 dev eth0/.test(r.msg)));
    await bn.stop();
  });

  test('an off-link peer is explained once, is not routed, and does not make the node unready', async () => {
    const { kernel, ctx, log } = setup('host-gw');
    const bn = await new HostGwBackend().register(ctx, kernel);
    bn.start();
    await apply(bn, [added(lease('10.5.2.0/24', '10.99.99.99', 'host-gw')), added(lease('10.5.3.0/24', '192.168.1.3', 'host-gw'))]);
    assert.deepEqual(hostRoutes(kernel), ['10.5.3.0/24 via 192.168.1.3'], 'the good peer is routed');
    const engine = (bn as KernelBackendNetwork<unknown, unknown>).engine;
    await engine.reconciler.runNow();
    await engine.reconciler.runNow();
    const errors = log.records.filter((r) => /^Error adding route to 10\.5\.2\.0\/24 via 10\.99\.99\.99 dev eth0: .*same layer-2 segment/.test(r.msg));
    assert.equal(errors.length, 1);
    assert.equal(engine.reconciler.lastFailure, '');
    assert.deepEqual(await bn.status().then((s) => [s.routesDesired, s.routesInstalled]), [2, 1]);
    await bn.stop();
  });

  test('a route deleted by hand is recovered, with upstream\'s log words', async () => {
    const { kernel, ctx, log } = setup('host-gw');
    const bn = await new HostGwBackend().register(ctx, kernel);
    bn.start();
    await apply(bn, [added(lease('10.5.2.0/24', '192.168.1.2', 'host-gw'))]);
    kernel.outOfBand({ op: 'deleteRoute', route: { dst: Ipv4Net.parse('10.5.2.0/24') } });
    await eventually(() => hostRoutes(kernel), (r) => r.length === 1, 2000, 'the route recovered');
    assert.ok(log.records.some((r) => /^repaired: Route recovered 10\.5\.2\.0\/24 : 192\.168\.1\.2/.test(r.msg)));
    await bn.stop();
  });

  test('a lease of another backend type is ignored once; a lease with another PublicIP replaces the route', async () => {
    const { kernel, ctx, log } = setup('host-gw');
    const bn = await new HostGwBackend().register(ctx, kernel);
    bn.start();
    const other = lease('10.5.7.0/24', '192.168.1.7', 'vxlan', '{"VNI":1,"VtepMAC":"aa:bb:cc:dd:ee:07"}');
    await apply(bn, [added(other), added(other)]);
    assert.equal(log.records.filter((r) => r.msg === 'Ignoring non-host-gw subnet: type=vxlan').length, 1);
    await apply(bn, [added(lease('10.5.2.0/24', '192.168.1.2', 'host-gw'))]);
    await apply(bn, [added(lease('10.5.2.0/24', '192.168.1.22', 'host-gw'))]);
    assert.deepEqual(hostRoutes(kernel), ['10.5.2.0/24 via 192.168.1.22'], 'exactly one route, via the new gateway (upstream TestRouteCache)');
    await bn.stop();
  });
});
