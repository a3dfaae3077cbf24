/**
 * External interface selection (docs/compatibility.md §8.4) on a fake network view, with
 * the cases of upstream's pkg/ipmatch/match_test.go.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RecordingLogger } from '../src/logging';
import { InterfaceSelectionError, type NetworkView, selectExternalInterface, type SelectRequest } from '../src/routing/ext-iface';
import type { DetailedAddress, RouteInfo } from '../src/routing/rtnetlink';
import { formatIpv4, Ipv4Net, parseIpv4 } from '../src/util/ipv4';
import { formatIpv6, Ipv6Net, tryParseIpv6 } from '../src/util/ipv6';

const v4 = (index: number, a: string, extra: Partial<DetailedAddress> = {}): DetailedAddress => ({
  index,
  family: 4,
  address: parseIpv4(a),
  prefixLen: 24,
  scope: 0,
  permanent: true,
  temporary: false,
  deprecated: false,
  tentative: false,
  ...extra,
});
const v6 = (index: number, a: string, extra: Partial<DetailedAddress> = {}): DetailedAddress => ({ ...v4(index, '0.0.0.0'), family: 6, address: tryParseIpv6(a)!, prefixLen: 64, ...extra });

// upstream's fixture: dummy0 with these addresses.
function view(extraRoutes: RouteInfo[] = []): NetworkView {
  return {
    links: [
      { index: 1, name: 'lo', mtu: 65536, up: true, type: 772, txQueueLen: 1000 },
      { index: 2, name: 'dummy0', mtu: 1500, up: true, type: 1, txQueueLen: 1000 },
      { index: 3, name: 'eth9', mtu: 9000, up: true, type: 1, txQueueLen: 1000 },
    ],
    addresses: [
      v4(1, '127.0.0.1', { prefixLen: 8, scope: 254 }),
      v4(2, '1.10.100.1'),
      v4(2, '192.168.200.128', { temporary: true }),
      v4(2, '172.16.30.18', { temporary: true }),
      v4(2, '172.16.31.200', { temporary: true }),
      v4(2, '172.16.32.100', { temporary: true }),
      v6(2, '2001:db8::1'),
      v4(3, '169.254.3.3', { prefixLen: 16 }),
      v4(3, '10.20.0.5', { permanent: false }),
      v4(3, '10.20.0.6'),
    ],
    routes: extraRoutes,
    routes6: [],
    routeGet: async (dst) => {
      if (typeof dst === 'bigint') return formatIpv6(dst).startsWith('2001:db8:') ? { oif: 2, prefsrc: tryParseIpv6('2001:db8::1') } : { oif: undefined, prefsrc: undefined };
      return formatIpv4(dst).startsWith('172.16.32.') ? { oif: 2, prefsrc: parseIpv4('172.16.32.100') } : { oif: undefined, prefsrc: undefined };
    },
  };
}

const defaultRoute6 = (oif: number, gw = 'fe80::1'): RouteInfo<Ipv6Net> =>
  ({ dst: Ipv6Net.tryParse('::/0')!, gateway: tryParseIpv6(gw), oif, type: 'unicast', protocol: 3, scope: 'universe', table: 254 }) as unknown as RouteInfo<Ipv6Net>;

const req = (r: Partial<SelectRequest>): SelectRequest => ({ iface: [], ifaceRegex: [], ifaceCanReach: '', publicIp: '', publicIpv6: '', ipv4: true, ipv6: false, ...r });
const pick = async (r: Partial<SelectRequest>, v = view()) => selectExternalInterface(v, req(r), new RecordingLogger());

test('regex on an IP picks that address', async () => {
  const e = await pick({ ifaceRegex: ['192\\.168\\.200\\..*'] });
  assert.equal(e.name, 'dummy0');
  assert.equal(formatIpv4(e.ifaceAddr!), '192.168.200.128');
  assert.equal(formatIpv4(e.extAddr!), '192.168.200.128');
});

test('regex on a name picks the first address', async () => {
  const e = await pick({ ifaceRegex: ['^dummy'] });
  assert.equal(e.name, 'dummy0');
  assert.equal(formatIpv4(e.ifaceAddr!), '1.10.100.1');
});

test('-iface by name and by IP; dual stack also yields the IPv6 address', async () => {
  assert.equal(formatIpv4((await pick({ iface: ['dummy0'] })).ifaceAddr!), '1.10.100.1');
  const e = await pick({ iface: ['172.16.30.18'], ipv6: true });
  assert.equal(formatIpv4(e.ifaceAddr!), '172.16.30.18');
  assert.equal(formatIpv6(e.ifaceAddr6!), '2001:db8::1');
});

test('regex plus -public-ip: the advertised address is the public IP', async () => {
  const e = await pick({ ifaceRegex: ['^dummy'], publicIp: '172.16.31.200' });
  assert.equal(formatIpv4(e.ifaceAddr!), '1.10.100.1');
  assert.equal(formatIpv4(e.extAddr!), '172.16.31.200');
});

test('-iface-can-reach uses the route\'s interface and preferred source', async () => {
  const e = await pick({ ifaceCanReach: '172.16.32.254' });
  assert.equal(e.name, 'dummy0');
  assert.equal(formatIpv4(e.ifaceAddr!), '172.16.32.100');
});

test('address order: global before link-local, permanent before dynamic', async () => {
  assert.equal(formatIpv4((await pick({ iface: ['eth9'] })).ifaceAddr!), '10.20.0.6');
  assert.equal((await pick({ iface: ['eth9'] })).mtu, 9000);
});

test('attempts go in order; failures are logged and the first success wins', async () => {
  const log = new RecordingLogger();
  const e = await selectExternalInterface(view(), req({ iface: ['nosuch0', 'eth9'], ifaceRegex: ['^dummy'] }), log);
  assert.equal(e.name, 'eth9');
  assert.ok(log.records.some((r) => /Could not find valid interface matching nosuch0/.test(r.msg)));
  assert.ok(log.records.some((r) => /Using interface with name eth9 and address 10\.20\.0\.6/.test(r.msg)));
});

test('no flags: the default route\'s interface, or the one holding -public-ip', async () => {
  const def: RouteInfo = { dst: Ipv4Net.parse('0.0.0.0/0'), gateway: parseIpv4('10.20.0.1'), oif: 3, table: 254, protocol: 3, scope: 'universe', type: 'unicast', onlink: false, priority: 0 };
  assert.equal((await pick({}, view([def]))).name, 'eth9');
  assert.equal((await pick({ publicIp: '172.16.30.18' }, view([def]))).name, 'dummy0');
  await assert.rejects(pick({ publicIp: '8.8.8.8' }, view([def])), /^InterfaceSelectionError: Failed to find any valid interface to use: no interface with address 8\.8\.8\.8/);
  await assert.rejects(pick({}), /Failed to find any valid interface to use: there is no IPv4 default route/);
});

test('nothing matches: upstream\'s message with the candidates', async () => {
  await assert.rejects(pick({ iface: ['nosuch0'], ifaceRegex: ['^wl'] }), (e: unknown) => {
    assert.ok(e instanceof InterfaceSelectionError);
    assert.match(e.message, /^Failed to find interface to use that matches the interfaces and\/or regexes provided/);
    assert.match(e.message, /dummy0:\[1\.10\.100\.1 /);
    return true;
  });
  await assert.rejects(pick({ ifaceRegex: ['('] }), /Failed to find interface/);
  await assert.rejects(pick({ iface: ['dummy0'], publicIp: 'x.y' }), /invalid public IP address: x\.y/);
});

test('IPv6 only, no interface given: the interface of the IPv6 default route, as upstream (GetDefaultV6GatewayInterface)', async () => {
  const v = { ...view(), routes6: [defaultRoute6(2)] };
  const e = await pick({ ipv4: false, ipv6: true }, v);
  assert.equal(e.name, 'dummy0');
  assert.equal(formatIpv6(e.extAddr6!), '2001:db8::1');
  await assert.rejects(pick({ ipv4: false, ipv6: true }), /there is no IPv6 default route; give -iface, -iface-regex, -iface-can-reach or -public-ipv6/);
});

test('dual stack, no interface given: the IPv6 default route, when there is one, must leave through the IPv4 one\'s interface', async () => {
  const v4route = { dst: Ipv4Net.parse('0.0.0.0/0'), gateway: parseIpv4('1.10.100.254'), oif: 2, type: 'unicast', protocol: 3, scope: 'universe', table: 254 } as unknown as RouteInfo;
  const same = { ...view([v4route]), routes6: [defaultRoute6(2)] };
  assert.equal((await pick({ ipv6: true }, same)).name, 'dummy0');
  const other = { ...view([v4route]), routes6: [defaultRoute6(3)] };
  await assert.rejects(pick({ ipv6: true }, other), /v6 default route interface eth9 must be the same with v4 default route interface dummy0/);
});

test('-iface-can-reach takes an IPv6 address too: the route\'s interface and preferred source', async () => {
  const e = await pick({ ipv4: false, ipv6: true, ifaceCanReach: '2001:db8::99' });
  assert.equal(e.name, 'dummy0');
  assert.equal(formatIpv6(e.ifaceAddr6!), '2001:db8::1');
});
