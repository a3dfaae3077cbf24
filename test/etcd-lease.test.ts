/**
 * The etcd subnet manager against a real etcd (Debian's etcd-server),
 * started by this test on its own loopback ports.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Etcd3 } from 'etcd3';
import { createEtcdClient, type EtcdClientConfig } from '../src/lease/etcd/client';
import { Etcd3Kv } from '../src/lease/etcd/etcd3-kv';
import { SubnetRegistry } from '../src/lease/etcd/registry';
import { EtcdSubnetManager, type EtcdSubnetManagerOptions } from '../src/lease/etcd/subnet-manager';
import type { Lease, LeaseAttrs } from '../src/lease/lease';
import { type Logger, RecordingLogger } from '../src/logging';
import { Ipv4Net, parseIpv4 } from '../src/util/ipv4';
import { EtcdServer } from '../lab/etcd';
import { Lab } from '../lab/netns';
import { TcpProxy } from '../lab/tcp-proxy';
import { eventually } from './helpers/eventually';
import { guardedWatch } from './helpers/guarded-watch';

// Own leases are picked at random in 10.3.1-25; leases a test writes after acquiring one use
// 10.3.100+ so they can never be the own subnet (which the watch filters out, by design).
const CONFIG = '{"Network":"10.3.0.0/16","SubnetMin":"10.3.1.0","SubnetMax":"10.3.25.0"}';

const attrs = (ip: string): LeaseAttrs => ({ publicIp: parseIpv4(ip), publicIpv6: undefined, backendType: '', backendData: undefined, backendV6Data: undefined });
const udpValue = (ip: string) => `{"PublicIP":"${ip}","PublicIPv6":null}`;

let prefixCounter = 0;

describe('etcd subnet manager (real etcd)', () => {
  let lab: Lab;
  let etcd: EtcdServer;
  let direct: Etcd3;
  const managers: EtcdSubnetManager[] = [];

  before(async () => {
    lab = new Lab();
    etcd = await EtcdServer.start(lab);
    direct = etcd.client();
  });
  after(async () => {
    for (const m of managers) await m.close().catch(() => undefined);
    direct?.close();
    await lab?.cleanup();
  });

  /** A fresh prefix with the fixture config written. */
  async function network(config = CONFIG): Promise<string> {
    const prefix = `/t${++prefixCounter}/network`;
    await direct.put(`${prefix}/config`).value(config);
    return prefix;
  }

  function manager(prefix: string, extra: Partial<EtcdSubnetManagerOptions> & { endpoint?: string; log?: Logger } = {}): EtcdSubnetManager {
    const log = extra.log ?? new RecordingLogger();
    const cfg: EtcdClientConfig = { endpoints: [extra.endpoint ?? etcd.endpoint], prefix, keyFile: '', certFile: '', caFile: '', username: '', password: '' };
    const m = new EtcdSubnetManager({ registry: new SubnetRegistry(new Etcd3Kv(createEtcdClient(cfg, log), cfg.endpoints, log), prefix, log), log, configRetryMs: 100, ...extra });
    managers.push(m);
    return m;
  }

  const signal = () => AbortSignal.timeout(30_000);

  async function keyOf(prefix: string, subnet: string) {
    const res = await direct.get(`${prefix}/subnets/${subnet.replace('/', '-')}`).exec();
    return res.kvs[0];
  }

  test('acquires a subnet in range with upstream\'s exact value and a 24 h TTL', async () => {
    const prefix = await network();
    const lease = await manager(prefix).acquireLease(attrs('1.2.3.4'), signal());
    const n = lease.subnet.network;
    assert.ok(n >= parseIpv4('10.3.1.0') && n <= parseIpv4('10.3.25.0') && lease.subnet.prefixLen === 24);
    const kv = (await keyOf(prefix, lease.subnet.toString()))!;
    assert.equal(kv.value.toString(), udpValue('1.2.3.4'));
    const ttl = await direct.leaseClient.leaseTimeToLive({ ID: kv.lease });
    assert.ok(Number(ttl.TTL) > 86000 && Number(ttl.grantedTTL) === 86400, `TTL ${ttl.TTL}/${ttl.grantedTTL}`);
  });

  test('a restarted node with the same PublicIP gets its subnet back', async () => {
    const prefix = await network();
    const first = await manager(prefix).acquireLease(attrs('1.2.3.5'), signal());
    const again = await manager(prefix).acquireLease(attrs('1.2.3.5'), signal());
    assert.equal(again.subnet.toString(), first.subnet.toString());
    const all = await direct.getAll().prefix(`${prefix}/subnets`).keys();
    assert.equal(all.length, 1);
  });

  test('the previous subnet from subnet.env is reused when free and in range, ignored otherwise', async () => {
    const prefix = await network();
    const prev = await manager(prefix, { previous: { subnet: Ipv4Net.parse('10.3.6.0/24'), ipv6Subnet: undefined } }).acquireLease(attrs('5.6.7.8'), signal());
    assert.equal(prev.subnet.toString(), '10.3.6.0/24');
    const log = new RecordingLogger();
    const outside = await manager(prefix, { log, previous: { subnet: Ipv4Net.parse('10.4.1.0/24'), ipv6Subnet: undefined } }).acquireLease(attrs('5.6.7.9'), signal());
    assert.notEqual(outside.subnet.toString(), '10.4.1.0/24');
    assert.match(JSON.stringify(log.records), /does not fit the network config/);
    // Held by someone else: not taken over.
    const taken = await manager(prefix, { previous: { subnet: Ipv4Net.parse('10.3.6.0/24'), ipv6Subnet: undefined } }).acquireLease(attrs('5.6.7.10'), signal());
    assert.notEqual(taken.subnet.toString(), '10.3.6.0/24');
  });

  test('a reservation (no etcd lease) is reused and stays lease-less, with no renewal', async () => {
    const prefix = await network();
    await direct.put(`${prefix}/subnets/10.3.9.0-24`).value(udpValue('9.9.9.9'));
    const log = new RecordingLogger();
    const m = manager(prefix, { log });
    const lease = await m.acquireLease({ ...attrs('9.9.9.9'), backendType: 'host-gw' }, signal());
    assert.equal(lease.subnet.toString(), '10.3.9.0/24');
    const kv = (await keyOf(prefix, '10.3.9.0/24'))!;
    assert.equal(kv.lease, '0', 'still a reservation');
    assert.equal(kv.value.toString(), '{"PublicIP":"9.9.9.9","PublicIPv6":null,"BackendType":"host-gw"}');
    const held = m.holdLease(lease);
    assert.equal(held.expiresAt, undefined);
    await eventually(() => log.records, (r) => r.some((x) => /reservation \(no TTL\): nothing to renew/.test(x.msg)), 2000, 'reservation log');
    await held.stop();
  });

  test('two managers acquiring at the same moment both succeed with different subnets', async () => {
    const prefix = await network();
    // Both pick the first free candidate, so one must lose the creation race and retry.
    const logs = [new RecordingLogger(), new RecordingLogger()];
    const [a, b] = await Promise.all([
      manager(prefix, { random: () => 0, log: logs[0]! }).acquireLease(attrs('7.0.0.1'), signal()),
      manager(prefix, { random: () => 0, log: logs[1]! }).acquireLease(attrs('7.0.0.2'), signal()),
    ]);
    assert.notEqual(a.subnet.toString(), b.subnet.toString());
    assert.ok(logs.some((l) => l.records.some((r) => /lost a race/.test(r.msg))), 'one of them lost the creation race and retried');
    const keys = await direct.getAll().prefix(`${prefix}/subnets`).keys();
    assert.equal(keys.length, 2);
  });

  test('renewal before expiry keeps the key with a full TTL and the same value', { timeout: 30_000 }, async () => {
    const prefix = await network();
    const m = manager(prefix, { leaseTtlSeconds: 4, renewMarginMs: 2500 });
    const lease = await m.acquireLease(attrs('8.0.0.1'), signal());
    const before = (await keyOf(prefix, lease.subnet.toString()))!;
    const held = m.holdLease(lease);
    // Past the original expiry (4 s) the key must still be there on a newer etcd lease.
    await new Promise((r) => setTimeout(r, 5500));
    const kv = await keyOf(prefix, lease.subnet.toString());
    assert.ok(kv, 'the key outlived its first etcd lease');
    assert.equal(kv.value.toString(), before.value.toString());
    assert.notEqual(kv.lease, before.lease);
    const ttl = Number((await direct.leaseClient.leaseTimeToLive({ ID: kv.lease })).TTL);
    assert.ok(ttl >= 1 && ttl <= 4, `remaining TTL ${ttl}`);
    assert.equal(Number((await direct.leaseClient.leaseTimeToLive({ ID: before.lease })).TTL), -1, 'the old etcd lease was revoked');
    assert.ok(held.expiresAt!.getTime() > Date.now());
    await held.stop();
  });

  test('deleting the own key by hand reports lease loss', async () => {
    const prefix = await network();
    const m = manager(prefix);
    const lease = await m.acquireLease(attrs('8.0.0.2'), signal());
    const held = m.holdLease(lease);
    await new Promise((r) => setTimeout(r, 300));
    await direct.delete().key(`${prefix}/subnets/${lease.subnet.toString().replace('/', '-')}`);
    const loss = await Promise.race([held.lost, new Promise((r) => setTimeout(() => r('timeout'), 5000))]);
    assert.notEqual(loss, 'timeout');
    assert.match((loss as { reason: string }).reason, /deleted/);
  });

  test('the own-lease monitor retries when it cannot start, and then detects loss', { timeout: 30_000 }, async () => {
    const prefix = await network();
    const proxy = await TcpProxy.start('127.0.0.1', etcd.clientPort);
    try {
      const log = new RecordingLogger();
      const m = manager(prefix, { endpoint: proxy.endpoint, log });
      const lease = await m.acquireLease(attrs('8.0.0.3'), signal());
      proxy.sever();
      const held = m.holdLease(lease);
      await eventually(() => log.records, (r) => r.some((x) => /cannot start monitoring the own lease; retrying/.test(x.msg)), 10_000, 'the retry message');
      proxy.resume();
      await new Promise((r) => setTimeout(r, 3000));
      await direct.delete().key(`${prefix}/subnets/${lease.subnet.toString().replace('/', '-')}`);
      const loss = await Promise.race([held.lost, new Promise((r) => setTimeout(() => r('timeout'), 10_000))]);
      assert.notEqual(loss, 'timeout', 'the monitor came up and saw the deletion');
    } finally {
      await proxy.close();
    }
  });

  /** Starts a leases watch through the guard, as the daemon does, and records what a backend gets. */
  function watchAll(m: EtcdSubnetManager, own: Lease) {
    return guardedWatch(m, own, CONFIG);
  }

  test('the watch: a snapshot, then added and removed; the own lease never appears', async () => {
    const prefix = await network();
    const m = manager(prefix);
    await direct.put(`${prefix}/subnets/10.3.2.0-24`).value(udpValue('2.2.2.2'));
    const own = await m.acquireLease(attrs('1.1.1.1'), signal());
    const { w, batches, flat } = watchAll(m, own);
    await eventually(() => flat(), (f) => f.includes('added 10.3.2.0/24'), 5000, 'snapshot');
    await direct.put(`${prefix}/subnets/10.3.30.0-24`).value(udpValue('3.3.3.3'));
    await eventually(() => flat(), (f) => f.includes('added 10.3.30.0/24'), 5000, 'added');
    assert.deepEqual(batches.at(-1)!.length, 1, 'one event, one batch');
    await direct.delete().key(`${prefix}/subnets/10.3.2.0-24`);
    await eventually(() => flat(), (f) => f.includes('removed 10.3.2.0/24'), 5000, 'removed');
    assert.ok(!flat().some((f) => f.endsWith(own.subnet.toString())), 'own lease never reported');
    await w.stop();
  });

  test('a bad key or value under subnets is skipped and logged; other leases keep flowing', async () => {
    const prefix = await network();
    const log = new RecordingLogger();
    const m = manager(prefix, { log });
    await direct.put(`${prefix}/subnets/10.3.2.0-24`).value(udpValue('2.2.2.2'));
    const own = await m.acquireLease(attrs('1.1.1.2'), signal());
    const { w, flat } = watchAll(m, own);
    await eventually(() => flat(), (f) => f.length === 1, 5000, 'snapshot');
    await direct.put(`${prefix}/subnets/garbage`).value('x');
    await direct.put(`${prefix}/subnets-x/10.3.7.0-24`).value(udpValue('7.7.7.7'));
    await direct.put(`${prefix}/subnets/10.3.120.0-24`).value('{not json');
    await direct.put(`${prefix}/subnets/10.3.121.0-24`).value('{"PublicIP":"fc00::1","PublicIPv6":null}');
    await direct.delete().key(`${prefix}/subnets/garbage`);
    await direct.put(`${prefix}/subnets/10.3.122.0-24`).value(udpValue('4.4.4.4'));
    await eventually(() => flat(), (f) => f.includes('added 10.3.122.0/24'), 5000, 'the good lease after the bad ones');
    assert.deepEqual(flat(), ['added 10.3.2.0/24', 'added 10.3.122.0/24'], 'nothing withdrawn, nothing bad added');
    const warnings = log.records.filter((r) => /Ignoring bad subnet node/.test(r.msg)).map((r) => (r.obj as { key: string }).key);
    for (const k of ['garbage', '10.3.120.0-24', '10.3.121.0-24']) {
      assert.ok(warnings.some((x) => x.endsWith(k)), `${k} logged`);
    }
    assert.ok(!warnings.some((x) => x.includes('subnets-x/')), 'keys beside <prefix>/subnets/ are not read (the listing and the watch end at the slash)');
    await w.stop();
  });

  test('values far larger than a lease: a new node still gets a lease, the records are skipped by size, etcd is never called unreachable', { timeout: 60_000 }, async () => {
    const prefix = await network();
    const log = new RecordingLogger();
    const big = `{"PublicIP":"9.9.9.9","PublicIPv6":null,"BackendData":"${'b'.repeat(1_500_000)}"}`;
    // Three values of 1.5 MB: 4.5 MB in one answer, above grpc-js's 4 MiB default.
    for (const s of ['10.3.101.0-24', '10.3.102.0-24', '10.3.103.0-24']) await direct.put(`${prefix}/subnets/${s}`).value(big);
    await direct.put(`${prefix}/subnets-old/10.3.104.0-24`).value(big);
    await direct.put(`${prefix}/subnets/10.3.2.0-24`).value(udpValue('2.2.2.2'));
    const m = manager(prefix, { log });
    const own = await m.acquireLease(attrs('1.1.1.9'), signal());
    assert.ok(own.subnet.prefixLen === 24);
    const { w, flat } = watchAll(m, own);
    await eventually(() => flat(), (f) => f.includes('added 10.3.2.0/24'), 10_000, 'the listing');
    // A large value written while watching is skipped too; the watch goes on.
    await direct.put(`${prefix}/subnets/10.3.105.0-24`).value(big);
    await direct.put(`${prefix}/subnets/10.3.106.0-24`).value(udpValue('6.6.6.6'));
    await eventually(() => flat(), (f) => f.includes('added 10.3.106.0/24'), 10_000, 'a lease after the large one');
    const skipped = log.records.filter((r) => /above the 65536-byte limit of a lease record/.test(r.msg)).map((r) => (r.obj as { key: string }).key);
    for (const s of ['10.3.101.0-24', '10.3.102.0-24', '10.3.103.0-24', '10.3.105.0-24']) assert.ok(skipped.some((k) => k.endsWith(s)), `${s} skipped by size`);
    assert.ok(!log.records.some((r) => /unreachable|circuit/i.test(r.msg)), log.records.filter((r) => /unreachable|circuit/i.test(r.msg)).map((r) => r.msg).join('\n'));
    assert.deepEqual(flat().filter((f) => /10\.3\.10[1-5]/.test(f)), [], 'none of them routed');
    await w.stop();
  });

  test('compaction while the watch is cut off: re-list and diff, changed attributes re-emitted', { timeout: 60_000 }, async () => {
    const prefix = await network();
    const proxy = await TcpProxy.start('127.0.0.1', etcd.clientPort);
    try {
      const m = manager(prefix, { endpoint: proxy.endpoint });
      await direct.put(`${prefix}/subnets/10.3.2.0-24`).value(udpValue('2.2.2.2'));
      await direct.put(`${prefix}/subnets/10.3.3.0-24`).value(udpValue('3.3.3.3'));
      const own = await m.acquireLease(attrs('1.1.1.3'), signal());
      const { w, flat } = watchAll(m, own);
      await eventually(() => flat(), (f) => f.length === 2, 5000, 'snapshot');
      await eventually(() => w.stats.connected, (c) => c, 5000, 'watch connected');
      proxy.sever();
      await direct.put(`${prefix}/subnets/10.3.104.0-24`).value(udpValue('4.4.4.4'));
      await direct.delete().key(`${prefix}/subnets/10.3.2.0-24`);
      await direct.put(`${prefix}/subnets/10.3.3.0-24`).value(udpValue('3.3.3.99'));
      const rev = (await direct.get('/anything').exec()).header.revision;
      await direct.kv.compact({ revision: rev, physical: true });
      proxy.resume();
      await eventually(() => flat(), (f) => f.length >= 5, 20_000, 'the resync after compaction');
      assert.deepEqual(flat().slice(2).sort(), ['added 10.3.3.0/24', 'added 10.3.104.0/24', 'removed 10.3.2.0/24'].sort());
      assert.ok(w.stats.resyncs >= 1);
      // And the watch is live again afterwards.
      await direct.put(`${prefix}/subnets/10.3.105.0-24`).value(udpValue('5.5.5.5'));
      await eventually(() => flat(), (f) => f.includes('added 10.3.105.0/24'), 10_000, 'live after resync');
      await w.stop();
    } finally {
      await proxy.close();
    }
  });

  test('etcd killed and restarted mid-watch: no lease lost, a lease added meanwhile arrives', { timeout: 60_000 }, async () => {
    const prefix = await network();
    const log = new RecordingLogger();
    const m = manager(prefix, { log });
    await direct.put(`${prefix}/subnets/10.3.2.0-24`).value(udpValue('2.2.2.2'));
    const own = await m.acquireLease(attrs('1.1.1.4'), signal());
    const held = m.holdLease(own);
    const { w, flat } = watchAll(m, own);
    await eventually(() => w.stats.connected, (c) => c, 5000, 'watch connected');
    await etcd.kill();
    await new Promise((r) => setTimeout(r, 1500));
    await etcd.launch();
    const c2 = etcd.client();
    try {
      await c2.put(`${prefix}/subnets/10.3.108.0-24`).value(udpValue('8.8.8.8'));
      await eventually(() => flat(), (f) => f.includes('added 10.3.108.0/24'), 20_000, 'the lease added after the restart').catch((e: Error) => {
        const tail = log.records.slice(-15).map((r) => `${r.level} ${r.msg} ${JSON.stringify(r.obj)}`);
        throw new Error(`${e.message}\nlast log records:\n${tail.join('\n')}`);
      });
    } finally {
      c2.close();
    }
    assert.ok(!flat().some((f) => f.startsWith('removed')), `no removal: ${flat()}`);
    assert.ok(w.stats.reconnects >= 1);
    const lost = await Promise.race([held.lost, new Promise((r) => setTimeout(() => r('still held'), 300))]);
    assert.equal(lost, 'still held');
    await held.stop();
    await w.stop();
    direct.close();
    direct = etcd.client();
  });

  test('a missing config is waited for, naming the key and an etcdctl example', async () => {
    const prefix = `/t${++prefixCounter}/network`;
    const log = new RecordingLogger();
    const m = manager(prefix, { log });
    const got = m.getNetworkConfig(signal());
    await eventually(() => log.records, (r) => r.some((x) => /flannel config not found in etcd store\. Did you create your config using etcdv3 API\?/.test(x.msg)), 3000, 'the not-found message');
    const msg = log.records.find((x) => /not found/.test(x.msg))!.msg;
    assert.match(msg, new RegExp(`${prefix}/config`));
    assert.match(msg, /etcdctl put/);
    await direct.put(`${prefix}/config`).value('{"Network":"10.9.0.0/29"}');
    await eventually(() => log.records, (r) => r.some((x) => /network is too small/.test(x.msg)), 3000, 'the validation error');
    await direct.put(`${prefix}/config`).value(CONFIG);
    const cfg = await got;
    assert.equal(cfg.network!.toString(), '10.3.0.0/16');
  });

  test('etcd down at startup: calls wait and succeed once it is up', { timeout: 60_000 }, async () => {
    const lab2 = new Lab();
    try {
      const late = await EtcdServer.start(lab2);
      await late.stop();
      const prefix = `/t${++prefixCounter}/network`;
      const log = new RecordingLogger();
      const m = manager(prefix, { endpoint: late.endpoint, log });
      const got = m.getNetworkConfig(signal());
      await new Promise((r) => setTimeout(r, 1500));
      await late.launch();
      const c = late.client();
      await c.put(`${prefix}/config`).value(CONFIG);
      c.close();
      const cfg = await got;
      assert.equal(cfg.subnetLen, 24);
      assert.ok(log.records.some((x) => /Couldn't fetch network config: etcd is unreachable/.test(x.msg)), 'said it was waiting for etcd');
    } finally {
      await lab2.cleanup();
    }
  });
});
