/**
 * Subnet keys (docs/compatibility.md §3.1), lease JSON golden bytes (docs/compatibility.md §3.2) and IPv6 text.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeLeaseAttrs, encodeLeaseAttrs } from '../src/lease/etcd/lease-value';
import { joinKey, makeSubnetKey, parseSubnetKey, subnetKeyOfEtcdKey, subnetKeyPath, subnetsPrefix } from '../src/lease/etcd/subnet-key';
import { Ipv4Net, parseIpv4 } from '../src/util/ipv4';
import { formatIpv6, Ipv6Net, tryParseIpv6 } from '../src/util/ipv6';

/** A key that parses: its subnets. */
function parsed(key: string) {
  const p = parseSubnetKey(key);
  assert.ok(p.ok, `${key}: ${p.ok ? '' : p.reason}`);
  return p;
}

test('subnet keys round-trip (upstream TestSubnetNodev4/v6)', () => {
  const v4 = parsed('10.12.13.0-24');
  assert.equal(v4.subnet.toString(), '10.12.13.0/24');
  assert.equal(v4.ipv6Subnet, undefined);
  assert.equal(makeSubnetKey(v4.subnet), '10.12.13.0-24');
  const dual = parsed('10.12.13.0-24&fd00:12:13::-56');
  assert.equal(dual.ipv6Subnet!.toString(), 'fd00:12:13::/56');
  assert.equal(makeSubnetKey(dual.subnet, dual.ipv6Subnet), '10.12.13.0-24&fd00:12:13::-56');
});

test('invalid subnet keys (upstream TestSubnetNodeInvalid, and /32)', () => {
  for (const k of [
    '10',
    '10.12.13.0',
    '10.12.13-24',
    '10.12.13.300-24',
    '10.12.13.0-24hi',
    '&2001::-56',
    '10.12.13.0-24&:12:13:-56',
    '10.12.13.0-24&20011::-56',
    '10.12.13.0-24&2001-56',
    '10.12.13.0-24&2001::',
    '10.12.13.0-24&2001::-56hi',
    '10.12.13.0-32',
    '10.12.13.0-24&2001::-128',
    'x10.12.13.0-24',
  ]) {
    assert.deepEqual(parseSubnetKey(k), { ok: false, reason: 'not a subnet key' }, k);
  }
});

test('non-canonical subnet keys are refused, saying which key they alias (upstream keeps host bits)', () => {
  for (const [k, canonical] of [
    ['10.5.72.1-24', '10.5.72.0-24'],
    ['10.12.13.0-024', '10.12.13.0-24'],
    ['10.12.13.0-24&fd00:12:13::1-56', '10.12.13.0-24&fd00:12:13::-56'],
    ['10.12.13.0-24&fd00:12:13:0::-56', '10.12.13.0-24&fd00:12:13::-56'],
  ]) {
    const p = parseSubnetKey(k!);
    assert.equal(p.ok, false, k);
    assert.match(p.ok ? '' : p.reason, new RegExp(`host bits set \\(the subnet is ${canonical!.replace(/\./g, '\\.')}\\)`), k);
  }
});

test('etcd keys: only direct children of <prefix>/subnets/ are leases', () => {
  assert.equal(subnetsPrefix('/coreos.com/network/'), '/coreos.com/network/subnets');
  assert.equal(joinKey('/coreos.com//network', 'config'), '/coreos.com/network/config');
  assert.equal(subnetKeyPath('/coreos.com/network', Ipv4Net.parse('10.5.52.0/24')), '/coreos.com/network/subnets/10.5.52.0-24');
  const ok = subnetKeyOfEtcdKey('/coreos.com/network', '/coreos.com/network/subnets/10.5.52.0-24');
  assert.equal(ok.ok && ok.subnet.toString(), '10.5.52.0/24');
  for (const k of ['/coreos.com/network/subnets-x/10.5.52.0-24', '/coreos.com/network/subnets/a/10.5.52.0-24', '/coreos.com/network/subnets/garbage']) {
    assert.equal(subnetKeyOfEtcdKey('/coreos.com/network', k).ok, false, k);
  }
});

const ip = parseIpv4('1.2.3.4');

test('lease JSON golden bytes: udp, host-gw, vxlan, dual stack', () => {
  assert.equal(
    encodeLeaseAttrs({ publicIp: ip, publicIpv6: undefined, backendType: '', backendData: undefined, backendV6Data: undefined }),
    '{"PublicIP":"1.2.3.4","PublicIPv6":null}',
  );
  assert.equal(
    encodeLeaseAttrs({ publicIp: ip, publicIpv6: undefined, backendType: 'host-gw', backendData: undefined, backendV6Data: undefined }),
    '{"PublicIP":"1.2.3.4","PublicIPv6":null,"BackendType":"host-gw"}',
  );
  assert.equal(
    encodeLeaseAttrs({ publicIp: ip, publicIpv6: undefined, backendType: 'vxlan', backendData: '{"VNI": 1, "VtepMAC": "c6:d2:32:6f:8f:44"}', backendV6Data: undefined }),
    '{"PublicIP":"1.2.3.4","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"c6:d2:32:6f:8f:44"}}',
  );
  assert.equal(
    encodeLeaseAttrs({
      publicIp: ip,
      publicIpv6: tryParseIpv6('fc00::1'),
      backendType: 'vxlan',
      backendData: '{"VNI":1,"VtepMAC":"c6:d2:32:6f:8f:44"}',
      backendV6Data: '{"VNI":1,"VtepMAC":"aa:d2:32:6f:8f:44"}',
    }),
    '{"PublicIP":"1.2.3.4","PublicIPv6":"fc00::1","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"c6:d2:32:6f:8f:44"},"BackendV6Data":{"VNI":1,"VtepMAC":"aa:d2:32:6f:8f:44"}}',
  );
  assert.equal(encodeLeaseAttrs({ publicIp: 0, publicIpv6: undefined, backendType: '', backendData: undefined, backendV6Data: undefined }), '{"PublicIP":"0.0.0.0","PublicIPv6":null}');
});

test('lease JSON decoding: case-insensitive, unknown keys ignored, PublicIP must be IPv4', () => {
  const a = decodeLeaseAttrs('{"publicip":"10.0.0.1","backendtype":"vxlan","backenddata":{"VtepMAC":"aa:bb:cc:dd:ee:ff","VNI":1},"x":1}');
  assert.equal(a.publicIp, parseIpv4('10.0.0.1'));
  assert.equal(a.backendType, 'vxlan');
  assert.equal(a.backendData, '{"VtepMAC":"aa:bb:cc:dd:ee:ff","VNI":1}');
  for (const bad of ['{"PublicIP":"fc00::1"}', '{"PublicIP":null}', '{}', 'nope', '[1]', '{"PublicIP":"1.2.3.4","PublicIPv6":"1.2.3.4.5"}']) {
    assert.throws(() => decodeLeaseAttrs(bad), bad);
  }
});

test('IPv6 text as Go prints it (RFC 5952)', () => {
  const cases: Array<[string, string]> = [
    ['fd00:12:13::', 'fd00:12:13::'],
    ['FC00:0000:0000:0001:0000:0000:0000:0000', 'fc00:0:0:1::'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:db8::0:1', '2001:db8::1'],
    ['::', '::'],
    ['::1', '::1'],
    ['1:0:1:0:1:0:1:0', '1:0:1:0:1:0:1:0'],
    ['::ffff:1.2.3.4', '1.2.3.4'],
    ['::1.2.3.4', '::102:304'],
  ];
  for (const [input, want] of cases) assert.equal(formatIpv6(tryParseIpv6(input)!), want, input);
  for (const bad of ['', ':', '1::2::3', '12345::', 'g::', '1:2:3:4:5:6:7:8:9', '::1.2.3']) assert.equal(tryParseIpv6(bad), undefined, bad);
  assert.equal(Ipv6Net.tryParse('2001:cafe:42::/64')!.firstHost().toString(), '2001:cafe:42::1/64');
  assert.ok(Ipv6Net.tryParse('fc00::/48')!.overlaps(Ipv6Net.tryParse('fc00:0:0:5::/64')!));
});
