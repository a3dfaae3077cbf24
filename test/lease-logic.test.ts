/**
 * Pure lease logic: allocation (docs/compatibility.md §3.5), the diffing core of the lease
 * watch (docs/compatibility.md §3.8), reading the previous subnet.env (docs/compatibility.md §4.3).
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { fitsConfig, freeIpv4Candidates, MAX_CANDIDATES, OutOfSubnetsError, pickFreeSubnet } from '../src/lease/allocator';
import { RemoteLeaseSet } from '../src/lease/remote-leases';
import { checkNetworkConfig, parseNetworkConfig } from '../src/lease/network-config';
import { parseDotenv, readPreviousSubnets } from '../src/lease/subnet-file';
import { Ipv4Net, parseIpv4 } from '../src/util/ipv4';
import { testLease } from './helpers/leases';

const cfgOf = (json: string) => checkNetworkConfig(parseNetworkConfig(json));
// upstream's fixture (subnet_test.go).
const fixture = cfgOf('{"Network":"10.3.0.0/16","SubnetMin":"10.3.1.0","SubnetMax":"10.3.25.0"}');
const taken = (...cidrs: string[]) => cidrs.map((c) => ({ subnet: Ipv4Net.parse(c), ipv6Subnet: undefined }));

test('allocation stays in range and avoids existing leases, even out-of-range ones', () => {
  const existing = taken('10.3.1.0/24', '10.3.2.0/24', '10.3.4.0/24', '10.3.5.0/24', '10.3.31.0/24');
  const free = freeIpv4Candidates(fixture, existing);
  assert.deepEqual(free.slice(0, 3).map(String), ['10.3.3.0/24', '10.3.6.0/24', '10.3.7.0/24']);
  assert.equal(free.length, 25 - 4);
  for (let i = 0; i < free.length; i++) {
    const pick = pickFreeSubnet(fixture, existing, () => i);
    assert.ok(fitsConfig(fixture, pick));
    assert.ok(!existing.some((e) => e.subnet.overlaps(pick.subnet)));
  }
  // A wider lease overlapping candidates blocks them too.
  assert.ok(!freeIpv4Candidates(fixture, taken('10.3.0.0/20')).some((c) => c.network < parseIpv4('10.3.16.0')));
});

test('at most 100 candidates; a random pick among them; out of subnets when none', () => {
  const wide = cfgOf('{"Network":"10.0.0.0/8"}');
  assert.equal(freeIpv4Candidates(wide, []).length, MAX_CANDIDATES);
  assert.equal(pickFreeSubnet(wide, [], (n) => n - 1).subnet.toString(), '10.0.100.0/24');
  const tiny = cfgOf('{"Network":"10.0.0.0/16","SubnetMin":"10.0.1.0","SubnetMax":"10.0.2.0"}');
  assert.throws(() => pickFreeSubnet(tiny, taken('10.0.1.0/24', '10.0.2.0/24')), OutOfSubnetsError);
  const inverted = cfgOf('{"Network":"10.0.0.0/16","SubnetMin":"10.0.9.0","SubnetMax":"10.0.2.0"}');
  assert.throws(() => pickFreeSubnet(inverted, []), /out of subnets/);
});

test('IPv6 is picked independently when enabled', () => {
  const dual = cfgOf('{"Network":"10.0.0.0/16","EnableIPv6":true,"IPv6Network":"fd00:1::/48"}');
  const p = pickFreeSubnet(dual, [{ subnet: Ipv4Net.parse('10.0.1.0/24'), ipv6Subnet: undefined }], () => 0);
  assert.equal(p.subnet.toString(), '10.0.2.0/24');
  assert.equal(p.ipv6Subnet!.toString(), 'fd00:1:0:1::/64');
  assert.ok(fitsConfig(dual, p));
  assert.ok(!fitsConfig(dual, { subnet: p.subnet, ipv6Subnet: undefined }), 'a v6 part is required when IPv6 is on');
  assert.ok(!fitsConfig(fixture, p), 'no v6 part allowed when IPv6 is off');
});

test('fitsConfig: range and prefix length (previous subnet and reuse checks)', () => {
  assert.ok(fitsConfig(fixture, taken('10.3.6.0/24')[0]!));
  assert.ok(!fitsConfig(fixture, taken('10.4.1.0/24')[0]!));
  assert.ok(!fitsConfig(fixture, taken('10.3.6.0/25')[0]!));
  assert.ok(!fitsConfig(fixture, taken('10.3.26.0/24')[0]!));
});

const lease = testLease;

test('remote lease set: snapshot diffs, own lease filtered, changed attributes re-emitted', () => {
  const own = lease('10.5.1.0/24', '192.168.0.1');
  const w = new RemoteLeaseSet(own);
  const first = w.reset([own, lease('10.5.2.0/24', '192.168.0.2'), lease('10.5.3.0/24', '192.168.0.3')]);
  assert.deepEqual(first.map((e) => `${e.type} ${e.lease.subnet}`), ['added 10.5.2.0/24', 'added 10.5.3.0/24']);
  assert.equal(w.leases.length, 2);
  // Same snapshot again: nothing to say.
  assert.deepEqual(w.reset([own, lease('10.5.2.0/24', '192.168.0.2'), lease('10.5.3.0/24', '192.168.0.3')]), []);
  // 10.5.2 moved to another node, 10.5.3 is gone, 10.5.4 is new.
  const next = w.reset([lease('10.5.2.0/24', '192.168.0.9'), lease('10.5.4.0/24', '192.168.0.4')]);
  assert.deepEqual(next.map((e) => `${e.type} ${e.lease.subnet}`), ['added 10.5.2.0/24', 'added 10.5.4.0/24', 'removed 10.5.3.0/24']);
  assert.equal(next[0]!.lease.attrs.publicIp, parseIpv4('192.168.0.9'));
});

test('remote lease set: incremental put replaces by subnet; delete emits the stored lease', () => {
  const own = lease('10.5.1.0/24', '192.168.0.1');
  const w = new RemoteLeaseSet(own);
  w.reset([lease('10.5.2.0/24', '192.168.0.2', 'vxlan')]);
  const a = w.update([{ type: 'put', lease: lease('10.5.5.0/24', '192.168.0.5') }, { type: 'put', lease: own }]);
  assert.deepEqual(a.map((e) => `${e.type} ${e.lease.subnet}`), ['added 10.5.5.0/24']);
  w.update([{ type: 'put', lease: lease('10.5.5.0/24', '192.168.0.55') }]);
  assert.equal(w.leases.filter((l) => l.subnet.toString() === '10.5.5.0/24').length, 1);
  const r = w.update([{ type: 'delete', subnet: Ipv4Net.parse('10.5.2.0/24'), ipv6Subnet: undefined }]);
  assert.equal(r.length, 1);
  assert.equal(r[0]!.type, 'removed');
  assert.equal(r[0]!.lease.attrs.backendType, 'vxlan', 'backends see the old attributes');
  assert.deepEqual(w.update([{ type: 'delete', subnet: Ipv4Net.parse('10.5.99.0/24'), ipv6Subnet: undefined }]), [], 'unknown subnet: nothing');
  assert.deepEqual(w.update([{ type: 'delete', subnet: own.subnet, ipv6Subnet: undefined }]), [], 'own lease: nothing');
});

test('previous subnet.env: comma lists, invalid entries skipped, exactly one valid used (upstream main_test.go)', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'subnetenv-'));
  const file = path.join(dir, 'subnet.env');
  try {
    fs.writeFileSync(file, 'FLANNEL_NETWORK=10.5.0.0/16\nFLANNEL_SUBNET=10.5.72.1/24\nFLANNEL_MTU=1472\nFLANNEL_IPMASQ=false\n');
    let p = readPreviousSubnets(file);
    assert.equal(p.subnet!.toString(), '10.5.72.0/24', 'host bits masked');
    assert.equal(p.network!.toString(), '10.5.0.0/16');
    fs.writeFileSync(file, 'FLANNEL_SUBNET=foo,10.5.72.1/24,bar\nFLANNEL_IPV6_SUBNET=fc00::1/64,zz\n');
    p = readPreviousSubnets(file);
    assert.equal(p.subnet!.toString(), '10.5.72.0/24');
    assert.equal(p.ipv6Subnet!.toString(), 'fc00::/64');
    assert.deepEqual(p.invalid.map((x) => x.value), ['foo', 'bar', 'zz']);
    fs.writeFileSync(file, 'FLANNEL_SUBNET=10.5.72.1/24,10.5.73.1/24\n');
    assert.equal(readPreviousSubnets(file).subnet, undefined, 'two valid: absent');
    fs.writeFileSync(file, 'FLANNEL_SUBNET=nope\n');
    assert.equal(readPreviousSubnets(file).subnet, undefined, 'only invalid: absent');
    assert.equal(readPreviousSubnets(path.join(dir, 'missing')).subnet, undefined);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('dotenv: export, quotes, comments', () => {
  const env = parseDotenv('# c\nexport A=1\nB="two \\"q\\""\nC=\'lit $x\'\nD=val # comment\nE: yaml\n\n');
  assert.deepEqual(Object.fromEntries(env), { A: '1', B: 'two "q"', C: 'lit $x', D: 'val', E: 'yaml' });
});
