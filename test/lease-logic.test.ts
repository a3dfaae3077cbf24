/**
 * Pure lease logic: allocation (docs/compatibility.md §3.5), reading the
 * previous subnet.env (§4.3). The guard between the watches and the backends
 * has its own file (peer-lease-guard.test.ts).
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { fitsConfig, freeIpv4Candidates, MAX_CANDIDATES, OutOfSubnetsError, pickFreeSubnet } from '../src/lease/allocator';
import { checkNetworkConfig, parseNetworkConfig } from '../src/lease/network-config';
import { parseDotenv, readPreviousSubnets } from '../src/lease/subnet-file';
import { Ipv4Net, parseIpv4 } from '../src/util/ipv4';

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
