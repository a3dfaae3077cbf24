/**
 * The etcd subnet manager and registry logic against the in-memory etcd
 * (test/helpers/memory-kv.ts), as upstream tests its manager against
 * mock_registry.go: acquisition (upstream's TestAcquireLease and
 * TestConfigChanged), a lost creation race, renewal, loss, the watch of the
 * other leases (snapshot, changes, bad keys, compaction), and the moments a
 * real etcd does not expose on demand: a write applied whose reply was lost,
 * a put between the listing and the watch, a wiped etcd. The same manager
 * runs against a real etcd in etcd-lease.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SubnetRegistry } from '../src/lease/etcd/registry';
import { EtcdSubnetManager, type EtcdSubnetManagerOptions } from '../src/lease/etcd/subnet-manager';
import type { LeaseAttrs, RecordBatch } from '../src/lease/lease';
import { RecordingLogger } from '../src/logging';
import { Ipv4Net, parseIpv4 } from '../src/util/ipv4';
import { Ipv6Net } from '../src/util/ipv6';
import { eventually } from './helpers/eventually';
import { MemoryKv } from './helpers/memory-kv';

// upstream's fixture (pkg/subnet/etcd/subnet_test.go): leases 10.3.1/2/4/5.0/24 and an
// out-of-range 10.3.31.0/24 held by 1.1.1.1; our node is 1.2.3.4.
const CONFIG = '{"Network":"10.3.0.0/16","SubnetMin":"10.3.1.0","SubnetMax":"10.3.25.0"}';
const attrs = (ip: string): LeaseAttrs => ({ publicIp: parseIpv4(ip), publicIpv6: undefined, backendType: '', backendData: undefined, backendV6Data: undefined });
const udpValue = (ip: string) => `{"PublicIP":"${ip}","PublicIPv6":null}`;
const signal = () => new AbortController().signal;

const PREFIX = '/coreos.com/network';
const SUBNETS = `${PREFIX}/subnets`;
const CONFIG_KEY = `${PREFIX}/config`;

function fixture(): MemoryKv {
  const kv = new MemoryKv();
  kv.put(CONFIG_KEY, CONFIG);
  for (const s of ['10.3.1.0', '10.3.2.0', '10.3.4.0', '10.3.5.0', '10.3.31.0']) kv.put(`${SUBNETS}/${s}-24`, udpValue('1.1.1.1'), kv.grantLease(86400));
  return kv;
}

function manager(kv: MemoryKv, extra: Partial<EtcdSubnetManagerOptions> = {}, prefix = PREFIX): { m: EtcdSubnetManager; log: RecordingLogger } {
  const log = new RecordingLogger();
  return { m: new EtcdSubnetManager({ registry: new SubnetRegistry(kv, prefix, log), log, configRetryMs: 10, ...extra }), log };
}

const keyOf = (cidr: string, prefix = PREFIX) => `${prefix}/subnets/${cidr.replace('/', '-')}`;

/** The records a watch reported, as "put <key>" / "delete <key>" lines after the first snapshot. */
function changesOf(batches: RecordBatch[]): string[] {
  return batches.flatMap((b) => (b.kind === 'changes' ? b.changes.map((c) => (c.type === 'put' ? `put ${c.record.id}` : `delete ${c.id}`)) : []));
}

describe('etcd subnet manager on the in-memory etcd', () => {
  test("acquires a free subnet in range with upstream's exact value and a 24 h lease (TestAcquireLease)", async () => {
    const kv = fixture();
    const { m } = manager(kv);
    const l = await m.acquireLease(attrs('1.2.3.4'), signal());
    const ip = l.subnet.ip;
    assert.ok(ip >= parseIpv4('10.3.1.0') && ip <= parseIpv4('10.3.25.0') && l.subnet.prefixLen === 24);
    assert.ok(!['10.3.1.0', '10.3.2.0', '10.3.4.0', '10.3.5.0'].includes(l.subnet.toString().split('/')[0]!));
    const e = kv.entry(keyOf(l.subnet.toString()))!;
    assert.equal(e.value, udpValue('1.2.3.4'));
    assert.equal(await kv.timeToLive(e.lease), 86400);
    const again = await manager(kv).m.acquireLease(attrs('1.2.3.4'), signal());
    assert.equal(again.subnet.toString(), l.subnet.toString(), 'the same PublicIP reuses it');
  });

  test('the previous subnet is reused when free and in range, ignored outside the network (TestAcquireLease)', async () => {
    const kv = fixture();
    const { m } = manager(kv, { previous: { subnet: Ipv4Net.parse('10.3.6.0/24'), ipv6Subnet: undefined } });
    assert.equal((await m.acquireLease(attrs('1.2.3.4'), signal())).subnet.toString(), '10.3.6.0/24');
    const { m: m2, log } = manager(kv, { previous: { subnet: Ipv4Net.parse('10.4.1.0/24'), ipv6Subnet: undefined } });
    const l2 = await m2.acquireLease(attrs('1.2.3.5'), signal());
    assert.notEqual(l2.subnet.toString(), '10.4.1.0/24');
    assert.ok(log.records.some((x) => /previous subnet 10\.4\.1\.0\/24 .* does not fit/.test(x.msg)));
  });

  test('dual stack: the previous subnets are reused only when no lease holds either family; a clash means a fresh allocation', async () => {
    const dual = '{"Network":"10.3.0.0/16","SubnetMin":"10.3.1.0","SubnetMax":"10.3.25.0","EnableIPv6":true,"IPv6Network":"fd00:3::/48","IPv6SubnetLen":64}';
    const v6 = (s: string) => Ipv6Net.tryParse(s)!;
    for (const [other, why] of [
      ['10.3.6.0-24&fd00:3:0:99::-64', 'the IPv4 subnet is another node\'s'],
      ['10.3.9.0-24&fd00:3:0:6::-64', 'the IPv6 subnet is another node\'s'],
    ] as const) {
      const kv = new MemoryKv();
      kv.put(CONFIG_KEY, dual);
      kv.put(`${SUBNETS}/${other}`, udpValue('1.1.1.1'), kv.grantLease(86400));
      const { m, log } = manager(kv, { previous: { subnet: Ipv4Net.parse('10.3.6.0/24'), ipv6Subnet: v6('fd00:3:0:6::/64') } });
      const l = await m.acquireLease(attrs('1.2.3.4'), signal());
      assert.ok(!l.subnet.overlaps(Ipv4Net.parse(other.startsWith('10.3.6') ? '10.3.6.0/24' : '10.3.9.0/24')), why);
      assert.ok(!l.ipv6Subnet!.overlaps(v6(other.includes(':6::') ? 'fd00:3:0:6::/64' : 'fd00:3:0:99::/64')), why);
      assert.ok(log.records.some((x) => /is held \(in part\) by .* allocating another/.test(x.msg)), why);
    }
  });

  test('a lease with our PublicIP that shares a subnet with an older lease is given up for a fresh one', async () => {
    const kv = new MemoryKv();
    kv.put(CONFIG_KEY, '{"Network":"10.3.0.0/16","SubnetMin":"10.3.1.0","SubnetMax":"10.3.25.0","EnableIPv6":true,"IPv6Network":"fd00:3::/48","IPv6SubnetLen":64}');
    // 10.3.2.0/24 is 1.1.1.1's (older); a later key of ours with another IPv6 part has it too.
    kv.put(`${SUBNETS}/10.3.2.0-24&fd00:3:0:2::-64`, udpValue('1.1.1.1'), kv.grantLease(86400));
    kv.put(`${SUBNETS}/10.3.2.0-24&fd00:3:0:9::-64`, udpValue('1.2.3.4'), kv.grantLease(86400));
    const { m, log } = manager(kv);
    const l = await m.acquireLease(attrs('1.2.3.4'), signal());
    assert.ok(!l.subnet.overlaps(Ipv4Net.parse('10.3.2.0/24')), l.subnet.toString());
    assert.equal(kv.entry(`${SUBNETS}/10.3.2.0-24&fd00:3:0:9::-64`), undefined, 'the clashing key is deleted');
    assert.ok(log.records.some((x) => /shares a subnet with the older lease .*10\.3\.2\.0-24&fd00:3:0:2::-64; deleting it/.test(x.msg)));
  });

  test("vxlan: a node whose PublicIP changed takes over its previous lease when it carries its VtepMAC, instead of writing a twin", async () => {
    const kv = new MemoryKv();
    kv.put(CONFIG_KEY, '{"Network":"10.3.0.0/16","SubnetMin":"10.3.1.0","SubnetMax":"10.3.25.0","Backend":{"Type":"vxlan"}}');
    const data = '{"VNI":1,"VtepMAC":"0a:00:00:00:00:07"}';
    kv.put(`${SUBNETS}/10.3.7.0-24`, `{"PublicIP":"1.2.3.4","PublicIPv6":null,"BackendType":"vxlan","BackendData":${data}}`, kv.grantLease(86400));
    kv.put(`${SUBNETS}/10.3.8.0-24`, `{"PublicIP":"1.1.1.8","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"0a:00:00:00:00:08"}}`, kv.grantLease(86400));
    const vx = (ip: string, mac: string): LeaseAttrs => ({ ...attrs(ip), backendType: 'vxlan', backendData: `{"VNI":1,"VtepMAC":"${mac}"}` });
    // Its previous lease, named in subnet.env, carries its MAC: taken over with the new PublicIP.
    const { m, log } = manager(kv, { previous: { subnet: Ipv4Net.parse('10.3.7.0/24'), ipv6Subnet: undefined } });
    const l = await m.acquireLease(vx('1.2.3.99', '0a:00:00:00:00:07'), signal());
    assert.equal(l.subnet.toString(), '10.3.7.0/24');
    assert.match(kv.entry(`${SUBNETS}/10.3.7.0-24`)!.value, /"PublicIP":"1\.2\.3\.99"/);
    assert.equal(kv.keys().filter((k) => k.startsWith(`${SUBNETS}/`)).length, 2, 'no second lease');
    assert.ok(log.records.some((x) => /taking over the previous lease .*10\.3\.7\.0-24/.test(x.msg)));
    // Another node's lease named in a (copied) subnet.env is never taken: its MAC is not ours.
    const other = manager(kv, { previous: { subnet: Ipv4Net.parse('10.3.8.0/24'), ipv6Subnet: undefined } });
    const l2 = await other.m.acquireLease(vx('1.2.3.50', '0a:00:00:00:00:50'), signal());
    assert.notEqual(l2.subnet.toString(), '10.3.8.0/24');
    assert.match(kv.entry(`${SUBNETS}/10.3.8.0-24`)!.value, /1\.1\.1\.8/);
  });

  test('after the network config changes, a fresh subnet in the new network (TestConfigChanged)', async () => {
    const kv = fixture();
    const first = await manager(kv).m.acquireLease(attrs('1.2.3.4'), signal());
    kv.put(CONFIG_KEY, '{"Network":"10.4.0.0/16"}');
    const second = await manager(kv).m.acquireLease(attrs('1.2.3.4'), signal());
    assert.ok(Ipv4Net.parse('10.4.0.0/16').containsNet(second.subnet), second.subnet.toString());
    assert.equal(kv.entry(keyOf(first.subnet.toString())), undefined, 'the lease that no longer fits was deleted');
  });

  test('a creation race lost to another node is retried with another subnet', async () => {
    const kv = new MemoryKv();
    kv.put(CONFIG_KEY, '{"Network":"10.3.0.0/16","SubnetMin":"10.3.1.0","SubnetMax":"10.3.2.0"}');
    let raced = false;
    kv.hooks.beforeWrite = (kind, key) => {
      if (kind === 'put' && key.includes('/subnets/') && !raced) {
        raced = true;
        kv.put(key, udpValue('9.9.9.9')); // another node creates the same key first
      }
      return 'ok';
    };
    const { m, log } = manager(kv, { random: () => 0 });
    const l = await m.acquireLease(attrs('1.2.3.4'), signal());
    assert.equal(l.subnet.toString(), '10.3.2.0/24');
    assert.ok(log.records.some((x) => /lost a race for \/coreos\.com\/network\/subnets\/10\.3\.1\.0-24/.test(x.msg)));
  });

  test('out of subnets: an error that says so', async () => {
    const kv = new MemoryKv();
    kv.put(CONFIG_KEY, '{"Network":"10.3.0.0/16","SubnetMin":"10.3.1.0","SubnetMax":"10.3.1.0"}');
    kv.put(`${SUBNETS}/10.3.1.0-24`, udpValue('9.9.9.9'));
    await assert.rejects(manager(kv).m.acquireLease(attrs('1.2.3.4'), signal()), /out of subnets/);
  });

  test('a lease outside the Network blocks nothing: a 0.0.0.0-0 key no longer makes new nodes run out of subnets', async () => {
    const kv = new MemoryKv();
    kv.put(CONFIG_KEY, '{"Network":"10.3.0.0/16","SubnetMin":"10.3.1.0","SubnetMax":"10.3.2.0"}');
    kv.put(`${SUBNETS}/0.0.0.0-0`, udpValue('9.9.9.9'));
    kv.put(`${SUBNETS}/10.3.1.0-25`, udpValue('9.9.9.8')); // inside the Network, another size: still blocks
    const l = await manager(kv).m.acquireLease(attrs('1.2.3.4'), signal());
    assert.equal(l.subnet.toString(), '10.3.2.0/24');
  });

  test('renewal before expiry attaches a fresh etcd lease with the same value and revokes the old one', { timeout: 20_000 }, async () => {
    const kv = fixture();
    const { m, log } = manager(kv, { leaseTtlSeconds: 60, renewMarginMs: 59_500 });
    const l = await m.acquireLease(attrs('1.2.3.4'), signal());
    const key = keyOf(l.subnet.toString());
    const before = kv.entry(key)!;
    const held = m.holdLease(l);
    await eventually(() => kv.entry(key)!.lease, (id) => id !== before.lease, 5000, 'a renewal');
    assert.equal(kv.entry(key)!.value, before.value);
    assert.equal(await kv.timeToLive(before.lease), -1, 'the previous etcd lease is revoked');
    assert.ok(log.records.some((x) => /^Lease renewed/.test(x.msg)));
    await held.stop();
    await m.close();
  });

  test('a renewal applied whose reply was lost keeps the lease (the new etcd lease is not revoked)', { timeout: 20_000 }, async () => {
    const kv = fixture();
    const { m, log } = manager(kv, { leaseTtlSeconds: 60, renewMarginMs: 59_500 });
    const l = await m.acquireLease(attrs('1.2.3.4'), signal());
    const key = keyOf(l.subnet.toString());
    let lost = 0;
    kv.hooks.beforeWrite = (kind, k) => (kind === 'put' && k === key && lost++ === 0 ? 'apply-then-fail' : 'ok');
    const held = m.holdLease(l);
    let lostLease = false;
    void held.lost.then(() => (lostLease = true));
    await eventually(() => log.records, (r) => r.some((x) => /landed although its reply was lost/.test(x.msg)), 5000, 'the read-back');
    await new Promise((res) => setTimeout(res, 100));
    assert.ok(kv.entry(key), 'the key is still there');
    assert.equal(await kv.timeToLive(kv.entry(key)!.lease), 60, 'attached to the renewal\'s etcd lease');
    assert.equal(lostLease, false, 'no LEASE LOST');
    await held.stop();
    await m.close();
  });

  test('a creation applied whose reply was lost is the acquired lease', async () => {
    const kv = fixture();
    kv.hooks.beforeWrite = (kind, key) => (kind === 'put' && key.includes('/subnets/') ? 'apply-then-fail' : 'ok');
    const { m } = manager(kv);
    const l = await m.acquireLease(attrs('1.2.3.4'), signal());
    const e = kv.entry(keyOf(l.subnet.toString()))!;
    assert.equal(e.value, udpValue('1.2.3.4'));
    assert.equal(await kv.timeToLive(e.lease), 86400, 'its etcd lease was kept');
  });

  test('a write that surely failed revokes the etcd lease it granted', async () => {
    const kv = fixture();
    let failed = 0;
    kv.hooks.beforeWrite = (kind, key) => (kind === 'put' && key.includes('/subnets/') && failed++ === 0 ? 'fail' : 'ok');
    const revoked: string[] = [];
    const grantCount = () => kv.writes.filter((w) => w.kind === 'grant').length;
    const { m } = manager(kv);
    await m.acquireLease(attrs('1.2.3.4'), signal());
    for (const w of kv.writes) if (w.kind === 'revoke') revoked.push(w.key);
    assert.equal(revoked.length, 1, 'the lease granted for the failed write');
    assert.equal(grantCount(), 2);
  });

  test('a renewal due while etcd is unreachable happens as soon as it is back', { timeout: 20_000 }, async () => {
    const kv = fixture();
    const { m, log } = manager(kv, { leaseTtlSeconds: 60, renewMarginMs: 59_000 });
    const l = await m.acquireLease(attrs('1.2.3.4'), signal());
    const key = keyOf(l.subnet.toString());
    const before = kv.entry(key)!.lease;
    kv.down();
    const held = m.holdLease(l);
    await eventually(() => log.records, (r) => r.some((x) => /Error renewing lease \(trying again in [0-9.]+ s\)/.test(x.msg)), 5000, 'a failed renewal');
    kv.up();
    await eventually(() => kv.entry(key)!.lease, (id) => id !== before, 5000, 'the renewal once etcd is back');
    await held.stop();
    await m.close();
  });

  test('a lease whose expiry passes while etcd is unreachable: reported (readiness), kept until etcd answers, then lost if the key is gone', { timeout: 20_000 }, async () => {
    const kv = fixture();
    const { m, log } = manager(kv, { leaseTtlSeconds: 1, renewMarginMs: 500, renewRetryMs: 200 });
    const l = await m.acquireLease(attrs('1.2.3.4'), signal());
    kv.down();
    const held = m.holdLease(l);
    await eventually(() => held.problem, (p) => p !== undefined, 5000, 'the expiry noted');
    assert.match(held.problem!, /expired at .* without a renewal \(etcd unreachable\); routing continues/);
    assert.ok(log.records.some((x) => /expired at .* could not be renewed: etcd has been unreachable/.test(x.msg)));
    assert.equal(await Promise.race([held.lost.then(() => 'lost'), new Promise((r) => setTimeout(() => r('held'), 300))]), 'held', 'not lost while etcd is away');
    kv.advance(2000); // etcd's own TTL ran: the key is gone
    kv.up();
    const loss = await held.lost;
    assert.match(loss.reason, /no longer holds|deleted/);
    await m.close();
  });

  test('the own key deleted by hand is a lease loss', async () => {
    const kv = fixture();
    const { m } = manager(kv);
    const l = await m.acquireLease(attrs('1.2.3.4'), signal());
    const held = m.holdLease(l);
    await new Promise((res) => setTimeout(res, 20));
    kv.delete(keyOf(l.subnet.toString()));
    const loss = await held.lost;
    assert.match(loss.reason, /deleted/);
    await m.close();
  });

  test('a foreign write to our key with our PublicIP is adopted only when its attributes are ours; otherwise it is a takeover', async () => {
    const kv = fixture();
    const { m } = manager(kv);
    const l = await m.acquireLease(attrs('1.2.3.4'), signal());
    const held = m.holdLease(l);
    await new Promise((res) => setTimeout(res, 20));
    const key = keyOf(l.subnet.toString());
    // The same attributes under another etcd lease (what upstream's renewal looks like): adopted.
    kv.put(key, udpValue('1.2.3.4'), kv.grantLease(86400));
    await new Promise((res) => setTimeout(res, 50));
    assert.equal(await Promise.race([held.lost.then(() => 'lost'), Promise.resolve('held')]), 'held');
    // Our PublicIP, other attributes, no etcd lease: a takeover.
    kv.put(key, '{"PublicIP":"1.2.3.4","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"0a:00:00:00:00:66"}}');
    const loss = await held.lost;
    assert.match(loss.reason, /rewritten by someone else with other attributes \(PublicIP 1\.2\.3\.4, vxlan/);
    await m.close();
  });

  test('the watch: the listing first, then changes; the own key never; bad and non-canonical keys skipped once, others flow', async () => {
    const kv = fixture();
    const { m, log } = manager(kv);
    const own = await m.acquireLease(attrs('1.2.3.4'), signal());
    const batches: RecordBatch[] = [];
    const w = m.watchLeases(own, (b) => batches.push(b));
    await eventually(() => batches.length, (n) => n >= 1, 2000, 'the first batch');
    const first = batches[0]!;
    assert.equal(first.kind, 'snapshot');
    assert.deepEqual(first.kind === 'snapshot' && first.records.map((r) => r.id).sort(), ['10.3.1.0-24', '10.3.2.0-24', '10.3.31.0-24', '10.3.4.0-24', '10.3.5.0-24'].map((k) => `${SUBNETS}/${k}`));
    // Keys above SubnetMax: the own lease is drawn at random from the range and could take a key in it.
    kv.put(`${SUBNETS}/10.3.27.0-24`, udpValue('1.1.1.27'));
    kv.put(`${SUBNETS}/junk`, 'x');
    kv.put(`${SUBNETS}/10.3.28.0-24`, 'not json');
    kv.put(`${SUBNETS}/10.3.2.1-24`, udpValue('6.6.6.6')); // host bits: would alias 10.3.2.0/24
    kv.put(`${SUBNETS}/10.3.29.0-24`, udpValue('1.1.1.29'));
    kv.delete(`${SUBNETS}/10.3.2.1-24`); // must not withdraw 10.3.2.0-24
    kv.delete(`${SUBNETS}/10.3.1.0-24`);
    await eventually(() => changesOf(batches), (x) => x.includes(`delete ${SUBNETS}/10.3.1.0-24`), 2000, 'the changes');
    assert.deepEqual(changesOf(batches), [`put ${SUBNETS}/10.3.27.0-24`, `put ${SUBNETS}/10.3.29.0-24`, `delete ${SUBNETS}/10.3.2.1-24`, `delete ${SUBNETS}/10.3.1.0-24`]);
    assert.equal(log.records.filter((x) => /Ignoring bad subnet node/.test(x.msg)).length, 3);
    assert.ok(log.records.some((x) => /10\.3\.2\.1-24: the key has host bits set \(the subnet is 10\.3\.2\.0-24\)/.test(x.msg)));
    await w.stop();
    await m.close();
  });

  test('a put between the listing and the start of the watch is delivered', async () => {
    const kv = fixture();
    const { m } = manager(kv);
    const own = await m.acquireLease(attrs('1.2.3.4'), signal());
    kv.hooks.afterList = () => {
      kv.hooks.afterList = undefined;
      kv.put(`${SUBNETS}/10.3.30.0-24`, udpValue('1.1.1.30'));
    };
    const batches: RecordBatch[] = [];
    const w = m.watchLeases(own, (b) => batches.push(b));
    await eventually(() => changesOf(batches), (x) => x.includes(`put ${SUBNETS}/10.3.30.0-24`), 2000, 'the put made right after the listing');
    await w.stop();
    await m.close();
  });

  test('a watch behind a compaction re-lists: the whole set again, with the lease that moved', async () => {
    const kv = fixture();
    const { m } = manager(kv);
    const own = await m.acquireLease(attrs('1.2.3.4'), signal());
    const batches: RecordBatch[] = [];
    const w = m.watchLeases(own, (b) => batches.push(b));
    await eventually(() => w.stats.connected, (c) => c, 2000, 'connected');
    kv.down();
    kv.put(`${SUBNETS}/10.3.2.0-24`, udpValue('1.1.1.22')); // moved while we could not hear
    kv.compact();
    kv.up();
    await eventually(() => batches.filter((b) => b.kind === 'snapshot').length, (n) => n === 2, 2000, 'a second listing');
    const last = batches.at(-1)!;
    assert.ok(last.kind === 'snapshot' && last.records.find((r) => r.id === `${SUBNETS}/10.3.2.0-24`)!.lease.attrs.publicIp === parseIpv4('1.1.1.22'));
    assert.ok(w.stats.resyncs >= 1);
    await w.stop();
    await m.close();
  });

  test('a wiped etcd: the own lease is re-created with the same subnet, and no route is withdrawn until the grace period ends', { timeout: 20_000 }, async () => {
    for (const newCluster of [false, true]) {
      const kv = fixture();
      const { m, log } = manager(kv, { wipeGraceMs: 1500 });
      const own = await m.acquireLease(attrs('1.2.3.4'), signal());
      const ownKey = keyOf(own.subnet.toString());
      const held = m.holdLease(own);
      let lost = false;
      void held.lost.then(() => (lost = true));
      const batches: RecordBatch[] = [];
      const w = m.watchLeases(own, (b) => batches.push(b));
      await eventually(() => w.stats.connected, (c) => c, 2000, 'connected');
      await new Promise((res) => setTimeout(res, 50));
      kv.wipe({ newCluster });
      kv.put(CONFIG_KEY, CONFIG);
      kv.put(`${SUBNETS}/10.3.4.0-24`, udpValue('1.1.1.1')); // one peer is back at once
      await eventually(() => kv.entry(ownKey)?.value, (v) => v === udpValue('1.2.3.4'), 3000, `the own key re-created (new cluster id: ${newCluster})`);
      assert.equal(lost, false);
      assert.ok(log.records.some((x) => /re-created the own lease/.test(x.msg)));
      await eventually(() => w.stats.resets, (n) => n >= 1, 3000, 'the peer watch saw the wipe');
      const afterWipe = batches.slice(1);
      assert.ok(afterWipe.every((b) => b.kind === 'changes' && b.changes.every((c) => c.type === 'put')), 'during the grace period nothing is withdrawn');
      await eventually(() => batches.at(-1)!, (b) => b.kind === 'snapshot' && b.records.length === 1, 5000, 'after the grace period the listing is the whole set again');
      await w.stop();
      await held.stop();
      await m.close();
    }
  });

  test('a wiped etcd where another node took our subnet first: the lease is lost', { timeout: 10_000 }, async () => {
    const kv = fixture();
    const { m } = manager(kv, { wipeGraceMs: 1000 });
    const own = await m.acquireLease(attrs('1.2.3.4'), signal());
    const held = m.holdLease(own);
    await new Promise((res) => setTimeout(res, 50));
    kv.wipe();
    kv.put(keyOf(own.subnet.toString()), udpValue('7.7.7.7'));
    const loss = await held.lost;
    assert.match(loss.reason, /PublicIP 7\.7\.7\.7/);
    await m.close();
  });
});
