/**
 * Turning repeated measurements into the benchmark's outputs: the stdout
 * table (with each mode / the baseline), bench/RESULTS.md (with the
 * generated headline), the --json object and bench/results.svg (a bar chart
 * drawn here, no browser). Every ratio is mode / reference; for latency and
 * CPU, below 1 is better, and the tables say so.
 */

export const METRICS = [
  { key: 'tcp1_gbps', label: 'TCP 1 stream', unit: 'Gbit/s', higherIsBetter: true, digits: 2 },
  { key: 'tcp4_gbps', label: 'TCP 4 streams', unit: 'Gbit/s', higherIsBetter: true, digits: 2 },
  { key: 'udp64_pps', label: 'UDP 64 B', unit: 'pps', higherIsBetter: true, digits: 0 },
  { key: 'rtt_p50_us', label: 'RTT p50', unit: 'µs', higherIsBetter: false, digits: 1 },
  { key: 'rtt_p99_us', label: 'RTT p99', unit: 'µs', higherIsBetter: false, digits: 1 },
  { key: 'cpu_pct', label: 'forwarder CPU (TCP 1)', chartLabel: 'forwarder CPU', unit: '% of a core', higherIsBetter: false, digits: 0 },
  { key: 'cpu_per_gbps', label: 'forwarder CPU per Gbit/s (TCP 1)', chartLabel: 'CPU per Gbit/s', unit: '% of a core', higherIsBetter: false, digits: 1 },
  { key: 'rtt_cpu_pct', label: 'forwarder CPU (RTT)', chartLabel: 'CPU in ping-pong', unit: '% of a core', higherIsBetter: false, digits: 0 },
] as const;

/** Metrics of the user-space forwarders only: no ratio to a kernel baseline. */
export function isForwarderMetric(key: string): boolean {
  return key === 'cpu_pct' || key === 'cpu_per_gbps' || key === 'rtt_cpu_pct';
}

export type MetricKey = (typeof METRICS)[number]['key'];

export interface Summary {
  median: number;
  min: number;
  max: number;
  samples: number[];
}

export function summarize(samples: number[]): Summary | null {
  const v = samples.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const mid = Math.floor(v.length / 2);
  const median = v.length % 2 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
  return { median, min: v[0]!, max: v[v.length - 1]!, samples };
}

/** mode -> metric -> summary (null where not applicable, e.g. CPU of a kernel mode). */
export type Results = Record<string, Record<MetricKey, Summary | null>>;

export interface LpmResult {
  routes: number;
  lookupsPerSec: number;
}

export interface RunInfo {
  command: string;
  date: string;
  cores: number;
  cpuModel: string;
  kernel: string;
  seconds: number;
  runs: number;
  durationSeconds: number;
  tcp4Seconds: number;
}

function fmt(v: number, digits: number): string {
  if (v >= 10000) return Math.round(v).toLocaleString('en-US');
  return v.toFixed(digits);
}

function cell(s: Summary | null, digits: number): string {
  if (!s) return '–';
  if (s.samples.length === 1) return fmt(s.median, digits);
  return `${fmt(s.median, digits)} (${fmt(s.min, digits)}–${fmt(s.max, digits)})`;
}

/**
 * `mode` / `baseline` for a metric (medians), whichever way the metric
 * points: above 1 is better for throughput, below 1 for latency and CPU.
 */
export function ratio(results: Results, mode: string, baseline: string, key: MetricKey): number | null {
  const m = results[mode]?.[key];
  const b = results[baseline]?.[key];
  if (!m || !b || b.median === 0 || m.median === 0) return null;
  return m.median / b.median;
}

/** The metric's name with its unit and, for lower-is-better metrics, which way it points. */
function metricHeading(metric: (typeof METRICS)[number]): string {
  return `${metric.label} (${metric.unit}${metric.higherIsBetter ? '' : ', lower is better'})`;
}

export function textTable(results: Results, baseline: string): string {
  const modes = Object.keys(results);
  const rows: string[][] = [['metric', ...modes.map((m) => (m === baseline ? `${m} (baseline)` : `${m} (${m} / ${baseline})`))]];
  for (const metric of METRICS) {
    rows.push([
      metricHeading(metric),
      ...modes.map((m) => {
        const c = cell(results[m]![metric.key], metric.digits);
        const r = m === baseline || isForwarderMetric(metric.key) ? null : ratio(results, m, baseline, metric.key);
        return r === null ? c : `${c}  ${r.toFixed(2)}×`;
      }),
    ]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ');
  return [line(rows[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map(line)].join('\n');
}

/**
 * Every mode's medians, then `mode / baseline` for every other mode, then the
 * `extra` pairs (e.g. udp / upstream); CPU metrics compare only forwarders.
 */
export function markdownTable(results: Results, baseline: string, extra: ReadonlyArray<[string, string]> = []): string {
  const modes = Object.keys(results);
  const pairs: Array<[string, string]> = [
    ...modes.filter((m) => m !== baseline).map((m): [string, string] => [m, baseline]),
    ...extra.filter(([a, b]) => results[a] && results[b] && b !== baseline),
  ];
  const head = `| metric | ${modes.join(' | ')} | ${pairs.map(([a, b]) => `${a} / ${b}`).join(' | ')} |`;
  const sep = `|---|${modes.map(() => '---:').join('|')}|${pairs.map(() => '---:').join('|')}|`;
  const body = METRICS.map((metric) => {
    const cells = modes.map((m) => cell(results[m]![metric.key], metric.digits));
    const ratios = pairs.map(([a, b]) => {
      const r = isForwarderMetric(metric.key) && b === baseline ? null : ratio(results, a, b, metric.key);
      return r === null ? '–' : `${r.toFixed(2)}×`;
    });
    return `| ${metricHeading(metric)} | ${cells.join(' | ')} | ${ratios.join(' | ')} |`;
  });
  return [head, sep, ...body].join('\n');
}

/** The udp datapath's bars against kernel vxlan (same run, medians). */
export const UDP_BARS: ReadonlyArray<{ key: MetricKey; atLeast?: number; atMost?: number }> = [
  { key: 'tcp1_gbps', atLeast: 0.8 },
  { key: 'tcp4_gbps', atLeast: 0.5 },
  { key: 'udp64_pps', atLeast: 1.0 },
  { key: 'rtt_p50_us', atMost: 1.5 },
];

/**
 * The user-space datapath's own bars against kernel vxlan (docs/datapath.md,
 * "Where the fast path cannot run"): small packets and round trips.
 */
export const UDP_USER_BARS: ReadonlyArray<{ key: MetricKey; atLeast?: number; atMost?: number }> = [
  { key: 'udp64_pps', atLeast: 0.7 },
  { key: 'rtt_p50_us', atMost: 1.4 },
];

/** The udp datapath with the kernel fast path (udp-ebpf): its bars against kernel vxlan (docs/datapath.md, "The kernel fast path"). */
export const UDP_EBPF_BARS: ReadonlyArray<{ key: MetricKey; atLeast?: number; atMost?: number }> = [
  { key: 'tcp1_gbps', atLeast: 0.9 },
  { key: 'tcp4_gbps', atLeast: 0.9 },
  { key: 'udp64_pps', atLeast: 0.9 },
  { key: 'rtt_p50_us', atMost: 1.1 },
];

/**
 * The headline, generated from this run: `mode` against `baseline` with the
 * bars, and against `upstream` (what upstream flanneld runs) when measured.
 */
export function headline(results: Results, mode: string, baseline: string, upstream: string, bars = UDP_BARS): string {
  if (!results[mode] || !results[baseline]) return '';
  const withUpstream = results[upstream] !== undefined;
  const fmtRatio = (r: number | null) => (r === null ? '–' : `${r.toFixed(2)}×`);
  const row = (cols: string[]) => `| ${cols.join(' | ')} |`;
  const lines = [
    row(['metric', mode, baseline, `${mode} / ${baseline}`, 'bar', '', ...(withUpstream ? [upstream, `${mode} / ${upstream}`] : [])]),
    row(['---', '---:', '---:', '---:', '---', '---', ...(withUpstream ? ['---:', '---:'] : [])]),
  ];
  for (const bar of bars) {
    const metric = METRICS.find((m) => m.key === bar.key)!;
    const r = ratio(results, mode, baseline, bar.key);
    const met = r === null ? '–' : (bar.atLeast !== undefined ? r >= bar.atLeast : r <= bar.atMost!) ? 'met' : 'not met';
    lines.push(
      row([
        metricHeading(metric),
        cell(results[mode]![bar.key], metric.digits),
        cell(results[baseline]![bar.key], metric.digits),
        fmtRatio(r),
        bar.atLeast !== undefined ? `≥ ${bar.atLeast.toFixed(1)}×` : `≤ ${bar.atMost!.toFixed(1)}×`,
        met,
        ...(withUpstream ? [cell(results[upstream]![bar.key], metric.digits), fmtRatio(ratio(results, mode, upstream, bar.key))] : []),
      ]),
    );
  }
  return lines.join('\n');
}

/** The --json object: medians only, as the harness's documented schema. */
export function jsonResults(results: Results, extra: Record<string, unknown>): Record<string, unknown> {
  const modes: Record<string, Record<string, number | null>> = {};
  for (const [mode, metrics] of Object.entries(results)) {
    modes[mode] = Object.fromEntries(METRICS.map((m) => [m.key, metrics[m.key]?.median ?? null]));
  }
  const spread: Record<string, Record<string, { min: number; max: number; samples: number[] } | null>> = {};
  for (const [mode, metrics] of Object.entries(results)) {
    spread[mode] = Object.fromEntries(
      METRICS.map((m) => {
        const s = metrics[m.key];
        return [m.key, s ? { min: s.min, max: s.max, samples: s.samples } : null];
      }),
    );
  }
  return { modes, spread, ...extra };
}

const COLORS: Record<string, string> = {
  udp: '#d9534f',
  upstream: '#f0ad4e',
  vxlan: '#337ab7',
  'host-gw': '#5cb85c',
  'flannel-vxlan': '#8fb8de',
  'flannel-host-gw': '#a8d8a8',
  'udp-no-offload': '#e8a09e',
  'udp-busy-poll': '#b03a2e',
};
const FALLBACK_COLORS = ['#9b59b6', '#16a085', '#7f8c8d', '#c0392b'];

function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** The chart's width: drawn for a page about 830 px wide, so its text stays at least 12 px there. */
export const CHART_WIDTH = 830;
/** The smallest font size used in the chart, in its own pixels (= page pixels at CHART_WIDTH). */
export const CHART_MIN_FONT = 13;

/**
 * A bar chart: one panel per metric (four per row), one bar per mode
 * (median) with a min–max whisker and its value written along the bar.
 */
export function svgChart(results: Results, title: string, subtitle: string): string {
  const modes = Object.keys(results);
  const colorOf = (m: string, i: number) => COLORS[m] ?? FALLBACK_COLORS[i % FALLBACK_COLORS.length]!;
  const f = CHART_MIN_FONT;
  const columns = 4;
  const margin = 10;
  const panelW = (CHART_WIDTH - 2 * margin) / columns;
  const metrics = METRICS.filter((m) => modes.some((mode) => results[mode]![m.key]));
  // Legend rows: entries laid left to right, wrapping at the chart's width.
  const legend: Array<{ x: number; row: number; mode: string; i: number }> = [];
  let lx = margin;
  let row = 0;
  modes.forEach((m, i) => {
    const w = 22 + m.length * f * 0.6;
    if (lx + w > CHART_WIDTH - margin) {
      lx = margin;
      row++;
    }
    legend.push({ x: lx, row, mode: m, i });
    lx += w + 12;
  });
  const legendTop = 58;
  const panelsTop = legendTop + (row + 1) * (f + 8) + 10;
  const titleH = 2 * (f + 3);  // metric name, then its unit
  const labelRoom = 64;        // above the tallest bar, for its value written upward
  const barH = 130;
  const panelH = titleH + labelRoom + barH + 16;
  const rows = Math.ceil(metrics.length / columns);
  const height = panelsTop + rows * panelH + f + 14;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${CHART_WIDTH}" height="${height}" viewBox="0 0 ${CHART_WIDTH} ${height}" font-family="sans-serif">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${margin}" y="24" font-size="${f + 5}" font-weight="bold">${escapeXml(title)}</text>`,
    `<text x="${margin}" y="44" font-size="${f}" fill="#444">${escapeXml(subtitle)}</text>`,
  ];
  for (const e of legend) {
    const y = legendTop + e.row * (f + 8);
    parts.push(`<rect class="legend" x="${e.x}" y="${y}" width="${f}" height="${f}" fill="${colorOf(e.mode, e.i)}"/>`);
    parts.push(`<text x="${e.x + f + 5}" y="${y + f - 2}" font-size="${f}">${escapeXml(e.mode)}</text>`);
  }
  metrics.forEach((metric, p) => {
    const x0 = margin + (p % columns) * panelW;
    const y0 = panelsTop + Math.floor(p / columns) * panelH;
    const base = y0 + titleH + labelRoom + barH;
    const vals = modes.map((m) => results[m]![metric.key]);
    const top = Math.max(...vals.map((v) => (v ? v.max : 0))) || 1;
    parts.push(`<text x="${x0 + panelW / 2}" y="${y0 + f}" font-size="${f}" text-anchor="middle" font-weight="bold">${escapeXml('chartLabel' in metric ? metric.chartLabel : metric.label)}</text>`);
    parts.push(`<text x="${x0 + panelW / 2}" y="${y0 + 2 * f + 3}" font-size="${f}" text-anchor="middle" fill="#444">${escapeXml(metric.unit)}${metric.higherIsBetter ? ', higher is better' : ', lower is better'}</text>`);
    parts.push(`<line x1="${x0 + 6}" y1="${base}" x2="${x0 + panelW - 6}" y2="${base}" stroke="#999"/>`);
    const bw = (panelW - 12) / modes.length;
    vals.forEach((v, i) => {
      const bx = x0 + 6 + i * bw;
      const cx = bx + bw / 2;
      const mode = modes[i]!;
      if (!v) {
        parts.push(`<text x="${cx}" y="${base - 4}" font-size="${f}" text-anchor="start" fill="#999" transform="rotate(-90 ${cx + f / 3} ${base - 4})">n/a</text>`);
        return;
      }
      const h = (v.median / top) * barH;
      const y = base - h;
      parts.push(`<rect class="bar" x="${(bx + 2).toFixed(1)}" y="${y.toFixed(1)}" width="${Math.max(bw - 4, 2).toFixed(1)}" height="${h.toFixed(1)}" fill="${colorOf(mode, i)}"/>`);
      const yMin = base - (v.min / top) * barH;
      const yMax = base - (v.max / top) * barH;
      parts.push(`<line x1="${cx}" y1="${yMin.toFixed(1)}" x2="${cx}" y2="${yMax.toFixed(1)}" stroke="#333"/>`);
      parts.push(`<line x1="${cx - 3}" y1="${yMax.toFixed(1)}" x2="${cx + 3}" y2="${yMax.toFixed(1)}" stroke="#333"/>`);
      const ly = Math.min(y, yMax) - 4;
      parts.push(`<text x="${cx}" y="${ly.toFixed(1)}" font-size="${f}" text-anchor="start" transform="rotate(-90 ${(cx + f / 3).toFixed(1)} ${ly.toFixed(1)})">${fmt(v.median, metric.digits)}</text>`);
    });
  });
  parts.push(`<text x="${margin}" y="${height - 10}" font-size="${f}" fill="#444">bars: median of the runs; whiskers: min–max; values written along each bar</text>`);
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}

/** For each (ours, reference) pair present: ours / reference per metric, CPU excluded. */
export function pairRatios(results: Results, pairs: ReadonlyArray<[string, string]>): Array<{ ours: string; reference: string; ratios: Record<string, number | null> }> {
  return pairs
    .filter(([a, b]) => results[a] && results[b])
    .map(([ours, reference]) => ({
      ours,
      reference,
      ratios: Object.fromEntries(METRICS.filter((m) => !isForwarderMetric(m.key)).map((m) => [m.key, ratio(results, ours, reference, m.key)])),
    }));
}

/** Markdown table of pairRatios (ours / reference), with whether each is no worse than `tolerance` (0.10 = 10 %). */
export function pairTable(results: Results, pairs: ReadonlyArray<[string, string]>, tolerance: number): string {
  const rows = pairRatios(results, pairs);
  if (rows.length === 0) return '';
  const metrics = METRICS.filter((m) => !isForwarderMetric(m.key));
  const head = `| ours / reference | ${metrics.map((m) => m.label).join(' | ')} | within ${Math.round(tolerance * 100)} % |`;
  const sep = `|---|${metrics.map(() => '---:').join('|')}|---|`;
  const body = rows.map((r) => {
    const vals = metrics.map((m) => r.ratios[m.key]);
    const ok = metrics.every((m, i) => {
      const v = vals[i];
      return v !== null && v !== undefined && (m.higherIsBetter ? v >= 1 - tolerance : v <= 1 + tolerance);
    });
    return `| ${r.ours} / ${r.reference} | ${vals.map((v) => (v === null || v === undefined ? '–' : `${v.toFixed(2)}×`)).join(' | ')} | ${ok ? 'yes' : 'no'} |`;
  });
  return [head, sep, ...body].join('\n');
}
