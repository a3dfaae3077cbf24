/**
 * `/metrics` in the Prometheus text format (prom-client), served on the
 * -healthz-port listener. One status snapshot is taken per scrape and every
 * metric reads from it; the datapath's cumulative counters are exported as
 * counters. Names start with `flanneld_`, follow Prometheus' conventions
 * (one unit per family, _total for counters, snake_case label values, names
 * neutral to the lease store), and the process's default metrics (CPU,
 * memory, event-loop lag) come with them. A rename is listed in CHANGELOG.md.
 */
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import type { DatapathReport } from '../backends/backend';
import type { CounterName } from '../forwarder/native-datapath';
import type { Reconciler } from '../routing/reconciler';
import { VERSION } from '../version';
import { livenessProblem, readinessProblems, type StatusSnapshot } from './node-status';

/** lowerCamel to snake_case, for label values ("udpGro" -> "udp_gro"). */
export function snakeCase(s: string): string {
  return s.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/**
 * The datapath counters (native/core/counters.h) that are not packets,
 * bytes or drops, in families of one unit each: label value -> counter.
 * Every counter is exported exactly once (test/metrics.test.ts checks).
 */
export const DATAPATH_COUNTER_FAMILIES: ReadonlyArray<{ name: string; help: string; label: string; counters: Readonly<Record<string, CounterName>> }> = [
  {
    name: 'flanneld_datapath_syscalls_total',
    help: 'System calls of the udp datapath, by call (a TUN read or write moves one packet or one super-packet; a UDP send or receive call moves a batch).',
    label: 'call',
    counters: { tun_read: 'egress_read_packets', udp_send: 'egress_send_calls', udp_receive: 'ingress_receive_calls', tun_write: 'ingress_tun_write_calls' },
  },
  {
    name: 'flanneld_datapath_read_bytes_total',
    help: 'Bytes the udp datapath read, by side (flannel0 reads, UDP datagrams received), before drops.',
    label: 'side',
    counters: { tun: 'egress_read_bytes', udp: 'ingress_received_bytes' },
  },
  {
    name: 'flanneld_datapath_received_packets_total',
    help: 'Wire datagrams the udp datapath received (before drops; ingress_written counts what reached flannel0).',
    label: 'side',
    counters: { udp: 'ingress_received_packets' },
  },
  {
    name: 'flanneld_datapath_offload_packets_total',
    help: 'Packets that travelled with an offload, by how: TSO/USO super-packets read, the wire packets they were cut into, packets sent with UDP GSO and written coalesced, and packets whose TCP/UDP checksum was left partial.',
    label: 'kind',
    counters: {
      tun_gso_read: 'egress_read_gso_packets',
      split_segment: 'egress_split_segments',
      coalesced: 'ingress_coalesced_packets',
      partial_checksum_sent: 'egress_partial_checksum_packets',
      partial_checksum_received: 'ingress_partial_checksum_packets',
    },
  },
  {
    name: 'flanneld_datapath_offload_messages_total',
    help: 'Multi-packet messages: UDP GSO sends, UDP GRO receives and coalesced flannel0 writes.',
    label: 'kind',
    counters: { udp_gso_send: 'egress_gso_messages', udp_gro_receive: 'ingress_gro_messages', coalesced_tun_write: 'ingress_coalesced_writes' },
  },
  {
    name: 'flanneld_datapath_offload_fallbacks_total',
    help: 'Times the kernel refused an offload at run time and the datapath fell back (gso: for that peer, for a while; gro and partial_checksum: for good).',
    label: 'offload',
    counters: { gso: 'offload_gso_failures', gro: 'offload_gro_failures', partial_checksum: 'offload_partial_checksum_failures' },
  },
  {
    name: 'flanneld_datapath_icmp_errors_total',
    help: 'ICMP errors the udp datapath generated, by outcome: sent (by type), or not sent (suppressed by the rules, rate limited, write failed).',
    label: 'outcome',
    counters: {
      net_unreachable_sent: 'icmp_net_unreachable_sent',
      time_exceeded_sent: 'icmp_time_exceeded_sent',
      suppressed: 'icmp_suppressed',
      rate_limited: 'icmp_rate_limited',
      write_error: 'icmp_write_error',
    },
  },
  {
    name: 'flanneld_datapath_io_errors_total',
    help: 'Failed flannel0 reads and UDP receive calls (the packets were not lost: none had been read).',
    label: 'call',
    counters: { tun_read: 'tun_read_errors', udp_receive: 'udp_receive_errors' },
  },
  {
    name: 'flanneld_datapath_blocked_total',
    help: 'Times a datapath thread waited for a full queue to drain, by queue (the UDP socket, flannel0).',
    label: 'queue',
    counters: { udp_send: 'udp_send_blocked', tun_write: 'tun_write_blocked' },
  },
  {
    name: 'flanneld_datapath_wakeups_total',
    help: 'Times a datapath worker found work, by how it waited: asleep in poll, or busy polling after earlier work (BusyPollMicroseconds).',
    label: 'wait',
    counters: { sleep: 'worker_sleep_wakeups', busy_poll: 'worker_busy_poll_wakeups' },
  },
];

type Read = (set: (labels: Record<string, string>, v: number) => void) => void;

export class NodeMetrics {
  readonly registry = new Registry();
  private snap: StatusSnapshot | undefined;

  constructor(private readonly snapshot: () => Promise<StatusSnapshot>) {
    const r = this.registry;
    collectDefaultMetrics({ register: r });
    const self = this;
    const dp = (): DatapathReport | undefined => self.snap?.datapath;

    /** A metric whose values are read from the snapshot at scrape time (a counter mirrors a cumulative count). */
    const scraped = (type: 'counter' | 'gauge', name: string, help: string, labelNames: string[], read: Read): void => {
      const metric =
        type === 'counter'
          ? new Counter({ name, help, labelNames, registers: [r], collect: () => fill((labels, v) => (metric as Counter).inc(labels, v)) })
          : new Gauge({ name, help, labelNames, registers: [r], collect: () => fill((labels, v) => (metric as Gauge).set(labels, v)) });
      const fill = (set: (labels: Record<string, string>, v: number) => void): void => {
        metric.reset();
        read(set);
      };
    };
    const mirrored = (name: string, help: string, labelNames: string[], read: Read): void => scraped('counter', name, help, labelNames, read);
    const gauge = (name: string, help: string, labelNames: string[], read: Read): void => scraped('gauge', name, help, labelNames, read);

    gauge('flanneld_build_info', 'The running flanneld: version and backend (value 1).', ['version', 'backend'], (set) => {
      set({ version: VERSION, backend: self.snap?.backendType ?? '' }, 1);
    });
    mirrored('flanneld_datapath_packets_total', 'Packets forwarded by the udp datapath: egress = flannel0 to UDP (sent), ingress = UDP to flannel0 (written).', ['direction'], (set) => {
      const d = dp();
      if (!d) return;
      set({ direction: 'egress' }, d.packets.egress);
      set({ direction: 'ingress' }, d.packets.ingress);
    });
    mirrored('flanneld_datapath_bytes_total', 'Bytes forwarded by the udp datapath (inner packets).', ['direction'], (set) => {
      const d = dp();
      if (!d) return;
      set({ direction: 'egress' }, d.bytes.egress);
      set({ direction: 'ingress' }, d.bytes.ingress);
    });
    mirrored('flanneld_datapath_drops_total', 'Packets the udp datapath dropped, by direction and reason.', ['direction', 'reason'], (set) => {
      const d = dp();
      if (!d) return;
      for (const direction of ['egress', 'ingress'] as const) {
        for (const [reason, v] of Object.entries(d.drops[direction])) set({ direction, reason }, v);
      }
    });
    // The datapath's other counters, one family per unit (DATAPATH_COUNTER_FAMILIES).
    for (const family of DATAPATH_COUNTER_FAMILIES) {
      mirrored(family.name, family.help, [family.label], (set) => {
        const c = dp()?.counters;
        if (!c) return;
        for (const [value, counter] of Object.entries(family.counters)) set({ [family.label]: value }, c[counter] ?? 0);
      });
    }
    // The kernel fast path (Datapath ebpf): what it forwarded (also in the totals above), and what it passed to user space, by reason.
    mirrored('flanneld_datapath_fast_path_packets_total', 'Packets the kernel fast path of the udp datapath forwarded (counted in flanneld_datapath_packets_total too), by direction.', ['direction'], (set) => {
      const c = dp()?.counters;
      if (!c || c['ebpf_egress_packets'] === undefined) return;
      set({ direction: 'egress' }, c['ebpf_egress_packets'] ?? 0);
      set({ direction: 'ingress' }, c['ebpf_ingress_packets'] ?? 0);
    });
    mirrored('flanneld_datapath_fast_path_passed_total', 'Packets the kernel fast path left to the user-space datapath, by direction and reason.', ['direction', 'reason'], (set) => {
      const c = dp()?.counters;
      if (!c) return;
      for (const [name, v] of Object.entries(c)) {
        const m = /^ebpf_(egress|ingress)_pass_([a-z0-9_]+)$/.exec(name);
        if (m) set({ direction: m[1]!, reason: m[2]! }, v);
      }
    });
    gauge('flanneld_datapath_offload_active', 'Whether an offload of the udp datapath is in use (1) or not (0).', ['offload'], (set) => {
      const o = dp()?.offloads;
      if (!o) return;
      for (const [k, on] of Object.entries(o)) set({ offload: snakeCase(k) }, on ? 1 : 0);
    });
    gauge('flanneld_datapath_workers', 'Forwarding worker pairs of the udp datapath.', [], (set) => {
      const d = dp();
      if (d) set({}, d.workers);
    });
    gauge('flanneld_datapath_heartbeat_age_seconds', 'Seconds since the least recently active datapath thread made progress.', [], (set) => {
      const a = dp()?.heartbeatAgeMs;
      if (a !== undefined) set({}, a / 1000);
    });
    gauge('flanneld_routes_desired', 'Remote subnets the backend wants routed.', [], (set) => {
      const b = self.snap?.backend;
      if (b) set({}, b.routesDesired);
    });
    gauge('flanneld_routes_installed', 'Remote subnets routed now (datapath table or kernel routes).', [], (set) => {
      const b = self.snap?.backend;
      if (b) set({}, b.routesInstalled);
    });
    gauge('flanneld_lease_expiry_timestamp_seconds', 'When the own subnet lease expires in etcd, Unix seconds, by subnet (no series for a reservation or in kube mode, where leases do not expire).', ['subnet'], (set) => {
      const s = self.snap?.leaseExpiresAt;
      if (s !== undefined) set({ subnet: self.snap?.leaseSubnet ?? '' }, s);
    });
    mirrored('flanneld_lease_watch_reconnects_total', 'Times the watch of the other nodes\' leases (etcd watch, or the Kubernetes node watch) was re-established.', [], (set) => {
      const w = self.snap?.leasesWatch;
      if (w) set({}, w.reconnects);
    });
    mirrored('flanneld_lease_watch_resyncs_total', 'Full re-listings of the leases (periodic, after a compaction or an expired watch).', [], (set) => {
      const w = self.snap?.leasesWatch;
      if (w) set({}, w.resyncs);
    });
    gauge('flanneld_lease_watch_connected', 'Whether the watch of the other nodes\' leases is connected.', [], (set) => {
      const w = self.snap?.leasesWatch;
      set({}, w?.connected ? 1 : 0);
    });
    gauge('flanneld_lease_refused_records', "Other nodes' lease records held but not routed now, by reason (docs/reliability.md).", ['reason'], (set) => {
      const l = self.snap?.leases;
      if (!l) return;
      for (const [reason, n] of Object.entries(l.refused)) set({ reason }, n);
    });
    mirrored('flanneld_lease_skipped_records_total', 'Lease records (etcd keys, Node objects) that could not be read and were skipped.', [], (set) => {
      const w = self.snap?.leasesWatch;
      if (w) set({}, w.skippedKeys);
    });
    mirrored('flanneld_store_request_errors_total', 'Requests to the lease store that failed, by store (etcd, kubernetes).', ['store'], (set) => {
      const st = self.snap?.store;
      if (st) set({ store: st.name }, st.requestErrors);
    });
    mirrored('flanneld_repairs_total', 'Kernel state restored by a reconciler, by reconciler and kind.', ['reconciler', 'kind'], (set) => {
      for (const rec of self.reconcilers()) {
        for (const [kind, v] of Object.entries(rec.stats.repairsByKind)) set({ reconciler: rec.name, kind }, v);
      }
    });
    mirrored('flanneld_reconcile_failures_total', 'Reconciler runs that failed (retried at the next trigger).', ['reconciler'], (set) => {
      for (const rec of self.reconcilers()) set({ reconciler: rec.name }, rec.stats.failures);
    });
    gauge('flanneld_traffic_rules_in_place', 'Whether the masquerade/forward rules and blackhole route were in place at the last check.', [], (set) => {
      const t = self.snap?.trafficInPlace;
      if (t !== undefined) set({}, t ? 1 : 0);
    });
    gauge('flanneld_ready', 'Whether /readyz answers 200.', [], (set) => {
      if (self.snap) set({}, readinessProblems(self.snap).length === 0 ? 1 : 0);
    });
    gauge('flanneld_live', 'Whether /healthz answers 200.', [], (set) => {
      if (self.snap) set({}, livenessProblem(self.snap.datapath) === undefined ? 1 : 0);
    });
  }

  private reconcilers(): readonly Reconciler[] {
    return [...(this.snap?.backend?.reconcilers ?? []), ...(this.extraReconcilers?.() ?? [])];
  }

  /** Reconcilers outside the backend (the traffic rules). */
  extraReconcilers: (() => readonly Reconciler[]) | undefined;

  async render(): Promise<{ contentType: string; body: string }> {
    this.snap = await this.snapshot();
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
