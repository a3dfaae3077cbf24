/**
 * Turning repeated measurements into the benchmark's outputs: the stdout
 * table (with each mode's ratio to the baseline), bench/RESULTS.md, the
 * --json object and bench/results.svg (a bar chart drawn here, no browser).
 */

export const METRICS = [
  { key: 'tcp1_gbps', label: 'TCP 1 stream', unit: 'Gbit/s', higherIsBetter: true, digits: 2 },
  { key: 'tcp4_gbps', label: 'TCP 4 streams', unit: 'Gbit/s', higherIsBetter: true, digits: 2 },
  { key: 'udp64_pps', label: 'UDP 64 B', unit: 'pps', higherIsBetter: true, digits: 0 },
  { key: 'rtt_p50_us', label: 'RTT p50', unit: 'µs', higherIsBetter: false, digits: 1 },
  { key: 'rtt_p99_us', label: 'RTT p99', unit: 'µs', higherIsBetter: false, digits: 1 },
  { key: 'cpu_pct', label: 'forwarder CPU (TCP 1)', unit: '% of a core', higherIsBetter: false, digits: 0 },
  { key: 'cpu_per_gbps', label: 'forwarder CPU per Gbit/s (TCP 1)', unit: '% of a core', higherIsBetter: false, digits: 1 },
] as const;

/** Metrics of the user-space forwarders only: no ratio to a kernel baseline. */
export function isForwarderMetric(key: string): boolean {
  return key === 'cpu_pct' || key === 'cpu_per_gbps';
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

/** Ratio of `mode` to the baseline for a metric, as "×" text; for lower-is-better metrics, baseline/mode. */
export function ratio(results: Results, mode: string, baseline: string, key: MetricKey): number | null {
  const m = results[mode]?.[key];
  const b = results[baseline]?.[key];
  if (!m || !b || b.median === 0 || m.median === 0) return null;
  const metric = METRICS.find((x) => x.key === key)!;
  return metric.higherIsBetter ? m.median / b.median : b.median / m.median;
}

export function textTable(results: Results, baseline: string): string {
  const modes = Object.keys(results);
  const rows: string[][] = [['metric', ...modes.map((m) => (m === baseline ? `${m} (baseline)` : `${m} (× ${baseline})`))]];
  for (const metric of METRICS) {
    rows.push([
      `${metric.label} [${metric.unit}]`,
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

export function markdownTable(results: Results, baseline: string): string {
  const modes = Object.keys(results);
  const head = `| metric | ${modes.join(' | ')} | ${modes.filter((m) => m !== baseline).map((m) => `${m} / ${baseline}`).join(' | ')} |`;
  const sep = `|---|${modes.map(() => '---:').join('|')}|${modes.filter((m) => m !== baseline).map(() => '---:').join('|')}|`;
  const body = METRICS.map((metric) => {
    const cells = modes.map((m) => cell(results[m]![metric.key], metric.digits));
    const ratios = modes
      .filter((m) => m !== baseline)
      .map((m) => {
        const r = isForwarderMetric(metric.key) ? null : ratio(results, m, baseline, metric.key);
        return r === null ? '–' : `${r.toFixed(2)}×`;
      });
    return `| ${metric.label} (${metric.unit}) | ${cells.join(' | ')} | ${ratios.join(' | ')} |`;
  });
  return [head, sep, ...body].join('\n');
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
  vxlan: '#337ab7',
  'host-gw': '#5cb85c',
  'flannel-vxlan': '#8fb8de',
  'flannel-host-gw': '#a8d8a8',
};
const FALLBACK_COLORS = ['#f0ad4e', '#9b59b6', '#16a085', '#7f8c8d'];

function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** A bar chart: one panel per metric, one bar per mode (median) with a min–max whisker. */
export function svgChart(results: Results, title: string, subtitle: string): string {
  const modes = Object.keys(results);
  const colorOf = (m: string, i: number) => COLORS[m] ?? FALLBACK_COLORS[i % FALLBACK_COLORS.length]!;
  const panelW = 200;
  const panelH = 230;
  const barAreaTop = 95;
  const barAreaH = 130;
  const metrics = METRICS.filter((m) => modes.some((mode) => results[mode]![m.key]));
  const width = metrics.length * panelW + 20;
  const height = panelH + 80;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="10" y="22" font-size="16" font-weight="bold">${escapeXml(title)}</text>`,
    `<text x="10" y="40" font-size="11" fill="#555">${escapeXml(subtitle)}</text>`,
  ];
  // Legend: one colour per mode.
  let lx = 10;
  modes.forEach((m, i) => {
    parts.push(`<rect class="legend" x="${lx}" y="50" width="10" height="10" fill="${colorOf(m, i)}"/>`);
    parts.push(`<text x="${lx + 14}" y="59" font-size="11">${escapeXml(m)}</text>`);
    lx += 24 + m.length * 7;
  });
  metrics.forEach((metric, p) => {
    const x0 = 10 + p * panelW;
    const vals = modes.map((m) => results[m]![metric.key]);
    // 12 % headroom above the tallest whisker for its value label.
    const top = (Math.max(...vals.map((v) => (v ? v.max : 0))) || 1) * 1.12;
    parts.push(`<text x="${x0 + panelW / 2}" y="${barAreaTop - 12}" font-size="12" text-anchor="middle" font-weight="bold">${escapeXml(metric.label)}</text>`);
    parts.push(`<text x="${x0 + panelW / 2}" y="${barAreaTop + barAreaH + 18}" font-size="10" text-anchor="middle" fill="#555">${escapeXml(metric.unit)}${metric.higherIsBetter ? ' (higher is better)' : ' (lower is better)'}</text>`);
    parts.push(`<line x1="${x0 + 10}" y1="${barAreaTop + barAreaH}" x2="${x0 + panelW - 10}" y2="${barAreaTop + barAreaH}" stroke="#999"/>`);
    const bw = (panelW - 30) / modes.length;
    vals.forEach((v, i) => {
      const bx = x0 + 15 + i * bw;
      const mode = modes[i]!;
      if (!v) {
        parts.push(`<text x="${bx + bw / 2}" y="${barAreaTop + barAreaH - 4}" font-size="10" text-anchor="middle" fill="#999">n/a</text>`);
        return;
      }
      const h = (v.median / top) * barAreaH;
      const y = barAreaTop + barAreaH - h;
      parts.push(`<rect class="bar" x="${bx + 4}" y="${y.toFixed(1)}" width="${(bw - 8).toFixed(1)}" height="${h.toFixed(1)}" fill="${colorOf(mode, i)}"/>`);
      const yMin = barAreaTop + barAreaH - (v.min / top) * barAreaH;
      const yMax = barAreaTop + barAreaH - (v.max / top) * barAreaH;
      const cx = bx + bw / 2;
      parts.push(`<line x1="${cx}" y1="${yMin.toFixed(1)}" x2="${cx}" y2="${yMax.toFixed(1)}" stroke="#333"/>`);
      parts.push(`<line x1="${cx - 4}" y1="${yMax.toFixed(1)}" x2="${cx + 4}" y2="${yMax.toFixed(1)}" stroke="#333"/>`);
      parts.push(`<text x="${cx}" y="${(Math.min(y, yMax) - 4).toFixed(1)}" font-size="9" text-anchor="middle">${fmt(v.median, metric.digits)}</text>`);
    });
  });
  parts.push(`<text x="10" y="${height - 10}" font-size="10" fill="#555">bars: median of the runs; whiskers: min–max</text>`);
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}

/** For each (ours, reference) pair present: the ratio per metric (direction-aware), CPU excluded. */
export function pairRatios(results: Results, pairs: ReadonlyArray<[string, string]>): Array<{ ours: string; reference: string; ratios: Record<string, number | null> }> {
  return pairs
    .filter(([a, b]) => results[a] && results[b])
    .map(([ours, reference]) => ({
      ours,
      reference,
      ratios: Object.fromEntries(METRICS.filter((m) => !isForwarderMetric(m.key)).map((m) => [m.key, ratio(results, ours, reference, m.key)])),
    }));
}

/** Markdown table of pairRatios, with whether each is within `tolerance` (0.10 = 10 %). */
export function pairTable(results: Results, pairs: ReadonlyArray<[string, string]>, tolerance: number): string {
  const rows = pairRatios(results, pairs);
  if (rows.length === 0) return '';
  const metrics = METRICS.filter((m) => !isForwarderMetric(m.key));
  const head = `| ours / reference | ${metrics.map((m) => m.label).join(' | ')} | within ${Math.round(tolerance * 100)} % |`;
  const sep = `|---|${metrics.map(() => '---:').join('|')}|---|`;
  const body = rows.map((r) => {
    const vals = metrics.map((m) => r.ratios[m.key]);
    const ok = vals.every((v) => v !== null && v !== undefined && v >= 1 - tolerance);
    return `| ${r.ours} / ${r.reference} | ${vals.map((v) => (v === null || v === undefined ? '–' : `${v.toFixed(2)}×`)).join(' | ')} | ${ok ? 'yes' : 'no'} |`;
  });
  return [head, sep, ...body].join('\n');
}
