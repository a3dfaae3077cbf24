/**
 * The TypeScript facade over the datapath, against a fake addon (pure logic:
 * argument conversion, error mapping, stats shaping), plus the real addon's
 * load-time contract check.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TunOpenError, UdpSocketError } from '../src/forwarder/errors';
import * as fs from 'node:fs';
import { loadAddon } from '../src/addon/loader';
import {
  COUNTER_NAMES,
  type DatapathAddon,
  loadDatapathAddon,
  type NativeDatapath,
  type NativeRefusal,
  type NativeUpdate,
} from '../src/forwarder/native-datapath';
import { TEST_ADDON_FILE, TEST_FAULTS } from '../lab/test-addon';
import { UdpForwarder } from '../src/forwarder/udp-forwarder';
import { Ipv4Net } from '../src/util/ipv4';
import { Ipv6Net } from '../src/util/ipv6';

function systemError(syscall: string, code: string, errno: number): Error {
  return Object.assign(new Error(`${syscall}: something (${code})`), { syscall, code, errno });
}

class FakeDatapath implements NativeDatapath {
  static last: FakeDatapath | undefined;
  calls: Array<[string, unknown[]]> = [];
  openError: Error | undefined;
  bindError: Error | undefined;
  constructor() {
    FakeDatapath.last = this;
  }
  openTun(t: string, o?: unknown) {
    this.calls.push(['openTun', [t, o]]);
    if (this.openError) throw this.openError;
    return { name: 'flannel0', queues: 1 };
  }
  bindUdp(o: unknown) {
    this.calls.push(['bindUdp', [o]]);
    if (this.bindError) throw this.bindError;
    return { busySourcePorts: [8290], busySourcePorts6: [] };
  }
  start(o: unknown) {
    this.calls.push(['start', [o]]);
  }
  update(u: NativeUpdate) {
    this.calls.push(['update', [u]]);
  }
  stats() {
    const counters = Object.fromEntries(COUNTER_NAMES.map((n, i) => [n, i])) as never;
    return { counters, routes: 2, peers: 1, retiredTables: 0, running: true, workers: 1 };
  }
  drainRefusals(): NativeRefusal[] {
    return [{ sender: '192.0.2.7', reason: 'ingress_drop_unknown_source' }];
  }
  close() {
    this.calls.push(['close', []]);
  }
}

const fakeAddon: DatapathAddon = { Datapath: FakeDatapath, counterNames: COUNTER_NAMES };

test('routes are sent as masked networks with peer and port, each update as one call', () => {
  const f = new UdpForwarder(fakeAddon);
  f.update({ routes: [{ subnet: Ipv4Net.parse('10.5.2.7/24'), peer: '192.168.1.2', port: 8285 }] });
  f.update({
    setRoutes: [{ subnet: Ipv4Net.parse('10.5.3.0/24'), peer: '192.168.1.3', port: 9000 }],
    removeRoutes: [Ipv4Net.parse('10.5.2.0/24')],
    peers: [{ address: '192.168.1.3', partialChecksums: false }],
    localAddresses: ['192.168.1.1', 'fd00::1'],
  });
  const calls = FakeDatapath.last!.calls;
  assert.deepEqual(calls[0], ['update', [{ routes: [{ network: '10.5.2.0', prefixLen: 24, peer: '192.168.1.2', port: 8285 }] }]]);
  assert.deepEqual(calls[1], [
    'update',
    [
      {
        setRoutes: [{ network: '10.5.3.0', prefixLen: 24, peer: '192.168.1.3', port: 9000 }],
        removeRoutes: [{ network: '10.5.2.0', prefixLen: 24 }],
        peers: [{ address: '192.168.1.3', flags: 0 }],
        localAddresses: ['192.168.1.1', 'fd00::1'],
      },
    ],
  ]);
  assert.equal(calls.length, 2);
});

test('workers: TUN queues and sockets are passed through', () => {
  const f = new UdpForwarder(fakeAddon);
  f.openTun('flannel%d', { queues: 3, vnetHdr: true });
  f.bindUdp({ address: '192.168.1.1', port: 8285, sockets: 3 });
  const calls = FakeDatapath.last!.calls;
  assert.deepEqual(calls[0], ['openTun', ['flannel%d', { queues: 3, vnetHdr: true }]]);
  assert.equal((calls[1]![1][0] as { sockets: number }).sockets, 3);
});

test('socket buffers default to 4 MiB; busy source ports are reported; close is idempotent', () => {
  const f = new UdpForwarder(fakeAddon);
  assert.deepEqual(f.bindUdp({ address: '192.168.1.1', port: 8285 }), { busySourcePorts: [8290], busySourcePorts6: [] });
  f.close();
  f.close();
  const calls = FakeDatapath.last!.calls;
  assert.deepEqual(calls[0], [
    'bindUdp',
    [{ address: '192.168.1.1', port: 8285, receiveBufferBytes: 4194304, sendBufferBytes: 4194304, sockets: 1, sourcePorts: 0 }],
  ]);
  assert.equal(calls.filter((c) => c[0] === 'close').length, 1);
});

test('TUN open errors name the problem and the fix', () => {
  const cases: Array<[string, string, RegExp]> = [
    ['open /dev/net/tun', 'ENOENT', /failed to open TUN device: open \/dev\/net\/tun: .*hostPath .*\/dev\/net\/tun.*mknod/],
    ['ioctl TUNSETIFF', 'EPERM', /failed to open TUN device: ioctl TUNSETIFF: .*needs CAP_NET_ADMIN.*grep CapEff/],
    // The open itself is the device cgroup's (or the file mode's) to refuse, never the capability's.
    ['open /dev/net/tun', 'EPERM', /failed to open TUN device: open \/dev\/net\/tun: .*device cgroup.*not a missing capability.*c 10:200/],
    ['open /dev/net/tun', 'EACCES', /device cgroup.*ls -l \/dev\/net\/tun/],
    ['open /dev/net/tun', 'ENODEV', /modprobe tun/],
    ['ioctl TUNSETIFF', 'EBUSY', /exists and is not a free TUN device/],
    ['ioctl TUNSETIFF', 'EFAULT', /failed to open TUN device: ioctl TUNSETIFF: something \(EFAULT\)/],
  ];
  for (const [syscall, code, pattern] of cases) {
    const f = new UdpForwarder(fakeAddon);
    FakeDatapath.last!.openError = systemError(syscall, code, 1);
    assert.throws(
      () => f.openTun('flannel%d'),
      (e: unknown) => e instanceof TunOpenError && e.code === code && e.op === syscall && pattern.test(e.message),
      `${syscall} ${code}`,
    );
  }
});

test('UDP bind errors keep upstream\'s words and add advice', () => {
  const f = new UdpForwarder(fakeAddon);
  FakeDatapath.last!.bindError = systemError('bind', 'EADDRINUSE', 98);
  assert.throws(
    () => f.bindUdp({ address: '192.168.1.1', port: 8285 }),
    (e: unknown) =>
      e instanceof UdpSocketError &&
      /^failed to start listening on UDP socket 192\.168\.1\.1:8285: bind: .*taken/.test(e.message) &&
      e.recoverable,
  );
});

test('stats are shaped by direction and drop reason', () => {
  const f = new UdpForwarder(fakeAddon);
  const s = f.stats();
  assert.equal(s.get('egress_read_packets'), 0);
  assert.deepEqual(Object.keys(s.drops('egress')), [
    'not_ipv4',
    'too_short',
    'bad_header',
    'no_route',
    'ttl_expired',
    'send_error',
    'bad_offload',
    'bad_checksum',
    'ipv6_link_scoped',
    'ipv6_peer_incapable',
    'oversize',
  ]);
  assert.deepEqual(Object.keys(s.drops('ingress')), [
    'oversize',
    'unknown_source',
    'not_ipv4',
    'too_short',
    'bad_header',
    'ttl_expired',
    'tun_write_error',
    'spoofed_source',
    'foreign_destination',
    'ipv6_sender_incapable',
    'martian_source',
    'source_port',
  ]);
  assert.equal(s.drops('ingress')['unknown_source'], COUNTER_NAMES.indexOf('ingress_drop_unknown_source'));
  assert.equal(s.routes, 2);
  assert.deepEqual(f.drainRefusals(), [{ sender: '192.0.2.7', reason: 'ingress_drop_unknown_source' }]);
});

test('the ingress policy is sent with its networks as masked prefixes', () => {
  const f = new UdpForwarder(fakeAddon);
  f.update({ policy: { sourceCheck: true, allowExternalSources: false, partialChecksums: true, ownSubnet: Ipv4Net.parse('10.5.1.0/24'), network: Ipv4Net.parse('10.5.0.0/16') } });
  assert.deepEqual(FakeDatapath.last!.calls[0], [
    'update',
    [{ policy: { sourceCheck: true, allowExternalSources: false, partialChecksums: true, ownSubnet: { network: '10.5.1.0', prefixLen: 24 }, network: { network: '10.5.0.0', prefixLen: 16 } } }],
  ]);
  f.update({ peers: [{ address: '192.0.2.1', partialChecksums: true }, { address: '192.0.2.2', partialChecksums: false }] });
  assert.deepEqual(FakeDatapath.last!.calls[1], ['update', [{ peers: [{ address: '192.0.2.1', flags: 1 }, { address: '192.0.2.2', flags: 0 }] }]]);
  f.update({ routes: [{ subnet: Ipv4Net.parse('10.5.2.0/24'), peer: '192.0.2.1', port: 8285, partialChecksums: true }] });
  assert.deepEqual(FakeDatapath.last!.calls[2], ['update', [{ routes: [{ network: '10.5.2.0', prefixLen: 24, peer: '192.0.2.1', port: 8285, flags: 1 }] }]]);
});

test('inner IPv6: v6 routes, the ipv6 peer flag and the v6 networks of the policy reach the addon', () => {
  const f = new UdpForwarder(fakeAddon);
  const subnet6 = Ipv6Net.tryParse('fd00:5:0:2::/64')!;
  f.update({ setRoutes: [{ subnet: subnet6, peer: '192.0.2.1', port: 8285, ipv6: true }], removeRoutes: [Ipv6Net.tryParse('fd00:5:0:9::/64')!] });
  assert.deepEqual(FakeDatapath.last!.calls[0], ['update', [{ setRoutes: [{ network: 'fd00:5:0:2::', prefixLen: 64, peer: '192.0.2.1', port: 8285, flags: 2 }], removeRoutes: [{ network: 'fd00:5:0:9::', prefixLen: 64 }] }]]);
  f.update({ peers: [{ address: '192.0.2.1', partialChecksums: true, ipv6: true }] });
  assert.deepEqual(FakeDatapath.last!.calls[1], ['update', [{ peers: [{ address: '192.0.2.1', flags: 3 }] }]]);
  f.update({
    policy: {
      sourceCheck: true,
      allowExternalSources: false,
      partialChecksums: false,
      ownSubnet: Ipv4Net.parse('10.5.1.0/24'),
      network: Ipv4Net.parse('10.5.0.0/16'),
      ownSubnet6: Ipv6Net.tryParse('fd00:5:0:1::/64')!,
      network6: Ipv6Net.tryParse('fd00:5::/48')!,
    },
  });
  const sent = (FakeDatapath.last!.calls[2]![1] as Array<{ policy: Record<string, unknown> }>)[0]!.policy;
  assert.deepEqual([sent['ownSubnet6'], sent['network6']], [{ network: 'fd00:5:0:1::', prefixLen: 64 }, { network: 'fd00:5::', prefixLen: 48 }]);
  // The real addon takes them, and refuses a v6 prefix beyond 128.
  const dp = new (loadDatapathAddon().Datapath)();
  dp.update({ routes: [{ network: 'fd00:5:0:2::5', prefixLen: 64, peer: '1.2.3.4', port: 8285, flags: 2 }, { network: '10.5.2.0', prefixLen: 24, peer: '1.2.3.4', port: 8285 }] });
  assert.equal(dp.stats().routes, 2);
  dp.update({ removeRoutes: [{ network: 'fd00:5:0:2::', prefixLen: 64 }] });
  assert.equal(dp.stats().routes, 1);
  assert.throws(() => dp.update({ routes: [{ network: 'fd00::', prefixLen: 129, peer: '1.2.3.4', port: 8285 }] }), /prefixLen/);
  assert.throws(() => dp.update({ policy: { sourceCheck: true, allowExternalSources: false, ownSubnet: { network: '10.5.1.0', prefixLen: 24 }, network: { network: '10.5.0.0', prefixLen: 16 }, ownSubnet6: { network: 'nope', prefixLen: 64 }, network6: { network: 'fd00::', prefixLen: 48 } } }), /IPv6 address/);
  dp.close();
});

test('the real addon loads and reports the counters this code knows', () => {
  const addon = loadDatapathAddon();
  assert.deepEqual([...addon.counterNames], [...COUNTER_NAMES]);
  const dp = new addon.Datapath();
  // Argument validation happens in the addon without root.
  assert.throws(() => dp.update({ routes: [{ network: '10.5.1.0', prefixLen: 33, peer: '1.2.3.4', port: 8285 }] }), /prefixLen/);
  assert.throws(() => dp.update({ routes: [{ network: 'x', prefixLen: 24, peer: '1.2.3.4', port: 8285 }] }), /route network/);
  assert.throws(() => dp.update({ peers: ['1.2.3'] }), /peer address/);
  assert.throws(() => dp.update({ peers: [{ address: '1.2.3.4', flags: 256 }] }), /flags/);
  assert.throws(() => dp.update({ localAddresses: ['1.2.3'] }), /local address/);
  assert.throws(() => dp.update({ routes: [], setRoutes: [{ network: '10.5.1.0', prefixLen: 24, peer: '1.2.3.4', port: 8285 }] }), /not both/);
  dp.update({ peers: ['1.2.3.4', { address: '1.2.3.5', flags: 1 }] });
  assert.equal(dp.stats().peers, 2);
  assert.throws(() => dp.update({ policy: { sourceCheck: true, allowExternalSources: false, ownSubnet: { network: '10.5.1.0', prefixLen: 33 }, network: { network: '10.5.0.0', prefixLen: 16 } } }), /prefixLen/);
  // One update with a bad part changes nothing: the routes and peers stay.
  assert.throws(() => dp.update({ routes: [{ network: '10.5.9.0', prefixLen: 24, peer: '1.2.3.4', port: 8285 }], peers: ['bad'] }), /peer address/);
  assert.equal(dp.stats().routes, 0);
  assert.equal(dp.stats().peers, 2);
  dp.update({ routes: [{ network: '10.5.1.9', prefixLen: 24, peer: '1.2.3.4', port: 8285 }], localAddresses: ['192.168.1.1', 'fd00::1'] });
  assert.equal(dp.stats().routes, 1);
  assert.equal(dp.stats().running, false);
  dp.close();
  assert.throws(() => dp.stats(), /called after close/);
});

test('the release addon holds no test fault; the test build holds them all', () => {
  const release = fs.readFileSync(loadAddon().file).toString('latin1');
  assert.match(loadAddon().file, /build\/Release\/flannel_native\.node$/, 'the release addon is what flanneld loads');
  for (const name of [...TEST_FAULTS, 'testFaults']) assert.ok(!release.includes(name), `the release addon mentions ${name}`);
  const testBuild = fs.readFileSync(TEST_ADDON_FILE).toString('latin1');
  for (const name of [...TEST_FAULTS, 'testFaults']) assert.ok(testBuild.includes(name), `the test build knows ${name}`);
});
