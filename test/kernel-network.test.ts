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
import { RecordingLogger } from '../src/logging';
import { RTPROT_FLANNEL_TS } from '../src/routing/rtnetlink';
import { formatIp } from '../src/util/ip';
import { Ipv4Net, parseIpv4 } from '../src/util/ipv4';
import { eventually } from './helpers/eventually';
import { MemoryKernel } from './helpers/memory-kernel';
import { memoryBackendSetup, OWN_SUBNET as OWN, UNDERLAY_ADDRESS as UNDERLAY } from './helpers/backend-context';
import { fixedLocalAddresses } from '../src/routing/local-addresses';
import { testLease, testLease6 } from './helpers/leases';
import { Ipv6Net, tryParseIpv6 } from '../src/util/ipv6';


function setup(backendType: 'vxlan' | 'host-gw') {
  return memoryBackendSetup(`{"Network":"10.5.0.0/16","Backend":{"Type":"${backendType}"}}`);
}

const lease = testLease;
const vxlanLease = (cidr: string, ip: string, mac: string) => lease(cidr, ip, 'vxlan', `{"VNI":1,"VtepMAC":"${mac}"}`);
const added = (l: Lease): LeaseEvent => ({ type: 'added', lease: l });
const removed = (l: Lease): LeaseEvent => ({ type: 'removed', lease: l });

/** Applies a batch and waits for the engine to finish it. */
function apply(bn: BackendNetwork, events: LeaseEvent[]): Promise<void> {
  return (bn as KernelBackendNetwork).engine.applyLeases(events);
}

function vxlanState(k: MemoryKernel) {
  const dev = k.link('flannel.1')!;
  return {
    neighbors: k.neighbors.filter((n) => n.ifindex === dev.index).map((n) => `${formatIp(n.ip!)} ${n.mac}`).sort(),
    fdb: k.fdb.filter((n) => n.ifindex === dev.index).map((n) => `${n.mac} dst ${formatIp(n.ip!)}`).sort(),
    routes: k.routes.filter((r) => r.oif === dev.index).map((r) => `${r.dst} via ${formatIp(r.gateway!)}${r.onlink ? ' onlink' : ''}`).sort(),
  };
}

const hostRoutes = (k: MemoryKernel) => k.routes.filter((r) => r.gateway !== undefined).map((r) => `${r.dst} via ${formatIp(r.gateway!)}`).sort();

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
    assert.deepEqual(kernel.addresses.filter((a) => a.index === dev.index).map((a) => `${formatIp(a.address)}/${a.prefixLen}`), ['10.5.1.0/32']);
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

  test('two routed leases of one machine (one PublicIP, one VtepMAC): removing one keeps the FDB entry the other needs', async () => {
    const { kernel, ctx } = setup('vxlan');
    const bn = await new VxlanBackend().register(ctx, kernel);
    bn.start();
    // A stale lease from before a reinstall beside the node's current one.
    const stale = vxlanLease('10.5.2.0/24', '192.168.1.2', 'aa:bb:cc:dd:ee:02');
    const current = vxlanLease('10.5.7.0/24', '192.168.1.2', 'aa:bb:cc:dd:ee:02');
    await apply(bn, [added(stale), added(current)]);
    assert.deepEqual(vxlanState(kernel).fdb, ['aa:bb:cc:dd:ee:02 dst 192.168.1.2']);
    await apply(bn, [removed(stale)]);
    assert.deepEqual(vxlanState(kernel), {
      neighbors: ['10.5.7.0 aa:bb:cc:dd:ee:02'],
      fdb: ['aa:bb:cc:dd:ee:02 dst 192.168.1.2'],
      routes: ['10.5.7.0/24 via 10.5.7.0 onlink'],
    });
    await apply(bn, [removed(current)]);
    assert.deepEqual(vxlanState(kernel), { neighbors: [], fdb: [], routes: [] });
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
    const engine = (bn as KernelBackendNetwork).engine;
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
    const engine = (bn as KernelBackendNetwork).engine;
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
    assert.deepEqual(kernel.addresses.filter((a) => a.index === again.index).map((a) => formatIp(a.address)), ['10.5.1.0']);
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

  test('two routed leases with one PublicIP are two routes: removing one keeps the other', async () => {
    const { kernel, ctx } = setup('host-gw');
    const bn = await new HostGwBackend().register(ctx, kernel);
    bn.start();
    const a = lease('10.5.2.0/24', '192.168.1.2', 'host-gw');
    const b = lease('10.5.7.0/24', '192.168.1.2', 'host-gw');
    await apply(bn, [added(a), added(b)]);
    assert.deepEqual(hostRoutes(kernel), ['10.5.2.0/24 via 192.168.1.2', '10.5.7.0/24 via 192.168.1.2']);
    await apply(bn, [removed(a)]);
    assert.deepEqual(hostRoutes(kernel), ['10.5.7.0/24 via 192.168.1.2']);
    await (bn as KernelBackendNetwork).engine.reconciler.runNow();
    assert.deepEqual(hostRoutes(kernel), ['10.5.7.0/24 via 192.168.1.2']);
    await bn.stop();
  });

  test('a route of ours for a subnet no lease wants is removed once the first batch is applied', async () => {
    const { kernel, ctx, log } = setup('host-gw');
    const eth = kernel.link('eth0')!.index;
    kernel.outOfBand({ op: 'replaceRoute', route: { dst: Ipv4Net.parse('10.5.9.0/24'), gateway: parseIpv4('192.168.1.9'), oif: eth, protocol: RTPROT_FLANNEL_TS } });
    kernel.outOfBand({ op: 'replaceRoute', route: { dst: Ipv4Net.parse('10.5.8.0/24'), gateway: parseIpv4('192.168.1.8'), oif: eth, protocol: 3 } });
    const bn = await new HostGwBackend().register(ctx, kernel);
    bn.start();
    await (bn as KernelBackendNetwork).engine.reconciler.runNow();
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
    const engine = (bn as KernelBackendNetwork).engine;
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

describe('kernel network engine: dual stack (a plan per address family)', () => {
  const OWN6 = Ipv6Net.tryParse('fd00:5:1::/64')!;
  const UNDERLAY6 = tryParseIpv6('fd99::1')!;

  function setup6(backendType: 'vxlan' | 'host-gw', v4 = true) {
    const kernel = new MemoryKernel();
    const eth = kernel.addLink('eth0', { address: UNDERLAY, prefixLen: 24 });
    kernel.addresses.push({ index: eth.index, address: UNDERLAY6, prefixLen: 64 });
    const log = new RecordingLogger();
    const published: LeaseAttrs[] = [];
    const v4part = v4 ? '"Network":"10.5.0.0/16",' : '"EnableIPv4":false,';
    const ctx: BackendContext = {
      network: checkNetworkConfig(parseNetworkConfig(`{${v4part}"EnableIPv6":true,"IPv6Network":"fd00:5::/48","IPv6SubnetLen":64,"Backend":{"Type":"${backendType}"}}`)),
      extIface: { name: 'eth0', index: eth.index, mtu: 1500, ifaceAddr: v4 ? UNDERLAY : undefined, ifaceAddr6: UNDERLAY6, extAddr: v4 ? UNDERLAY : undefined, extAddr6: UNDERLAY6 },
      localAddresses: fixedLocalAddresses(),
      subnets: {
        acquireLease: async (attrs) => {
          published.push(attrs);
          return { subnet: v4 ? OWN : new Ipv4Net(0, 0), ipv6Subnet: OWN6, attrs, expiration: undefined };
        },
      },
      log,
      signal: new AbortController().signal,
    };
    return { kernel, log, ctx, published };
  }

  /** Applies to every family's engine. */
  const applyAll = (bn: BackendNetwork, events: LeaseEvent[]) => Promise.all((bn as KernelBackendNetwork).engines.map((e) => e.applyLeases(events)));
  const v6State = (k: MemoryKernel) => {
    const dev = k.link('flannel-v6.1')!;
    return {
      neighbors: k.neighbors.filter((n) => n.ifindex === dev.index).map((n) => `${formatIp(n.ip!)} ${n.mac}`).sort(),
      fdb: k.fdb.filter((n) => n.ifindex === dev.index).map((n) => `${n.mac} dst ${formatIp(n.ip!)}`).sort(),
      routes: k.routes.filter((r) => r.oif === dev.index).map((r) => `${r.dst} via ${formatIp(r.gateway!)}${r.onlink ? ' onlink' : ''}`).sort(),
    };
  };
  const mac6 = (m: string) => `{"VNI":1,"VtepMAC":"${m}"}`;

  test('vxlan: flannel-v6.1 beside flannel.1, its MAC in BackendV6Data, the own v6 subnet address /128', async () => {
    const { kernel, ctx, published } = setup6('vxlan');
    const bn = await new VxlanBackend().register(ctx, kernel);
    const dev6 = kernel.link('flannel-v6.1')!;
    assert.equal(dev6.vxlan!.local, UNDERLAY6);
    assert.equal(dev6.mtu, 1430, 'IPv6 underlay: 70 bytes of overhead (the kernel refuses more)');
    assert.equal(kernel.link('flannel.1')!.mtu, 1450);
    assert.equal(bn.mtu, 1430, 'FLANNEL_MTU: the smaller, so full-size packets fit both devices');
    assert.equal(kernel.sysctls.get('net/ipv6/conf/flannel-v6.1/accept_ra'), '0');
    assert.deepEqual(kernel.addresses.filter((a) => a.index === dev6.index).map((a) => `${formatIp(a.address)}/${a.prefixLen}`), ['fd00:5:1::/128']);
    assert.equal(published[0]!.backendV6Data, `{"VNI":1,"VtepMAC":"${dev6.mac}"}`);
    assert.equal(published[0]!.publicIpv6, UNDERLAY6);
    assert.equal((bn as KernelBackendNetwork).engines.length, 2);
    assert.ok(new VxlanBackend().ownsDevice(dev6), 'flanneld cleanup finds flannel-v6.<VNI>');
    await bn.stop();
  });

  test('vxlan: a dual-stack peer gets entries in both families; a v4-only peer only v4; its v6 part moving replaces them; losing it withdraws them', async () => {
    const { kernel, ctx } = setup6('vxlan');
    const bn = await new VxlanBackend().register(ctx, kernel);
    bn.start();
    const dual = testLease6('10.5.2.0/24', '192.168.1.2', 'fd00:5:2::/64', 'fd99::2', 'vxlan', mac6('aa:bb:cc:dd:ee:02'), mac6('aa:bb:cc:dd:66:02'));
    const v4only = vxlanLease('10.5.3.0/24', '192.168.1.3', 'aa:bb:cc:dd:ee:03');
    await applyAll(bn, [added(dual), added(v4only)]);
    assert.deepEqual(vxlanState(kernel).routes, ['10.5.2.0/24 via 10.5.2.0 onlink', '10.5.3.0/24 via 10.5.3.0 onlink']);
    assert.deepEqual(v6State(kernel), {
      neighbors: ['fd00:5:2:: aa:bb:cc:dd:66:02'],
      fdb: ['aa:bb:cc:dd:66:02 dst fd99::2'],
      routes: ['fd00:5:2::/64 via fd00:5:2:: onlink'],
    });
    const moved = testLease6('10.5.2.0/24', '192.168.1.2', 'fd00:5:22::/64', 'fd99::22', 'vxlan', mac6('aa:bb:cc:dd:ee:02'), mac6('aa:bb:cc:dd:66:22'));
    await applyAll(bn, [added(moved)]);
    assert.deepEqual(v6State(kernel), {
      neighbors: ['fd00:5:22:: aa:bb:cc:dd:66:22'],
      fdb: ['aa:bb:cc:dd:66:22 dst fd99::22'],
      routes: ['fd00:5:22::/64 via fd00:5:22:: onlink'],
    }, 'the old v6 entries are gone');
    await applyAll(bn, [added(lease('10.5.2.0/24', '192.168.1.2', 'vxlan', mac6('aa:bb:cc:dd:ee:02')))]);
    assert.deepEqual(v6State(kernel), { neighbors: [], fdb: [], routes: [] }, 'a lease that lost its v6 part withdraws it');
    assert.equal(vxlanState(kernel).routes.length, 2, 'v4 untouched');
    await bn.stop();
  });

  test('vxlan, v6 only: one engine, flannel-v6.1 alone, PublicIP 0.0.0.0 peers routed by their v6 part', async () => {
    const { kernel, ctx, published } = setup6('vxlan', false);
    const bn = await new VxlanBackend().register(ctx, kernel);
    bn.start();
    assert.equal(kernel.link('flannel.1'), undefined);
    assert.equal(published[0]!.publicIp, 0);
    assert.equal(published[0]!.backendData, undefined);
    const peer = testLease6('0.0.0.0/0', '0.0.0.0', 'fd00:5:2::/64', 'fd99::2', 'vxlan', undefined, mac6('aa:bb:cc:dd:66:02'));
    const peer2 = testLease6('0.0.0.0/0', '0.0.0.0', 'fd00:5:3::/64', 'fd99::3', 'vxlan', undefined, mac6('aa:bb:cc:dd:66:03'));
    await applyAll(bn, [added(peer), added(peer2)]);
    assert.deepEqual(v6State(kernel).routes, ['fd00:5:2::/64 via fd00:5:2:: onlink', 'fd00:5:3::/64 via fd00:5:3:: onlink'], 'two v6-only peers do not collide');
    await applyAll(bn, [removed(peer)]);
    assert.deepEqual(v6State(kernel).routes, ['fd00:5:3::/64 via fd00:5:3:: onlink']);
    await bn.stop();
  });

  test('host-gw: v6 routes via PublicIPv6 through the external interface, repaired like v4', async () => {
    const { kernel, ctx, log } = setup6('host-gw');
    const bn = await new HostGwBackend().register(ctx, kernel);
    bn.start();
    await applyAll(bn, [added(testLease6('10.5.2.0/24', '192.168.1.2', 'fd00:5:2::/64', 'fd99::2', 'host-gw'))]);
    assert.deepEqual(hostRoutes(kernel), ['10.5.2.0/24 via 192.168.1.2', 'fd00:5:2::/64 via fd99::2']);
    kernel.outOfBand({ op: 'deleteRoute', route: { dst: Ipv6Net.tryParse('fd00:5:2::/64')! } });
    await eventually(() => hostRoutes(kernel), (r) => r.length === 2, 2000, 'the v6 route recovered');
    assert.ok(log.records.some((r) => /Route recovered fd00:5:2::\/64 : fd99::2/.test(r.msg)), log.records.map((r) => r.msg).join("\n"));
    assert.deepEqual(await bn.status().then((s) => [s.routesDesired, s.routesInstalled]), [2, 2]);
    await bn.stop();
  });
});
