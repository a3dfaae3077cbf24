/**
 * The wireguard backend's pure parts: its options and refusals (upstream's
 * pkg/backend/wireguard/wireguard.go RegisterNetwork), the lease data byte
 * for byte, leases -> peers for every Mode (wireguard_network.go
 * handleSubnetEvents, selectMode), the comparison the check makes, `wg`'s
 * dump and configuration texts, the link request for the kernel's device,
 * and the key file with the real `wg`.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import {
  decodeWireguardBackendData,
  encodeWireguardBackendData,
  IMPLEMENTATION_ENV,
  parseWireguardBackendConfig,
  WireguardConfigError,
} from '../src/backends/wireguard/config';
import { kernelMissingMessage } from '../src/backends/wireguard/device';
import { loadOrCreateNodeKey, WireguardKeyError } from '../src/backends/wireguard/keys';
import { deviceDifferences, planWireguardPeers, type RoutedLease, selectEndpointFamily, type WgPlanOptions } from '../src/backends/wireguard/peers';
import { parseWgDump, redactKeys, renderWgConfig, WgTool } from '../src/backends/wireguard/wg-tool';
import { decodeAttrs, encodeLinkInfoKind, IFLA_INFO_KIND, linkKind } from '../src/routing/nlattr';
import { SystemCommandRunner } from '../src/util/command';
import { parseIpv4 } from '../src/util/ipv4';
import { tryParseIpv6 } from '../src/util/ipv6';
import { testLease, testLease6 } from './helpers/leases';

const KEY_A = 'xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=';
const KEY_B = 'HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=';
const KEY_C = 'TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0=';
const PSK = 'FpCyhws9cxwWoV4xELtfJvjJN+zQVRPISllRWgeopVE=';
const wgData = (key: string, port = 51820) => encodeWireguardBackendData(key, port);

describe('wireguard options', () => {
  test("upstream's defaults: ports 51820/51821, the interface's MTU, Mode separate, no PSK, no keepalive", () => {
    assert.deepEqual(parseWireguardBackendConfig({ Type: 'wireguard' }, 1500, {}), {
      listenPort: 51820,
      listenPortV6: 51821,
      mtu: 1500,
      psk: undefined,
      persistentKeepalive: 0,
      mode: 'separate',
      implementation: 'auto',
    });
  });

  test('keys are case-insensitive; PersistentKeepaliveInterval is seconds; every Mode', () => {
    for (const mode of ['separate', 'auto', 'ipv4', 'ipv6']) {
      const c = parseWireguardBackendConfig({ listenport: 5000, LISTENPORTV6: 5001, mtu: 1400, psk: PSK, PersistentKeepaliveInterval: 25, mode }, 1500, {});
      assert.deepEqual([c.listenPort, c.listenPortV6, c.mtu, c.psk, c.persistentKeepalive, c.mode], [5000, 5001, 1400, PSK, 25, mode]);
    }
  });

  test("refusals in upstream's words, and ours where upstream has none; the PSK is never repeated", () => {
    const refuse = (backend: unknown, pattern: RegExp, env: NodeJS.ProcessEnv = {}) => {
      assert.throws(() => parseWireguardBackendConfig(backend, 1500, env), (e: unknown) => e instanceof WireguardConfigError && pattern.test(e.message));
    };
    refuse({ Mode: 'both' }, /^no valid Mode configured$/);
    refuse({ ListenPort: '51820' }, /^error decoding backend config: json: cannot unmarshal string into Go struct field \.ListenPort of type int$/);
    refuse({ PersistentKeepaliveInterval: '25s' }, /cannot unmarshal string into Go struct field \.PersistentKeepaliveInterval of type time\.Duration/);
    refuse({ ListenPort: 70000 }, /ListenPort must be 0\.\.65535, got 70000/);
    refuse({ MTU: 100 }, /MTU must be 148\.\.65535 \(the devices get MTU - 80\), got 100/);
    refuse({ Implementation: 'fast' }, /Implementation is "fast"; use one of auto, kernel, userspace/);
    refuse({}, new RegExp(`${IMPLEMENTATION_ENV}=fast is not one of auto, kernel, userspace`), { [IMPLEMENTATION_ENV]: 'fast' });
    const secretish = 'c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3I=';
    assert.throws(
      () => parseWireguardBackendConfig({ PSK: secretish.slice(0, 40) }, 1500, {}),
      (e: unknown) => e instanceof Error && /could not parse psk: .*wg genpsk/.test(e.message) && !e.message.includes(secretish.slice(0, 40)),
    );
  });

  test('the environment forces the implementation on one node', () => {
    assert.equal(parseWireguardBackendConfig({ Implementation: 'kernel' }, 1500, { [IMPLEMENTATION_ENV]: 'userspace' }).implementation, 'userspace');
    assert.equal(parseWireguardBackendConfig({ Implementation: 'kernel' }, 1500, {}).implementation, 'kernel');
  });

  test('a forced kernel implementation without the module is refused with the fixes named', () => {
    const m = kernelMissingMessage('flannel-wg', 'create wireguard device flannel-wg: ENOTSUP');
    assert.match(m, /no WireGuard module .*modprobe wireguard.*wireguard-dkms.*"Implementation" to "auto" or "userspace"/);
  });
});

describe('wireguard lease data', () => {
  test('BackendData byte for byte as upstream marshals wireguardLeaseAttrs', () => {
    assert.equal(wgData(KEY_A), `{"PublicKey":"${KEY_A}","Port":51820}`);
  });

  test('decoding: Port 0 stays 0 (the peer means our port), bad JSON and bad keys are reasons', () => {
    assert.deepEqual(decodeWireguardBackendData(`{"PublicKey":"${KEY_A}"}`), { ok: true, data: { publicKey: KEY_A, port: 0 } });
    assert.deepEqual(decodeWireguardBackendData(`{"publickey":"${KEY_A}","port":5}`), { ok: true, data: { publicKey: KEY_A, port: 5 } });
    const reason = (raw: string | undefined) => {
      const d = decodeWireguardBackendData(raw);
      assert.ok(!d.ok);
      return d.reason;
    };
    assert.match(reason('{"PublicKey":'), /^failed to unmarshal BackendData/);
    assert.match(reason('{"PublicKey":"abc","Port":1}'), /its PublicKey "abc" cannot be a peer's: it is not the base64 text of a 32-byte key/);
    assert.match(reason(`{"PublicKey":"${KEY_A}","Port":70000}`), /of type uint16/);
    assert.match(reason(undefined), /no backend data/);
  });
});

function plan(leases: Array<[string, RoutedLease]>, over: Partial<WgPlanOptions> = {}) {
  return planWireguardPeers(leases, {
    mode: 'separate',
    devices: { 4: 'flannel-wg' },
    listenPort: 51820,
    listenPortV6: 51821,
    presharedKey: undefined,
    persistentKeepalive: 0,
    extAddr: parseIpv4('192.168.100.1'),
    extAddr6: undefined,
    ...over,
  });
}

describe('leases -> peers', () => {
  test('separate, IPv4: one peer per wireguard lease, AllowedIPs its subnet, Port 0 means ours; other types ignored', () => {
    const p = plan([
      ['10.5.1.0/24', { lease: testLease('10.5.1.0/24', '192.168.100.2', 'wireguard', wgData(KEY_A)), since: 1 }],
      ['10.5.2.0/24', { lease: testLease('10.5.2.0/24', '192.168.100.3', 'wireguard', `{"PublicKey":"${KEY_B}","Port":0}`), since: 2 }],
      ['10.5.3.0/24', { lease: testLease('10.5.3.0/24', '192.168.100.4', 'vxlan', '{"VNI":1}'), since: 3 }],
    ], { presharedKey: PSK, persistentKeepalive: 25 });
    assert.deepEqual(
      p.devices.get('flannel-wg')!.map((x) => [x.publicKey, x.endpoint, x.allowedIps, x.presharedKey, x.persistentKeepalive]),
      [
        [KEY_B, '192.168.100.3:51820', ['10.5.2.0/24'], PSK, 25],
        [KEY_A, '192.168.100.2:51820', ['10.5.1.0/24'], PSK, 25],
      ].sort((a, b) => ((a[0] as string) < (b[0] as string) ? -1 : 1)),
    );
    assert.equal(p.ignored.get('10.5.3.0/24'), 'Ignoring non-wireguard subnet: type=vxlan');
  });

  test('separate, dual stack: each family on its own device with its own port; a v6 part without PublicIPv6 is a reason', () => {
    const l = testLease6('10.5.1.0/24', '192.168.100.2', 'fd00:5:1::/64', 'fd00:100::2', 'wireguard', wgData(KEY_A), wgData(KEY_A, 51821));
    const p = plan([['10.5.1.0/24', { lease: l, since: 1 }]], { devices: { 4: 'flannel-wg', 6: 'flannel-wg-v6' } });
    assert.deepEqual(p.devices.get('flannel-wg')!.map((x) => [x.endpoint, x.allowedIps]), [['192.168.100.2:51820', ['10.5.1.0/24']]]);
    assert.deepEqual(p.devices.get('flannel-wg-v6')!.map((x) => [x.endpoint, x.allowedIps]), [['[fd00:100::2]:51821', ['fd00:5:1::/64']]]);
    const noV6Address = { ...l, attrs: { ...l.attrs, publicIpv6: undefined } };
    const q = plan([['10.5.1.0/24', { lease: noV6Address, since: 1 }]], { devices: { 4: 'flannel-wg', 6: 'flannel-wg-v6' } });
    assert.equal(q.devices.get('flannel-wg-v6')!.length, 0);
    assert.match(q.ignored.get('10.5.1.0/24')!, /IPv6 subnet but no PublicIPv6/);
  });

  test('one device (auto, ipv4, ipv6): both subnets on one peer; the IPv6 endpoint uses the BackendData Port', () => {
    const l = testLease6('10.5.1.0/24', '192.168.100.2', 'fd00:5:1::/64', '2001:db8::2', 'wireguard', wgData(KEY_A, 51820), wgData(KEY_A, 51821));
    const one = (mode: WgPlanOptions['mode'], over: Partial<WgPlanOptions> = {}) =>
      plan([['10.5.1.0/24', { lease: l, since: 1 }]], { mode, devices: { 4: 'flannel-wg', 6: 'flannel-wg' }, extAddr6: tryParseIpv6('2001:db8::1'), ...over }).devices.get('flannel-wg')!;
    assert.deepEqual(one('ipv4').map((x) => [x.endpoint, x.allowedIps]), [['192.168.100.2:51820', ['10.5.1.0/24', 'fd00:5:1::/64']]]);
    assert.deepEqual(one('ipv6').map((x) => x.endpoint), ['[2001:db8::2]:51820']);
    // auto: the peer's IPv4 is private and both IPv6 addresses are global, so IPv6 (selectMode).
    assert.deepEqual(one('auto').map((x) => x.endpoint), ['[2001:db8::2]:51820']);
    // ...but not when this node's IPv6 is unique-local.
    assert.deepEqual(one('auto', { extAddr6: tryParseIpv6('fd00:100::1') }).map((x) => x.endpoint), ['192.168.100.2:51820']);
  });

  test("selectMode: a public IPv4 wins; no PublicIPv6 means IPv4", () => {
    const opts = { extAddr: parseIpv4('198.51.100.1'), extAddr6: tryParseIpv6('2001:db8::1') };
    assert.equal(selectEndpointFamily(testLease6('10.5.1.0/24', '203.0.113.2', 'fd00:5:1::/64', '2001:db8::2'), opts), 4);
    assert.equal(selectEndpointFamily(testLease('10.5.1.0/24', '10.0.0.2'), opts), 4);
    assert.equal(selectEndpointFamily(testLease6('10.5.1.0/24', '10.0.0.2', 'fd00:5:1::/64', 'fd00::2'), opts), 4);
  });

  test('two leases with one PublicKey: the newer is the peer, the other is reported', () => {
    const p = plan([
      ['10.5.1.0/24', { lease: testLease('10.5.1.0/24', '192.168.100.2', 'wireguard', wgData(KEY_A)), since: 5 }],
      ['10.5.9.0/24', { lease: testLease('10.5.9.0/24', '192.168.100.2', 'wireguard', wgData(KEY_A)), since: 9 }],
    ]);
    assert.deepEqual(p.devices.get('flannel-wg')!.map((x) => x.allowedIps), [['10.5.9.0/24']]);
    assert.match(p.ignored.get('10.5.1.0/24')!, /also the newer lease 10\.5\.9\.0\/24's/);
  });

  test('a malformed PublicKey is a reason, never a peer', () => {
    const p = plan([['10.5.1.0/24', { lease: testLease('10.5.1.0/24', '192.168.100.2', 'wireguard', '{"PublicKey":"not-a-key","Port":51820}'), since: 1 }]]);
    assert.equal(p.devices.get('flannel-wg')!.length, 0);
    assert.match(p.ignored.get('10.5.1.0/24')!, /Ignoring lease 10\.5\.1\.0\/24: its PublicKey "not-a-key" cannot be a peer's/);
  });
});

describe('the device compared with the leases', () => {
  const want = {
    publicKey: KEY_A,
    listenPort: 51820,
    peers: [{ publicKey: KEY_B, presharedKey: undefined, endpoint: '192.168.100.2:51820', allowedIps: ['10.5.2.0/24'], persistentKeepalive: 0 }],
  };
  const peerState = { publicKey: KEY_B, presharedKey: undefined, endpoint: '192.168.100.2:51820', allowedIps: ['10.5.2.0/24'], latestHandshake: 0, rxBytes: 0, txBytes: 0, persistentKeepalive: 0 };

  test('equal: nothing to do; a roamed endpoint is not a difference', () => {
    assert.deepEqual(deviceDifferences(want, { publicKey: KEY_A, listenPort: 51820, peers: [peerState] }), []);
    assert.deepEqual(deviceDifferences(want, { publicKey: KEY_A, listenPort: 51820, peers: [{ ...peerState, endpoint: '198.51.100.7:4000' }] }), []);
  });

  test('every difference is named', () => {
    const diffs = deviceDifferences(want, {
      publicKey: KEY_C,
      listenPort: 1,
      peers: [
        { ...peerState, allowedIps: ['10.5.2.0/24', '0.0.0.0/0'], presharedKey: PSK, persistentKeepalive: 5 },
        { ...peerState, publicKey: KEY_C, allowedIps: [] },
      ],
    });
    assert.deepEqual(diffs, [
      "its private key is not this node's",
      'it listens on port 1, not 51820',
      'peer HIgo9xNz… has allowed IPs 0.0.0.0/0, 10.5.2.0/24, not 10.5.2.0/24',
      'peer HIgo9xNz… has a preshared key',
      'peer HIgo9xNz… has keepalive 5, not off',
      'peer TrMvSoP4… (no allowed IPs) belongs to no lease',
    ]);
    assert.deepEqual(deviceDifferences(want, { publicKey: KEY_A, listenPort: 51820, peers: [] }), ['peer HIgo9xNz… (10.5.2.0/24) is missing']);
  });
});

describe("wg's texts", () => {
  test('the dump: interface line without keeping the private key, then peers', () => {
    const dump = `PRIVATEKEYPRIVATEKEYPRIVATEKEYPRIVATEKEYPRI=\t${KEY_A}\t51820\toff\n${KEY_B}\t(none)\t192.168.100.2:51820\t10.5.2.0/24,fd00::/64\t1700000000\t100\t200\t25\n${KEY_C}\t${PSK}\t(none)\t(none)\t0\t0\t0\toff\n`;
    const s = parseWgDump(dump);
    assert.deepEqual(s, {
      publicKey: KEY_A,
      listenPort: 51820,
      peers: [
        { publicKey: KEY_B, presharedKey: undefined, endpoint: '192.168.100.2:51820', allowedIps: ['10.5.2.0/24', 'fd00::/64'], latestHandshake: 1700000000, rxBytes: 100, txBytes: 200, persistentKeepalive: 25 },
        { publicKey: KEY_C, presharedKey: PSK, endpoint: undefined, allowedIps: [], latestHandshake: 0, rxBytes: 0, txBytes: 0, persistentKeepalive: 0 },
      ],
    });
    assert.ok(!JSON.stringify(s).includes('PRIVATEKEY'));
    assert.throws(() => parseWgDump(`x\t${KEY_A}\t1\toff\n${KEY_B}\tonly-three\tfields\n`), /peer line 1 has 3 fields, not 8/);
  });

  test('the configuration wg syncconf reads', () => {
    const text = renderWgConfig({
      privateKey: KEY_C,
      listenPort: 51820,
      peers: [
        { publicKey: KEY_A, presharedKey: PSK, endpoint: '[2001:db8::2]:51821', allowedIps: ['10.5.1.0/24', 'fd00:5:1::/64'], persistentKeepalive: 25 },
        { publicKey: KEY_B, presharedKey: undefined, endpoint: '192.168.100.3:51820', allowedIps: ['10.5.2.0/24'], persistentKeepalive: 0 },
      ],
    });
    assert.equal(
      text,
      `[Interface]\nPrivateKey = ${KEY_C}\nListenPort = 51820\n\n[Peer]\nPublicKey = ${KEY_A}\nPresharedKey = ${PSK}\nEndpoint = [2001:db8::2]:51821\nAllowedIPs = 10.5.1.0/24, fd00:5:1::/64\nPersistentKeepalive = 25\n\n` +
        `[Peer]\nPublicKey = ${KEY_B}\nEndpoint = 192.168.100.3:51820\nAllowedIPs = 10.5.2.0/24\n`,
    );
  });

  test("wg's errors lose anything shaped like a key", () => {
    assert.equal(redactKeys(`Key is not the correct length or format: \`${PSK}'`), "Key is not the correct length or format: `<key>'");
  });
});

test("the kernel device's request: IFLA_LINKINFO with IFLA_INFO_KIND \"wireguard\" and no IFLA_INFO_DATA", () => {
  const info = encodeLinkInfoKind('wireguard');
  assert.deepEqual([...info], [14, 0, IFLA_INFO_KIND, 0, ...Buffer.from('wireguard\0'), 0, 0]);
  assert.deepEqual(decodeAttrs(info).map((a) => a.type), [IFLA_INFO_KIND]);
  assert.equal(linkKind(info), 'wireguard');
});

describe('the key file (with the real wg)', () => {
  const wg = new WgTool(new SystemCommandRunner());
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wgkey-'));
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));

  test('created once with mode 0400 in a new folder, then reused; the public key is the private key\'s', async () => {
    const file = path.join(dir, 'sub', 'wgkey');
    const first = await loadOrCreateNodeKey(file, wg);
    assert.equal(first.created, true);
    assert.equal(fs.statSync(file).mode & 0o777, 0o400);
    assert.equal(fs.readFileSync(file, 'utf8'), first.privateKey, 'the key without a newline, as upstream writes it');
    const again = await loadOrCreateNodeKey(file, wg);
    assert.deepEqual([again.created, again.privateKey, again.publicKey, again.looseMode], [false, first.privateKey, first.publicKey, undefined]);
    assert.equal(again.publicKey, await wg.pubkey(first.privateKey));
    assert.deepEqual(fs.readdirSync(path.dirname(file)), ['wgkey'], 'no temporary file left');
  });

  test("wg genkey's trailing newline is accepted; a readable file is warned about", async () => {
    const file = path.join(dir, 'genkey');
    fs.writeFileSync(file, `${KEY_C}\n`, { mode: 0o644 });
    fs.chmodSync(file, 0o644);
    const k = await loadOrCreateNodeKey(file, wg);
    assert.equal(k.privateKey, KEY_C);
    assert.match(k.looseMode!, /readable by others \(mode 0644\); chmod 0400 it/);
  });

  test('a file that holds no key is refused, naming the file and the fix, never its contents', async () => {
    const file = path.join(dir, 'bad');
    fs.writeFileSync(file, 'SECRET-but-not-a-key\n');
    await assert.rejects(loadOrCreateNodeKey(file, wg), (e: unknown) => {
      assert.ok(e instanceof WireguardKeyError);
      assert.match(e.message, new RegExp(`could not parse private key from file ${file}: .*remove the file to have a new one generated`));
      assert.ok(!e.message.includes('SECRET'));
      return true;
    });
  });
});
