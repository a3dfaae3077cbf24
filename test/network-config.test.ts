/**
 * Network config decoding and validation (docs/compatibility.md §2.2, §2.3), with
 * upstream's worked examples and error texts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkNetworkConfig, NetworkConfigError, parseNetworkConfig } from '../src/lease/network-config';
import { formatIpv4 } from '../src/util/ipv4';
import { formatIpv6 } from '../src/util/ipv6';

const check = (json: string) => checkNetworkConfig(parseNetworkConfig(json));

test('worked examples of docs/compatibility.md §2.3', () => {
  const cases: Array<[string, number, string, string]> = [
    ['{"network":"10.3.0.0/16"}', 24, '10.3.1.0', '10.3.255.0'],
    ['{"Network":"10.3.0.0/16","SubnetMin":"10.3.5.0","SubnetMax":"10.3.8.0","SubnetLen":28}', 28, '10.3.5.0', '10.3.8.0'],
    ['{"Network":"10.0.0.0/8"}', 24, '10.0.1.0', '10.255.255.0'],
    ['{"Network":"10.0.0.0/23"}', 25, '10.0.0.128', '10.0.1.128'],
  ];
  for (const [json, len, min, max] of cases) {
    const c = check(json);
    assert.equal(c.subnetLen, len, json);
    assert.equal(formatIpv4(c.subnetMin), min, json);
    assert.equal(formatIpv4(c.subnetMax), max, json);
  }
  const v6 = check('{"enableIPv6":true,"ipv6Network":"fc00::/48","enableIPv4":false}');
  assert.equal(v6.enableIPv4, false);
  assert.equal(v6.ipv6SubnetLen, 64);
  assert.equal(formatIpv6(v6.ipv6SubnetMin), 'fc00:0:0:1::');
  assert.equal(formatIpv6(v6.ipv6SubnetMax), 'fc00:0:0:ffff::');
});

test('host bits of Network are masked; 0.0.0.0 SubnetMin counts as unset', () => {
  const c = check('{"Network":"10.3.1.0/16","SubnetMin":"0.0.0.0"}');
  assert.equal(c.network!.toString(), '10.3.0.0/16');
  assert.equal(formatIpv4(c.subnetMin), '10.3.1.0');
});

test('validation errors carry upstream\'s texts', () => {
  const bad: Array<[string, string]> = [
    ['{}', 'please define a correct Network parameter in the flannel config'],
    ['{"Network":"0.0.0.0/0"}', 'please define a correct Network parameter in the flannel config'],
    ['{"Network":"10.0.0.0/16","SubnetLen":31}', 'SubnetLen must be less than /31'],
    ['{"Network":"10.0.0.0/16","SubnetLen":17}', 'network must be able to accommodate at least four subnets'],
    ['{"Network":"10.0.0.0/29"}', 'network is too small. Minimum useful network prefix is /28'],
    ['{"Network":"10.0.0.0/16","SubnetMin":"10.1.0.0"}', 'SubnetMin is not in the range of the Network'],
    ['{"Network":"10.0.0.0/16","SubnetMax":"11.0.0.0"}', 'SubnetMax is not in the range of the Network'],
    ['{"Network":"10.0.0.0/16","SubnetMin":"10.0.1.5"}', 'SubnetMin is not on a SubnetLen boundary: 10.0.1.5'],
    ['{"Network":"10.0.0.0/16","SubnetMax":"10.0.9.128"}', 'SubnetMax is not on a SubnetLen boundary: 10.0.9.128'],
    ['{"EnableIPv6":true,"Network":"10.0.0.0/16"}', 'please define a correct IPv6Network parameter in the flannel config'],
    ['{"EnableIPv4":false,"EnableIPv6":true,"IPv6Network":"fc00::/64","IPv6SubnetLen":127}', 'SubnetLen must be less than /127'],
    ['{"EnableIPv4":false,"EnableIPv6":true,"IPv6Network":"fc00::/64","IPv6SubnetLen":65}', 'network must be able to accommodate at least four subnets'],
    ['{"EnableIPv4":false,"EnableIPv6":true,"IPv6Network":"fc00::/125"}', 'IPv6Network is too small. Minimum useful network prefix is /124'],
    ['{"EnableIPv4":false,"EnableIPv6":true,"IPv6Network":"fc00::/48","IPv6SubnetMin":"fd00::"}', 'IPv6SubnetMin is not in the range of the IPv6Network'],
    ['{"EnableIPv4":false,"EnableIPv6":true,"IPv6Network":"fc00::/48","IPv6SubnetMax":"fd00::"}', 'IPv6SubnetMax is not in the range of the IPv6Network'],
    ['{"EnableIPv4":false,"EnableIPv6":true,"IPv6Network":"fc00::/48","IPv6SubnetMin":"fc00:0:0:1::5"}', 'IPv6SubnetMin is not on a SubnetLen boundary: fc00:0:0:1::5'],
  ];
  for (const [json, msg] of bad) {
    assert.throws(() => check(json), (e: unknown) => e instanceof NetworkConfigError && e.message === msg, json);
  }
});

test('an inverted range is not rejected (upstream: "out of subnets" later)', () => {
  const c = check('{"Network":"10.0.0.0/16","SubnetMin":"10.0.9.0","SubnetMax":"10.0.2.0"}');
  assert.ok(c.subnetMin > c.subnetMax);
});

test('decoding: case-insensitive keys, unknown keys ignored, type mismatches are errors', () => {
  const c = check('{"NETWORK":"10.1.0.0/16","subnetlen":26,"whatever":[1,2],"enablenftables":true}');
  assert.equal(c.network!.toString(), '10.1.0.0/16');
  assert.equal(c.subnetLen, 26);
  assert.equal(c.enableNFTables, true);
  assert.throws(() => parseNetworkConfig('{"Network":"10.1.0.0/16","SubnetLen":"24"}'), /cannot unmarshal string into Go struct field Config\.SubnetLen of type uint/);
  assert.throws(() => parseNetworkConfig('{"Network":"fc00::/64"}'), /invalid IPv4 CIDR format/);
  assert.throws(() => parseNetworkConfig('{"Network":"10.1.0.0/16"'), /not valid JSON/);
  assert.throws(() => parseNetworkConfig('[1]'), /must be a JSON object/);
});

test('backend type: absent -> udp, {} or null -> "", Type lower-cased', () => {
  assert.equal(check('{"Network":"10.1.0.0/16"}').backendType, 'udp');
  assert.equal(check('{"Network":"10.1.0.0/16","Backend":{}}').backendType, '');
  assert.equal(check('{"Network":"10.1.0.0/16","Backend":null}').backendType, '');
  assert.equal(check('{"Network":"10.1.0.0/16","Backend":{"type":"VXLAN","VNI":2}}').backendType, 'vxlan');
  assert.equal(check('{"Network":"10.1.0.0/16","Backend":{"Type":"Host-GW"}}').backendType, 'host-gw');
  assert.deepEqual(check('{"Network":"10.1.0.0/16","Backend":{"Type":"udp","Port":9000}}').backend, { Type: 'udp', Port: 9000 });
  assert.throws(() => check('{"Network":"10.1.0.0/16","Backend":"vxlan"}'), /NetworkConfigError: error decoding Backend property of config: json: cannot unmarshal string/);
});
