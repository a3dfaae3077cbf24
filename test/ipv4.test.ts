import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatIpv4, isPrivateIpv4, Ipv4Net, parseIpv4, tryParseIpv4 } from '../src/util/ipv4';

test('parses and formats dotted quads', () => {
  assert.equal(parseIpv4('1.2.3.4'), 0x01020304);
  assert.equal(formatIpv4(0xc0a80001), '192.168.0.1');
  assert.equal(parseIpv4('255.255.255.255'), 0xffffffff);
  for (const bad of ['1.2.3', '1.2.3.4.5', '256.1.1.1', '01.2.3.4', '1.2.3.-1', '', 'fc00::1', ' 1.2.3.4']) {
    assert.equal(tryParseIpv4(bad), undefined, bad);
  }
});

test('networks: canonical form, containment, overlap, first host', () => {
  const n = Ipv4Net.parse('10.3.1.0/16');
  assert.equal(n.canonical().toString(), '10.3.0.0/16');
  assert.equal(n.size, 65536);
  assert.ok(n.contains(parseIpv4('10.3.200.1')));
  assert.ok(!n.contains(parseIpv4('10.4.0.1')));
  assert.ok(n.containsNet(Ipv4Net.parse('10.3.5.0/24')));
  assert.ok(!Ipv4Net.parse('10.3.5.0/24').containsNet(n));
  assert.ok(Ipv4Net.parse('10.3.5.0/24').overlaps(Ipv4Net.parse('10.3.0.0/16')));
  assert.ok(!Ipv4Net.parse('10.3.5.0/24').overlaps(Ipv4Net.parse('10.3.6.0/24')));
  assert.equal(Ipv4Net.parse('10.5.72.0/24').firstHost().toString(), '10.5.72.1/24');
  assert.equal(Ipv4Net.parse('0.0.0.0/0').size, 2 ** 32);
  assert.equal(Ipv4Net.tryParse('10.0.0.0/33'), undefined);
  assert.equal(Ipv4Net.tryParse('10.0.0.0'), undefined);
  assert.equal(Ipv4Net.parse('10.0.0.0/8').broadcast, parseIpv4('10.255.255.255'));
});

test('RFC 1918 detection', () => {
  for (const a of ['10.0.0.1', '172.16.0.1', '172.31.255.255', '192.168.1.1']) assert.ok(isPrivateIpv4(parseIpv4(a)), a);
  for (const a of ['11.0.0.1', '172.32.0.1', '192.169.0.1', '8.8.8.8']) assert.ok(!isPrivateIpv4(parseIpv4(a)), a);
});
