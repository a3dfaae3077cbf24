import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseUdpBackendConfig, tunMtu, UdpBackendConfigError } from '../src/backends/udp/config';

test('defaults: Port 8285, MTU from the interface, SourceCheck on', () => {
  assert.deepEqual(parseUdpBackendConfig(undefined), { port: 8285, mtu: undefined, sourceCheck: true });
  assert.deepEqual(parseUdpBackendConfig({ Type: 'udp' }), { port: 8285, mtu: undefined, sourceCheck: true });
});

test('keys are case-insensitive as in Go; last duplicate wins', () => {
  assert.deepEqual(parseUdpBackendConfig({ type: 'udp', port: 9000, mtu: 9000, sourcecheck: false }), {
    port: 9000,
    mtu: 9000,
    sourceCheck: false,
  });
  assert.equal(parseUdpBackendConfig({ Port: 1, PORT: 2 }).port, 2);
});

test('flannel0 MTU is the underlay MTU minus 28', () => {
  assert.equal(tunMtu(parseUdpBackendConfig({}), 1500), 1472);
  assert.equal(tunMtu(parseUdpBackendConfig({ MTU: 1400 }), 1500), 1372);
});

test('bad options name the key and keep upstream\'s prefix', () => {
  const bad: Array<[unknown, RegExp]> = [
    [{ Port: '8285' }, /^error decoding UDP backend config: json: cannot unmarshal string into Go struct field \.Port of type int$/],
    [{ Port: 70000 }, /Port must be 1\.\.65535/],
    [{ MTU: 50 }, /MTU is the underlay MTU and must be 96\.\.65535/],
    [{ SourceCheck: 'no' }, /SourceCheck of type bool/],
    [[1], /must be a JSON object/],
  ];
  for (const [raw, pattern] of bad) {
    assert.throws(() => parseUdpBackendConfig(raw), (e: unknown) => e instanceof UdpBackendConfigError && pattern.test(e.message), JSON.stringify(raw));
  }
});
