/**
 * The etcd subnet manager's logic against the in-memory registry
 * (test/helpers/memory-registry.ts), as upstream tests its manager against
 * mock_registry.go: acquisition (upstream's TestAcquireLease and
 * TestConfigChanged), a lost creation race, renewal, loss, and the watch of
 * the other leases (snapshot, changes, bad keys, compaction). The same
 * manager runs against a real etcd in etcd-lease.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { EtcdSubnetManager, type EtcdSubnetManagerOptions } from '../src/lease/etcd/subnet-manager';
import type { LeaseAttrs, LeaseEvent } from '../src/lease/lease';
import { RecordingLogger } from '../src/log';
import { Ipv4Net, parseIpv4 } from '../src/util/ipv4';
import { eventually } from './helpers/eventually';
import { MemoryRegistry } from './helpers/memory-registry';

// upstream's fixture (pkg/subnet/etcd/subnet_test.go): leases 10.3.1/2/4/5.0/24 and an
// out-of-range 10.3.31.0/24 held by 1.1.1.1; our node is 1.2.3.4.
const CONFIG = '{"Network":"10.3.0.0/16","SubnetMin":"10.3.1.0","SubnetMax":"10.3.25.0"}';
const attrs = (ip: string): LeaseAttrs => ({ publicIp: parseIpv4(ip), publicIpv6: undefined, backendType: '', backendData: undefined, backendV6Data: undefined });
const udpValue = (ip: string) => `{"PublicIP":"${ip}","PublicIPv6":null}`;
const signal = () => new AbortController().signal;

function fixture(): MemoryRegistry {
  const r = new MemoryRegistry('/coreos.com/network', Date.now());
  r.put(r.configKey, CONFIG);
  for (const s of ['10.3.1.0', '10.3.2.0', '10.3.4.0', '10.3.5.0', '10.3.31.0']) r.put(`${r.subnetsPrefix}/${s}-24`, udpValue('1.1.1.1'), r.grantLease(86400));
  return r;
}

function manager(registry: MemoryRegistry, extra: Partial<EtcdSubnetManagerOptions> = {}): { m: EtcdSubnetManager; log: RecordingLogger } {
  const log = new RecordingLogger();
  return { m: new EtcdSubnetManager({ registry, log, configRetryMs: 10, ...extra }), log };
}

describe('etcd subnet manager against the in-memory registry', () => {
  test('acquires a free subnet in range with upstream\'s exact value and a 24 h lease (TestAcquireLease)', async () => {
    const r = fixture();
    const { m } = manager(r);
    const l = await m.acquireLease(attrs('1.2.3.4'), signal());
    const ip = l.subnet.ip;
    assert.ok(ip >= parseIpv4('10.3.1.0') && ip <= parseIpv4('10.3.25.0') && l.subnet.prefixLen === 24);
    assert.ok(!['10.3.1.0', '10.3.2.0', '10.3.4.0', '10.3.5.0'].includes(l.subnet.toString().split('/')[0]!));
    const kv = r.get(r.keyOf(l.subnet))!;
    assert.equal(kv.value, udpValue('1.2.3.4'));
    assert.equal(await r.leaseTtlSeconds(kv.lease), 86400);
    // A second acquisition with the same PublicIP reuses it.
    const again = await manager(r).m.acquireLease(attrs('1.2.3.4'), signal());
    assert.equal(again.subnet.toString(), l.subnet.toString());
  });

  test('the previous subnet is reused when free and in range, ignored outside the network (TestAcquireLease)', async () => {
    const r = fixture();
    const { m } = manager(r, { previous: { subnet: Ipv4Net.parse('10.3.6.0/24'), ipv6Subnet: undefined } });
    assert.equal((await m.acquireLease(attrs('1.2.3.4'), signal())).subnet.toString(), '10.3.6.0/24');
    const { m: m2, log } = manager(r, { previous: { subnet: Ipv4Net.parse('10.4.1.0/24'), ipv6Subnet: undefined } });
    const l2 = await m2.acquireLease(attrs('1.2.3.5'), signal());
    assert.notEqual(l2.subnet.toString(), '10.4.1.0/24');
    assert.ok(log.records.some((x) => /previous subnet 10\.4\.1\.0\/24 .* does not fit/.test(x.msg)));
  });

  test('after the network config changes, a fresh subnet in the new network (TestConfigChanged)', async () => {
    const r = fixture();
    const first = await manager(r).m.acquireLease(attrs('1.2.3.4'), signal());
    r.put(r.configKey, '{"Network":"10.4.0.0/16"}');
    const second = await manager(r).m.acquireLease(attrs('1.2.3.4'), signal());
    assert.ok(Ipv4Net.parse('10.4.0.0/16').containsNet(second.subnet), second.subnet.toString());
    assert.equal(r.get(r.keyOf(first.subnet)), undefined, 'the lease that no longer fits was deleted');
  });

  test('a creation race lost to another node is retried with another subnet', async () => {
    const r = new MemoryRegistry('/p', Date.now());
    r.put(r.configKey, '{"Network":"10.3.0.0/16","SubnetMin":"10.3.1.0","SubnetMax":"10.3.2.0"}');
    let raced = false;
    r.hooks.beforeWrite = (kind, key) => {
      if (kind === 'create' && !raced) {
        raced = true;
        r.put(key, udpValue('9.9.9.9')); // another node creates the same key first
      }
      return 'ok';
    };
    const { m, log } = manager(r, { random: () => 0 });
    const l = await m.acquireLease(attrs('1.2.3.4'), signal());
    assert.equal(l.subnet.toString(), '10.3.2.0/24');
    assert.ok(log.records.some((x) => /lost a race for \/p\/subnets\/10\.3\.1\.0-24/.test(x.msg)));
  });

  test('out of subnets: an error that says so', async () => {
    const r = new MemoryRegistry('/p', Date.now());
    r.put(r.configKey, '{"Network":"10.3.0.0/16","SubnetMin":"10.3.1.0","SubnetMax":"10.3.1.0"}');
    r.put(`${r.subnetsPrefix}/10.3.1.0-24`, udpValue('9.9.9.9'));
    await assert.rejects(manager(r).m.acquireLease(attrs('1.2.3.4'), signal()), /out of subnets/);
  });

  test('renewal before expiry attaches a fresh etcd lease with the same value and revokes the old one', { timeout: 20_000 }, async () => {
    const r = fixture();
    const { m, log } = manager(r, { leaseTtlSeconds: 60, renewMarginMs: 59_500 });
    const l = await m.acquireLease(attrs('1.2.3.4'), signal());
    const key = r.keyOf(l.subnet);
    const before = r.get(key)!;
    const held = m.holdLease(l);
    await eventually(() => r.get(key)!.lease, (id) => id !== before.lease, 5000, 'a renewal');
    assert.equal(r.get(key)!.value, before.value);
    assert.equal(await r.leaseTtlSeconds(before.lease), -1, 'the previous etcd lease is revoked');
    assert.ok(log.records.some((x) => /^Lease renewed/.test(x.msg)));
    await held.stop();
    await m.close();
  });

  test('the own key deleted by hand is a lease loss', async () => {
    const r = fixture();
    const { m } = manager(r);
    const l = await m.acquireLease(attrs('1.2.3.4'), signal());
    const held = m.holdLease(l);
    await new Promise((res) => setTimeout(res, 20));
    r.delete(r.keyOf(l.subnet));
    const loss = await held.lost;
    assert.match(loss.reason, /deleted/);
    await m.close();
  });

  test('the watch: the listing first, then changes; the own lease never; a bad key skipped once, others flow', async () => {
    const r = fixture();
    const { m, log } = manager(r);
    const own = await m.acquireLease(attrs('1.2.3.4'), signal());
    const batches: LeaseEvent[][] = [];
    const w = m.watchLeases(own, (ev) => batches.push(ev));
    await eventually(() => batches.length, (n) => n >= 1, 2000, 'the first batch');
    assert.deepEqual(batches[0]!.map((e) => `${e.type} ${e.lease.subnet}`).sort(), ['added 10.3.1.0/24', 'added 10.3.2.0/24', 'added 10.3.31.0/24', 'added 10.3.4.0/24', 'added 10.3.5.0/24']);
    r.put(`${r.subnetsPrefix}/10.3.7.0-24`, udpValue('1.1.1.7'));
    r.put(`${r.subnetsPrefix}/junk`, 'x');
    r.put(`${r.subnetsPrefix}/10.3.8.0-24`, 'not json');
    r.put(`${r.subnetsPrefix}/10.3.9.0-24`, udpValue('1.1.1.9'));
    r.delete(`${r.subnetsPrefix}/10.3.1.0-24`);
    await eventually(() => batches.flat().map((e) => `${e.type} ${e.lease.subnet}`), (x) => x.includes('removed 10.3.1.0/24'), 2000, 'the changes');
    assert.deepEqual(batches.slice(1).flat().map((e) => `${e.type} ${e.lease.subnet}`), ['added 10.3.7.0/24', 'added 10.3.9.0/24', 'removed 10.3.1.0/24']);
    assert.equal(log.records.filter((x) => /Ignoring bad subnet node/.test(x.msg)).length, 2);
    assert.equal(w.stats.skippedKeys, 2);
    await w.stop();
    await m.close();
  });

  test('a watch that falls behind a compaction re-lists and re-emits a lease whose PublicIP changed', async () => {
    const r = fixture();
    const { m } = manager(r);
    const own = await m.acquireLease(attrs('1.2.3.4'), signal());
    const batches: LeaseEvent[][] = [];
    const w = m.watchLeases(own, (ev) => batches.push(ev));
    await eventually(() => w.stats.connected, (c) => c, 2000, 'connected');
    r.down();
    r.put(`${r.subnetsPrefix}/10.3.2.0-24`, udpValue('1.1.1.22')); // moved while we could not hear
    r.compact();
    r.up();
    await eventually(() => batches.flat().filter((e) => e.lease.subnet.toString() === '10.3.2.0/24').length, (n) => n === 2, 2000, 'the moved lease re-emitted');
    assert.equal(batches.at(-1)![0]!.lease.attrs.publicIp, parseIpv4('1.1.1.22'));
    assert.ok(w.stats.resyncs >= 1);
    await w.stop();
    await m.close();
  });
});
