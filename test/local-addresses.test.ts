/**
 * This node's addresses kept current (src/routing/local-addresses.ts): an
 * address notification (or lost notifications) leads to one listing, and a
 * changed set is announced and logged; an unchanged one is not. The real
 * netlink path is exercised by test/lease-guard.e2e.test.ts.
 */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { test } from 'node:test';
import { LOCAL_ADDRESS_SETTLE_MS, LocalAddresses, localAddressSet, localAddressTexts } from '../src/routing/local-addresses';
import type { NetlinkEventSource } from '../src/routing/netlink-events';
import type { DetailedAddress } from '../src/routing/rtnetlink';
import { RecordingLogger } from '../src/logging';
import { parseIpv4 } from '../src/util/ipv4';
import { tryParseIpv6 } from '../src/util/ipv6';

const addr4 = (index: number, a: string, prefixLen: number): DetailedAddress => ({ index, family: 4, address: parseIpv4(a), prefixLen, scope: 0, permanent: true }) as DetailedAddress;
const addr6 = (index: number, a: string): DetailedAddress => ({ index, family: 6, address: tryParseIpv6(a)!, prefixLen: 64, scope: 0, permanent: true }) as DetailedAddress;
const settle = () => new Promise((r) => setTimeout(r, LOCAL_ADDRESS_SETTLE_MS * 3));

test('the set: every address, sorted and unique, and the external interface\'s directed broadcasts', () => {
  const set = localAddressSet([addr4(2, '192.168.1.9', 24), addr4(1, '127.0.0.1', 8), addr4(3, '10.5.1.1', 24), addr6(2, 'fd00::9'), addr4(2, '192.168.1.9', 24)], 2);
  assert.deepEqual(localAddressTexts(set), ['10.5.1.1', '127.0.0.1', '192.168.1.9', 'fd00::9']);
  assert.deepEqual(set.directedBroadcasts, [parseIpv4('192.168.1.255')], 'only the external interface (index 2) gives one');
});

test('an address notification re-reads the addresses; a change is announced once and logged', async () => {
  const events = new EventEmitter() as unknown as NetlinkEventSource & EventEmitter;
  let current = [addr4(2, '192.168.1.9', 24)];
  let listings = 0;
  const log = new RecordingLogger();
  const local = new LocalAddresses(localAddressSet(current, 2), 2, async () => {
    listings++;
    return current;
  }, events, log);
  const changes: string[][] = [];
  local.on('change', (s) => changes.push(localAddressTexts(s)));
  try {
    // A burst of notifications: one listing.
    current = [...current, addr4(4, '10.5.1.1', 24)];
    for (let i = 0; i < 5; i++) events.emit('event', { kind: 'address', deleted: false, ifindex: 4 });
    await settle();
    assert.equal(listings, 1);
    assert.deepEqual(changes, [['10.5.1.1', '192.168.1.9']]);
    assert.match(log.records.at(-1)!.msg, /addresses changed: added \[10\.5\.1\.1\], removed \[\]/);
    // Routes and links do not matter; an unchanged set is not announced.
    events.emit('event', { kind: 'route', deleted: false, ifindex: undefined });
    events.emit('event', { kind: 'address', deleted: false, ifindex: 4 });
    await settle();
    assert.equal(listings, 2);
    assert.equal(changes.length, 1);
    // Lost notifications: everything is read again.
    current = [addr4(2, '192.168.1.9', 24)];
    events.emit('overflow');
    await settle();
    assert.deepEqual(changes.at(-1), ['192.168.1.9']);
  } finally {
    local.close();
  }
  // Closed: no more listings.
  events.emit('event', { kind: 'address', deleted: false, ifindex: 4 });
  await settle();
  assert.equal(listings, 3);
});
