/**
 * /metrics from a status snapshot (no daemon): the families and their
 * conventions (one unit per family, snake_case label values, store-neutral
 * names), and every datapath counter exported exactly once.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { COUNTER_NAMES } from '../src/forwarder/native-datapath';
import { DATAPATH_COUNTER_FAMILIES, NodeMetrics, snakeCase } from '../src/daemon/metrics';
import { livenessProblem, readinessProblems, type StatusSnapshot } from '../src/daemon/node-status';

function snapshot(over: Partial<StatusSnapshot> = {}): StatusSnapshot {
  const counters = Object.fromEntries(COUNTER_NAMES.map((n, i) => [n, i + 1]));
  const drops = (dir: string) => Object.fromEntries(COUNTER_NAMES.filter((n) => n.startsWith(`${dir}_drop_`)).map((n) => [n.slice(`${dir}_drop_`.length), counters[n]!]));
  return {
    backend: { synced: true, routesDesired: 2, routesInstalled: 2, reconcilers: [] },
    datapath: {
      running: true,
      heartbeatAgeMs: 100,
      workers: 2,
      packets: { egress: counters['egress_sent_packets']!, ingress: counters['ingress_written_packets']! },
      bytes: { egress: counters['egress_sent_bytes']!, ingress: counters['ingress_written_bytes']! },
      drops: { egress: drops('egress'), ingress: drops('ingress') },
      counters,
      offloads: { tso: true, uso: true, gso: true, udpGro: false, gro: true },
    },
    leasesWatch: { reconnects: 1, resyncs: 2, skippedKeys: 3, connected: true, snapshotApplied: true, resets: 0 },
    leases: undefined,
    leaseExpiresAt: 1_800_000_000,
    leaseSubnet: '10.5.1.0/24',
    backendType: 'udp',
    store: { name: 'etcd', requestErrors: 4 },
    leaseHeld: true,
    leaseProblem: undefined,
    trafficInPlace: true,
    subnetEnvWritten: true,
    starting: false,
    ...over,
  };
}

async function render(s: StatusSnapshot): Promise<string> {
  return (await new NodeMetrics(async () => s).render()).body;
}

test('every datapath counter is exported exactly once: packets, bytes, drops or one family of one unit', () => {
  const seen = new Map<string, number>();
  const note = (n: string) => seen.set(n, (seen.get(n) ?? 0) + 1);
  for (const n of ['egress_sent_packets', 'ingress_written_packets', 'egress_sent_bytes', 'ingress_written_bytes']) note(n);
  for (const n of COUNTER_NAMES) if (/_drop_/.test(n)) note(n);
  for (const f of DATAPATH_COUNTER_FAMILIES) for (const c of Object.values(f.counters)) note(c);
  assert.deepEqual(COUNTER_NAMES.filter((n) => seen.get(n) !== 1), [], 'counters missing or exported twice');
  for (const f of DATAPATH_COUNTER_FAMILIES) {
    assert.match(f.name, /^flanneld_datapath_[a-z_]+_total$/);
    for (const v of Object.keys(f.counters)) assert.match(v, /^[a-z][a-z0-9_]*$/, `${f.name} label ${v}`);
  }
});

test('the families: build info, lease expiry as a timestamp, store-neutral watch names, request errors, snake_case labels', async () => {
  const body = await render(snapshot());
  assert.match(body, /^flanneld_build_info\{version="[^"]+",backend="udp"\} 1$/m);
  assert.match(body, /^flanneld_lease_expiry_timestamp_seconds\{subnet="10\.5\.1\.0\/24"\} 1800000000$/m);
  assert.match(body, /^flanneld_lease_watch_connected 1$/m);
  assert.match(body, /^flanneld_lease_watch_reconnects_total 1$/m);
  assert.match(body, /^flanneld_lease_skipped_records_total 3$/m);
  assert.match(body, /^flanneld_store_request_errors_total\{store="etcd"\} 4$/m);
  assert.match(body, /^flanneld_datapath_offload_active\{offload="udp_gro"\} 0$/m);
  const counters = Object.fromEntries(COUNTER_NAMES.map((n, i) => [n, i + 1]));
  assert.match(body, new RegExp(`^flanneld_datapath_syscalls_total\\{call="udp_send"\\} ${counters['egress_send_calls']}$`, 'm'));
  assert.match(body, new RegExp(`^flanneld_datapath_offload_fallbacks_total\\{offload="gso"\\} ${counters['offload_gso_failures']}$`, 'm'));
  assert.doesNotMatch(body, /flanneld_datapath_events_total|flanneld_etcd_|seconds_left/);
  assert.equal(snakeCase('udpGro'), 'udp_gro');
});

test('kube mode: no lease expiry series, the Kubernetes store named', async () => {
  const body = await render(snapshot({ leaseExpiresAt: undefined, store: { name: 'kubernetes', requestErrors: 0 }, datapath: undefined, backendType: 'vxlan' }));
  assert.doesNotMatch(body, /^flanneld_lease_expiry_timestamp_seconds\{/m);
  assert.match(body, /^flanneld_store_request_errors_total\{store="kubernetes"\} 0$/m);
  assert.match(body, /^flanneld_build_info\{version="[^"]+",backend="vxlan"\} 1$/m);
  assert.doesNotMatch(body, /^flanneld_datapath_syscalls_total\{/m, 'no datapath series for a kernel backend');
});

test('readiness names a lease whose expiry passed while etcd was unreachable; liveness does not care', () => {
  const problem = 'the lease expired at 2026-12-06T00:00:00.000Z without a renewal (etcd unreachable); routing continues until etcd answers';
  assert.deepEqual(readinessProblems(snapshot()), []);
  assert.deepEqual(readinessProblems(snapshot({ leaseProblem: problem })), [problem]);
  assert.equal(livenessProblem(snapshot({ leaseProblem: problem }).datapath), undefined);
});
