import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as os from 'node:os';
import { defaultWorkers, parseUdpBackendConfig, takesPartialChecksums, tunMtu, UdpBackendConfigError } from '../src/backends/udp/config';

const ALL = { tso: true, uso: true, gso: true, gro: true };

test('defaults: Port 8285, MTU from the interface, SourceCheck on, a worker per core, every offload', () => {
  const expected = { port: 8285, mtu: undefined, sourceCheck: true, allowExternalSources: false, sourcePorts: 16, advertiseCapabilities: true, workers: defaultWorkers(), offload: ALL, datapath: 'user', busyPollMicroseconds: 0 };
  assert.deepEqual(parseUdpBackendConfig(undefined), expected);
  assert.deepEqual(parseUdpBackendConfig({ Type: 'udp' }), expected);
  assert.equal(defaultWorkers(), Math.min(os.availableParallelism(), 8));
  assert.equal(defaultWorkers(2), 2);
  assert.equal(defaultWorkers(64), 8, 'capped at 8');
  assert.equal(defaultWorkers(0), 1);
});

test('keys are case-insensitive as in Go; last duplicate wins', () => {
  assert.deepEqual(
    parseUdpBackendConfig({ type: 'udp', port: 9000, mtu: 9000, sourcecheck: false, allowexternalsources: true, sourceports: 0, advertisecapabilities: false, workers: 3, offload: { tso: false, gro: false }, datapath: 'auto', busypollmicroseconds: 50 }),
    { port: 9000, mtu: 9000, sourceCheck: false, allowExternalSources: true, sourcePorts: 0, advertiseCapabilities: false, workers: 3, offload: { tso: false, uso: true, gso: true, gro: false }, datapath: 'auto', busyPollMicroseconds: 50 },
  );
  assert.equal(parseUdpBackendConfig({ Port: 1, PORT: 2 }).port, 2);
});

test('partial checksums are taken (and advertised) with TSO or USO, SourceCheck and AdvertiseCapabilities', () => {
  const all = { tso: true, uso: true, gso: true, gro: true };
  const on = { advertiseCapabilities: true, sourceCheck: true };
  assert.equal(takesPartialChecksums(on, all), true);
  assert.equal(takesPartialChecksums(on, { ...all, tso: false }), true, 'USO alone puts checksum offload on flannel0');
  assert.equal(takesPartialChecksums(on, { ...all, tso: false, uso: false }), false, 'no checksum offload on flannel0');
  assert.equal(takesPartialChecksums({ ...on, sourceCheck: false }, all), false, 'a datagram must map to a lease');
  assert.equal(takesPartialChecksums({ ...on, advertiseCapabilities: false }, all), false);
});

test('flannel0 MTU is the underlay MTU minus 28', () => {
  assert.equal(tunMtu(parseUdpBackendConfig({}), 1500), 1472);
  assert.equal(tunMtu(parseUdpBackendConfig({ MTU: 1400 }), 1500), 1372);
});

test('bad options name the key and keep upstream\'s prefix', () => {
  const bad: Array<[unknown, RegExp]> = [
    [{ Port: '8285' }, /^error decoding UDP backend config: json: cannot unmarshal string into Go struct field \.Port of type int$/],
    [{ Port: 70000 }, /Port must be 1\.\.65535/],
    [{ SourcePorts: 65 }, /SourcePorts must be 0\.\.64 with Port \+ SourcePorts at most 65535 \(0: every datagram from Port, as upstream\), got 65/],
    [{ Port: 65530, SourcePorts: 16 }, /SourcePorts must be 0\.\.64/],
    [{ MTU: 50 }, /MTU is the underlay MTU and must be 96\.\.65535/],
    [{ SourceCheck: 'no' }, /SourceCheck of type bool/],
    [{ Workers: 65 }, /Workers must be 1\.\.64 \(or 0 \/ absent for the default/],
    [{ Workers: -1 }, /Workers must be 1\.\.64/],
    [{ Workers: 1.5 }, /Workers of type int/],
    [{ Offload: false }, /Offload must be an object such as \{"TSO": true/],
    [{ Offload: { GSO: 'off' } }, /GSO of type bool/],
    [[1], /must be a JSON object/],
    [{ Datapath: 'xdp' }, /^error decoding UDP backend config: Datapath must be one of user, ebpf, auto, got "xdp"$/],
    [{ Datapath: true }, /Datapath of type string/],
    [{ BusyPollMicroseconds: 1001 }, /^error decoding UDP backend config: BusyPollMicroseconds must be 0\.\.1000 \(0: workers sleep as soon as they are idle\), got 1001$/],
    [{ BusyPollMicroseconds: -5 }, /BusyPollMicroseconds must be 0\.\.1000/],
    [{ BusyPollMicroseconds: '50' }, /BusyPollMicroseconds of type int/],
  ];
  for (const [raw, pattern] of bad) {
    assert.throws(() => parseUdpBackendConfig(raw), (e: unknown) => e instanceof UdpBackendConfigError && pattern.test(e.message), JSON.stringify(raw));
  }
});
