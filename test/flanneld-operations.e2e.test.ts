/**
 * Node operations with the real bin/flanneld in namespaces (traffic rules, reconciling, health, metrics, systemd, restarts, cleanup):
 * masquerade/forward rules and the blackhole route as an operator sees them,
 * everything restored after being deleted by hand, /metrics, systemd
 * notifications and the watchdog, restarts (udp: under a second of
 * interruption; vxlan and host-gw: none), stale routes removed at start,
 * `flanneld cleanup`, and /healthz failing on a stuck datapath thread.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type HttpAnswer, httpGet, type NotifyListener, notifyListener } from '../lab/daemon-probes';
import { FlannelCluster, runCleanup } from '../lab/flannel-cluster';
import { Lab } from '../lab/netns';
import { ping } from '../lab/topology';
import { pingSeries } from '../lab/traffic';
import { eventually } from './helpers/eventually';
import { ROOT_SUITE } from './helpers/root';
import { filterGolden, natGolden } from './helpers/traffic-goldens';

const HEALTHZ_PORT = 10254;
const RESYNC_S = 1;

describe('flanneld operations: udp node', ROOT_SUITE, () => {
  let lab: Lab;
  let cluster: FlannelCluster;
  let notify: NotifyListener;
  const node1Args = [`-healthz-port=${HEALTHZ_PORT}`, '-ip-masq', '-ip-blackhole-route', `-iptables-resync=${RESYNC_S}`];
  const ns1 = () => cluster.topology.nodes[0]!.ns;
  const get = (ns: string, p: string): Promise<HttpAnswer> => httpGet(lab, ns, HEALTHZ_PORT, p);
  const lines = async (ns: string, tool: string, ...args: string[]) => (await lab.exec(ns, tool, args)).stdout.trimEnd().split('\n');
  const subnet1 = () => cluster.topology.nodes[0]!.podSubnet.toString();
  const startNode1 = () => cluster.startNode(1, node1Args, { NOTIFY_SOCKET: notify.path, WATCHDOG_USEC: '1000000' });

  before(async () => {
    lab = new Lab();
    cluster = await FlannelCluster.create(lab, { nodes: 2, config: { Network: '10.5.0.0/16', Backend: { Type: 'udp' } } });
    notify = await notifyListener(lab);
    startNode1();
    cluster.startNode(2, [`-healthz-port=${HEALTHZ_PORT}`]);
    for (const i of [1, 2]) await cluster.waitSubnet(i);
    for (const i of [1, 2]) await cluster.attachPod(i);
    const [a, b] = [cluster.topology.nodes[0]!.pod, cluster.topology.nodes[1]!.pod];
    assert.ok(await eventually(() => ping(lab, a.ns, b.address, 1), (ok) => ok, 10_000, 'pod 1 -> pod 2'));
  });
  after(async () => {
    await lab?.cleanup();
  });

  const natGolden1 = () => natGolden('10.5.0.0/16', subnet1());
  const FILTER_GOLDEN = filterGolden('10.5.0.0/16');

  test('-ip-masq, forward rules and -ip-blackhole-route: exactly the goldens, FLANNEL_IPMASQ=true', async () => {
    assert.deepEqual(await lines(ns1(), 'iptables', '-S'), FILTER_GOLDEN);
    assert.deepEqual(await lines(ns1(), 'iptables', '-t', 'nat', '-S'), natGolden1());
    assert.deepEqual(await lines(ns1(), 'ip', 'route', 'show', 'type', 'blackhole'), [`blackhole ${subnet1()} proto 157 metric 4294967295`]);
    assert.equal(cluster.nodes[0]!.subnetEnv()!.get('FLANNEL_IPMASQ'), 'true');
  });

  test('rules and the blackhole route deleted by hand are back within one resync', async () => {
    await lab.exec(ns1(), 'iptables', ['-t', 'nat', '-D', 'POSTROUTING', '-m', 'comment', '--comment', 'flanneld masq', '-j', 'FLANNEL-POSTRTG']);
    await lab.exec(ns1(), 'iptables', ['-D', 'FLANNEL-FWD', '-d', '10.5.0.0/16', '-m', 'comment', '--comment', 'flanneld forward', '-j', 'ACCEPT']);
    await lab.exec(ns1(), 'ip', ['route', 'del', 'blackhole', subnet1()]);
    const within = 2 * RESYNC_S * 1000 + 500;
    await eventually(() => lines(ns1(), 'iptables', '-t', 'nat', '-S'), (l) => JSON.stringify(l) === JSON.stringify(natGolden1()), within, 'the masquerade jump');
    await eventually(() => lines(ns1(), 'iptables', '-S'), (l) => JSON.stringify(l) === JSON.stringify(FILTER_GOLDEN), within, 'the forward rule');
    await eventually(() => lines(ns1(), 'ip', 'route', 'show', 'type', 'blackhole'), (l) => l[0] === `blackhole ${subnet1()} proto 157 metric 4294967295`, within, 'the blackhole route');
  });

  test('flannel0: address, MTU and route changed by hand are restored and counted', async () => {
    const net = subnet1().split('/')[0]!;
    await lab.exec(ns1(), 'ip', ['route', 'del', '10.5.0.0/16', 'dev', 'flannel0']);
    await lab.exec(ns1(), 'ip', ['addr', 'del', `${net}/32`, 'dev', 'flannel0']);
    await lab.exec(ns1(), 'ip', ['link', 'set', 'flannel0', 'mtu', '1300']);
    await eventually(() => lab.exec(ns1(), 'ip', ['-o', 'link', 'show', 'flannel0']).then((r) => r.stdout), (s) => / mtu 1472 /.test(s), 3000, 'the MTU');
    await eventually(() => lab.exec(ns1(), 'ip', ['-o', '-4', 'addr', 'show', 'dev', 'flannel0']).then((r) => r.stdout), (s) => s.includes(`inet ${net}/32`), 3000, 'the address');
    await eventually(() => lab.exec(ns1(), 'ip', ['route', 'show', '10.5.0.0/16']).then((r) => r.stdout), (s) => /10\.5\.0\.0\/16 dev flannel0 proto 157/.test(s), 3000, 'the route');
    const [a, b] = [cluster.topology.nodes[0]!.pod, cluster.topology.nodes[1]!.pod];
    assert.ok(await ping(lab, a.ns, b.address, 2));
    const metrics = (await get(ns1(), '/metrics')).body;
    for (const kind of ['route', 'address', 'mtu']) {
      const m = new RegExp(`^flanneld_repairs_total\\{reconciler="flannel0",kind="${kind}"\\} (\\d+)$`, 'm').exec(metrics);
      assert.ok(m && Number(m[1]) >= 1, `${kind} repair counted:\n${metrics.split('\n').filter((l) => l.startsWith('flanneld_repairs')).join('\n')}`);
    }
    assert.ok(cluster.nodes[0]!.messages().some((m) => /^repaired: flannel0: set route 10\.5\.0\.0\/16 dev flannel0$/.test(m)));
  });

  test('/metrics: traffic, drops by reason, routes, lease, etcd watch, offloads, repairs', async () => {
    const [a, b] = [cluster.topology.nodes[0]!.pod, cluster.topology.nodes[1]!.pod];
    assert.ok(await ping(lab, a.ns, b.address, 3));
    const r = await get(ns1(), '/metrics');
    assert.equal(r.status, 200);
    assert.match(r.contentType, /^text\/plain; version=0\.0\.4/);
    const value = (series: string): number => {
      const line = r.body.split('\n').find((l) => l.startsWith(`${series} `));
      assert.ok(line, `${series} in /metrics`);
      return Number(line.slice(series.length + 1));
    };
    assert.ok(value('flanneld_datapath_packets_total{direction="egress"}') >= 3);
    assert.ok(value('flanneld_datapath_packets_total{direction="ingress"}') >= 3);
    assert.ok(value('flanneld_datapath_bytes_total{direction="egress"}') > 0);
    assert.equal(value('flanneld_datapath_drops_total{direction="egress",reason="no_route"}'), 0);
    assert.equal(value('flanneld_routes_desired'), 1);
    assert.equal(value('flanneld_routes_installed'), 1);
    const expiry = r.body.split('\n').find((l) => l.startsWith('flanneld_lease_expiry_timestamp_seconds{subnet="'));
    assert.ok(expiry, 'the lease expiry series');
    const left = Number(expiry.split(' ')[1]) - Date.now() / 1000;
    assert.ok(left > 86_000 && left <= 86_400, String(left));
    assert.equal(value('flanneld_lease_watch_connected'), 1);
    assert.equal(value('flanneld_lease_watch_reconnects_total'), 0);
    assert.equal(value('flanneld_store_request_errors_total{store="etcd"}'), 0);
    assert.match(r.body, /^flanneld_build_info\{version="[^"]+",backend="udp"\} 1$/m);
    assert.equal(value('flanneld_datapath_offload_active{offload="gso"}'), 1);
    assert.equal(value('flanneld_datapath_offload_active{offload="udp_gro"}'), 1, 'snake_case label values');
    assert.ok(value('flanneld_datapath_syscalls_total{call="udp_send"}') > 0);
    assert.doesNotMatch(r.body, /flanneld_datapath_events_total|flanneld_etcd_|flanneld_lease_seconds_left/, 'the renamed families are gone (CHANGELOG.md)');
    assert.ok(value('flanneld_repairs_total{reconciler="traffic rules",kind="iptables"}') >= 2);
    assert.ok(value('flanneld_repairs_total{reconciler="traffic rules",kind="blackhole"}') >= 1);
    assert.equal(value('flanneld_traffic_rules_in_place'), 1);
    assert.equal(value('flanneld_ready'), 1);
    assert.equal(value('flanneld_live'), 1);
    assert.ok(value('flanneld_datapath_heartbeat_age_seconds') < 2);
    assert.match(r.body, /^process_cpu_seconds_total /m);
  });

  test('systemd: READY=1, then WATCHDOG=1 while healthy (WATCHDOG_USEC=1 s)', async () => {
    await eventually(() => notify.received().match(/^WATCHDOG=1$/gm)?.length ?? 0, (n) => n >= 2, 3000, 'two watchdog pings');
    assert.match(notify.received(), /^READY=1$/m);
  });

  test('udp restart: SIGTERM stops within 3 s with STOPPING=1; pod traffic is interrupted for under a second; no duplicate rules', async (t) => {
    const [a, b] = [cluster.topology.nodes[0]!.pod, cluster.topology.nodes[1]!.pod];
    const series = pingSeries(lab, a.ns, b.address, 60); // 6 s at 10 Hz
    await new Promise((r) => setTimeout(r, 1500));
    const t0 = Date.now();
    const code = await cluster.nodes[0]!.stop('SIGTERM', 5000);
    const stopMs = Date.now() - t0;
    assert.equal(code, 0);
    assert.ok(stopMs < 3000, `stopped in ${stopMs} ms`);
    assert.match(notify.received(), /^STOPPING=1$/m);
    startNode1();
    const s = await series;
    t.diagnostic(`SIGTERM to exit: ${stopMs} ms; pod traffic interrupted for ${s.longestGapMs} ms (${s.received}/${s.sent} pings answered at 10 Hz)`);
    assert.ok(s.longestGapMs < 1000, `pod traffic interrupted for ${s.longestGapMs} ms (${s.received}/${s.sent} answered)`);
    assert.ok(s.received >= 50, `${s.received}/${s.sent} answered`);
    assert.ok(!cluster.nodes[0]!.messages().some((m) => /^repaired|re-appended/.test(m)), 'the second start found nothing to fix');
    assert.deepEqual(await lines(ns1(), 'iptables', '-S'), FILTER_GOLDEN);
    assert.deepEqual(await lines(ns1(), 'iptables', '-t', 'nat', '-S'), natGolden1());
    assert.deepEqual(await lines(ns1(), 'ip', 'route', 'show', 'type', 'blackhole'), [`blackhole ${subnet1()} proto 157 metric 4294967295`]);
  });

  test('a stuck datapath thread fails /healthz with the reason; the process itself still runs', async () => {
    await cluster.nodes[1]!.stop('SIGTERM', 5000);
    cluster.startNode(2, [`-healthz-port=${HEALTHZ_PORT}`], {}, ['stall-ingress']);
    const ns2 = cluster.topology.nodes[1]!.ns;
    await eventually(() => get(ns2, '/readyz'), (x) => x.status === 200, 10_000, 'the restarted node 2 ready');
    assert.equal((await get(ns2, '/healthz')).status, 200);
    const [a, b] = [cluster.topology.nodes[0]!.pod, cluster.topology.nodes[1]!.pod];
    await ping(lab, a.ns, b.address, 2); // wakes node 2's ingress thread, which then stalls
    const h = await eventually(() => get(ns2, '/healthz'), (x) => x.status === 500, 10_000, '/healthz failing');
    assert.match(h.body, /^flanneld is not healthy: a datapath thread has made no progress for \d+\.\d s$/);
    assert.equal(cluster.nodes[1]!.running, true);
    assert.equal(await cluster.nodes[1]!.stop('SIGTERM', 5000), 0);
  });
});

describe('flanneld operations: vxlan and host-gw nodes', ROOT_SUITE, () => {
  for (const backend of ['vxlan', 'host-gw'] as const) {
    test(`${backend}: stale routes of ours go at start; a restart does not interrupt pod traffic; cleanup removes everything`, { timeout: 120_000 }, async () => {
      const lab = new Lab();
      try {
        await backendLifecycle(lab, backend);
      } finally {
        await lab.cleanup();
      }
    });
  }
});

async function backendLifecycle(lab: Lab, backend: 'vxlan' | 'host-gw'): Promise<void> {
  // SubnetMax keeps the nodes' random subnets off 10.6.98/99, the routes this test plants.
  const cluster = await FlannelCluster.create(lab, { nodes: 2, config: { Network: '10.6.0.0/16', SubnetMax: '10.6.90.0', Backend: { Type: backend } } });
  const ns1 = cluster.topology.nodes[0]!.ns;
  const dev = cluster.topology.nodes[0]!.underlayIf;
  // A route of ours for a subnet that no longer exists, and someone else's (proto boot) that must stay.
  await lab.exec(ns1, 'ip', ['route', 'add', '10.6.99.0/24', 'via', '192.168.100.2', 'dev', dev, 'proto', '157']);
  await lab.exec(ns1, 'ip', ['route', 'add', '10.6.98.0/24', 'via', '192.168.100.2', 'dev', dev, 'proto', 'boot']);
  cluster.startNode(1, ['-ip-masq', '-ip-blackhole-route']);
  cluster.startNode(2);
  for (const i of [1, 2]) await cluster.waitSubnet(i);
  for (const i of [1, 2]) await cluster.attachPod(i);
  const [a, b] = [cluster.topology.nodes[0]!.pod, cluster.topology.nodes[1]!.pod];
  assert.ok(await eventually(() => ping(lab, a.ns, b.address, 1), (ok) => ok, 10_000, 'pod 1 -> pod 2'));
  await eventually(() => lab.exec(ns1, 'ip', ['route', 'show', '10.6.99.0/24']).then((r) => r.stdout), (s) => s === '', 5000, 'the stale route removed');
  assert.match((await lab.exec(ns1, 'ip', ['-d', 'route', 'show', '10.6.98.0/24'])).stdout, /proto boot/);
  assert.ok(cluster.nodes[0]!.messages().some((m) => /removed stale.*10\.6\.99\.0\/24/.test(m)), 'the removal is logged');

  // Stop and restart node 1 while pods talk: the kernel keeps forwarding.
  const series = pingSeries(lab, a.ns, b.address, 40);
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(await cluster.nodes[0]!.stop('SIGTERM', 5000), 0);
  assert.ok(await ping(lab, a.ns, b.address, 1), 'traffic flows while flanneld is stopped');
  cluster.startNode(1, ['-ip-masq', '-ip-blackhole-route']);
  const s = await series;
  assert.equal(s.received, s.sent, `every ping answered across the restart (${s.received}/${s.sent})`);
  await cluster.waitSubnet(1);

  // cleanup: with flanneld stopped, everything of ours goes, and is named.
  assert.equal(await cluster.nodes[0]!.stop('SIGTERM', 5000), 0);
  const c = await runCleanup(ns1);
  assert.equal(c.code, 0, c.stderr);
  const sub2 = cluster.topology.nodes[1]!.podSubnet.toString();
  if (backend === 'vxlan') assert.match(c.stdout, /^removed device flannel\.1 \(vxlan\) with 1 neighbour\(s\), 1 FDB entry and 1 route\(s\)$/m);
  else assert.match(c.stdout, new RegExp(`^removed route ${sub2.replace(/\./g, '\\.')} via 192\\.168\\.100\\.2 dev ${dev} proto 157$`, 'm'));
  assert.match(c.stdout, /^removed route blackhole 10\.6\.\d+\.0\/24 proto 157$/m);
  assert.match(c.stdout, /^removed rule iptables -t nat -N FLANNEL-POSTRTG$/m);
  assert.match(c.stdout, /^removed rule iptables -t filter -A FORWARD -m comment --comment "flanneld forward" -j FLANNEL-FWD$/m);
  assert.equal((await lab.exec(ns1, 'ip', ['route', 'show', 'proto', '157'])).stdout, '');
  assert.ok(!(await lab.exec(ns1, 'iptables-save', [])).stdout.includes('flannel'));
  assert.ok(!(await lab.exec(ns1, 'ip', ['link', 'show'])).stdout.includes('flannel.1'));
  assert.match((await lab.exec(ns1, 'ip', ['-d', 'route', 'show', '10.6.98.0/24'])).stdout, /proto boot/, 'routes of others stay');
  const again = await runCleanup(ns1);
  assert.equal(again.stdout, '');
  assert.match(again.stderr, /nothing of flannel-ts was left on this node/);
  await cluster.nodes[1]!.stop('SIGTERM', 5000);
}
