/**
 * `/metrics` in the Prometheus text format (prom-client), served on the
 * -healthz-port listener. One status snapshot is taken per scrape and every
 * metric reads from it; the datapath's cumulative counters are exported as
 * counters. Names start with `flanneld_`; the process's default metrics
 * (CPU, memory, event-loop lag) come with them.
 */
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import type { DatapathReport } from '../backends/backend';
import type { Reconciler } from '../routing/reconciler';
import { livenessProblem, readinessProblems, type StatusSnapshot } from './node-status';

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

    mirrored('flanneld_datapath_packets_total', 'Packets forwarded by the udp datapath: egress = flannel0 to UDP (sent), ingress = UDP to flannel0 (written).', ['direction'], (set) => {
      const d = dp();
      if (!d) return;
      set({ direction: 'egress' }, d.packets.egress);
      set({ direction: 'ingress' }, d.packets.ingress);
    });
    mirrored('flanneld_datapath_bytes_total', 'Bytes forwarded by the udp datapath (inner IPv4 packets).', ['direction'], (set) => {
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
    mirrored('flanneld_datapath_events_total', 'Every counter of the udp datapath (syscalls, offload use, ICMP errors, ...), by name.', ['counter'], (set) => {
      const d = dp();
      if (!d) return;
      for (const [name, v] of Object.entries(d.counters)) set({ counter: name }, v);
    });
    gauge('flanneld_datapath_offload_active', 'Whether an offload of the udp datapath is in use (1) or not (0).', ['offload'], (set) => {
      const o = dp()?.offloads;
      if (!o) return;
      for (const [k, on] of Object.entries(o)) set({ offload: k }, on ? 1 : 0);
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
    gauge('flanneld_lease_seconds_left', "Seconds until the own subnet lease expires in etcd (absent for a reservation).", [], (set) => {
      const s = self.snap?.leaseSecondsLeft;
      if (s !== undefined) set({}, s);
    });
    mirrored('flanneld_etcd_watch_reconnects_total', 'Times the etcd lease watch was re-established.', [], (set) => {
      const w = self.snap?.leasesWatch;
      if (w) set({}, w.reconnects);
    });
    mirrored('flanneld_etcd_watch_resyncs_total', 'Full re-listings of the leases (periodic and after compaction).', [], (set) => {
      const w = self.snap?.leasesWatch;
      if (w) set({}, w.resyncs);
    });
    mirrored('flanneld_etcd_skipped_keys_total', 'Keys under <prefix>/subnets that could not be parsed and were skipped.', [], (set) => {
      const w = self.snap?.leasesWatch;
      if (w) set({}, w.skippedKeys);
    });
    gauge('flanneld_etcd_watch_connected', 'Whether the etcd lease watch is connected.', [], (set) => {
      const w = self.snap?.leasesWatch;
      set({}, w?.connected ? 1 : 0);
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
