/**
 * The benchmark's pure parts: statistics, ratios, the text and markdown
 * tables, the --json shape and the SVG chart.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CHART_WIDTH, headline, jsonResults, markdownTable, METRICS, pairTable, ratio, type Results, summarize, svgChart, textTable } from '../bench/report';

function results(): Results {
  const mk = (vals: Partial<Record<string, number[]>>) =>
    Object.fromEntries(METRICS.map((m) => [m.key, summarize(vals[m.key] ?? [])])) as Results[string];
  return {
    udp: mk({ tcp1_gbps: [1, 1.2, 1.1], tcp4_gbps: [1, 1, 1], udp64_pps: [70000, 72000, 71000], rtt_p50_us: [200, 190, 210], rtt_p99_us: [300, 310, 305], cpu_pct: [150, 152, 151], cpu_per_gbps: [150, 126.7, 137.3] }),
    vxlan: mk({ tcp1_gbps: [11, 12, 13], tcp4_gbps: [20, 21, 22], udp64_pps: [80000, 90000, 85000], rtt_p50_us: [100, 120, 110], rtt_p99_us: [200, 190, 195] }),
  };
}

test('median, min and max of the samples; nothing finite gives null', () => {
  assert.deepEqual(summarize([3, 1, 2]), { median: 2, min: 1, max: 3, samples: [3, 1, 2] });
  assert.equal(summarize([4, 1, 3, 2])!.median, 2.5);
  assert.equal(summarize([]), null);
  assert.equal(summarize([NaN]), null);
});

test('ratios are always mode / reference, whichever way the metric points', () => {
  const r = results();
  assert.ok(Math.abs(ratio(r, 'udp', 'vxlan', 'tcp1_gbps')! - 1.1 / 12) < 1e-9);
  assert.ok(Math.abs(ratio(r, 'udp', 'vxlan', 'rtt_p50_us')! - 200 / 110) < 1e-9, 'udp has 1.8× the latency');
  assert.equal(ratio(r, 'udp', 'vxlan', 'cpu_pct'), null, 'the baseline has no forwarder CPU');
});

test('tables show median (min–max), mode / baseline, and say where lower is better', () => {
  const t = textTable(results(), 'vxlan');
  assert.match(t, /TCP 1 stream \(Gbit\/s\)\s+1\.10 \(1\.00–1\.20\)\s+0\.09×\s+12\.00 \(11\.00–13\.00\)/);
  assert.match(t, /RTT p50 \(µs, lower is better\)\s+200\.0 \(190\.0–210\.0\)\s+1\.82×/);
  assert.match(t, /udp \(udp \/ vxlan\)/);
  const md = markdownTable(results(), 'vxlan');
  assert.match(md, /^\| metric \| udp \| vxlan \| udp \/ vxlan \|$/m);
  assert.match(md, /^\| UDP 64 B \(pps\) \| 71,000 \(70,000–72,000\) \| 85,000 \(80,000–90,000\) \| 0\.84× \|$/m);
  assert.match(md, /^\| RTT p99 \(µs, lower is better\) \| .* \| 1\.56× \|$/m);
});

test('the headline compares with the bars and with upstream, generated from the numbers', () => {
  const r = results();
  const mk = (v: number[]) => summarize(v);
  r['upstream'] = { tcp1_gbps: mk([0.1]), tcp4_gbps: mk([0.1]), udp64_pps: mk([35000]), rtt_p50_us: mk([150]), rtt_p99_us: mk([300]), cpu_pct: mk([100]), cpu_per_gbps: mk([1000]), rtt_cpu_pct: mk([30]) };
  const h = headline(r, 'udp', 'vxlan', 'upstream');
  assert.match(h, /^\| metric \| udp \| vxlan \| udp \/ vxlan \| bar \|  \| upstream \| udp \/ upstream \|$/m);
  assert.match(h, /^\| TCP 1 stream \(Gbit\/s\) \| 1\.10 \(1\.00–1\.20\) \| 12\.00 \(11\.00–13\.00\) \| 0\.09× \| ≥ 0\.8× \| not met \| 0\.10 \| 11\.00× \|$/m);
  assert.match(h, /^\| UDP 64 B \(pps\) \| .* \| 0\.84× \| ≥ 1\.0× \| not met \| 35,000 \| 2\.03× \|$/m);
  assert.match(h, /^\| RTT p50 \(µs, lower is better\) \| .* \| 1\.82× \| ≤ 1\.5× \| not met \|/m);
  const better = results();
  better['udp']!.rtt_p50_us = summarize([120]);
  assert.match(headline(better, 'udp', 'vxlan', 'upstream'), /1\.09× \| ≤ 1\.5× \| met \|$/m);
  // Same-datapath pairs: lower-is-better metrics pass when not above 1 + tolerance.
  const pair = pairTable(better, [['udp', 'vxlan']], 0.1);
  assert.match(pair, /\| no \|$/m);
});

test('--json has exactly the documented keys per mode, medians as numbers or null', () => {
  const j = jsonResults(results(), { baseline: 'vxlan' }) as { modes: Record<string, Record<string, number | null>> };
  assert.deepEqual(Object.keys(j.modes), ['udp', 'vxlan']);
  for (const m of Object.values(j.modes)) {
    assert.deepEqual(Object.keys(m), ['tcp1_gbps', 'tcp4_gbps', 'udp64_pps', 'rtt_p50_us', 'rtt_p99_us', 'cpu_pct', 'cpu_per_gbps', 'rtt_cpu_pct']);
  }
  assert.equal(j.modes['udp']!['tcp1_gbps'], 1.1);
  assert.equal(j.modes['vxlan']!['cpu_pct'], null);
});

test('the SVG is a well-formed chart with one bar per mode and metric, legible at 830 px', () => {
  const svg = svgChart(results(), 'title <&>', 'sub');
  assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  assert.match(svg, /<\/svg>\n$/);
  assert.match(svg, /title &lt;&amp;&gt;/);
  const bars = svg.match(/<rect class="bar"/g) ?? [];
  // 5 metrics with both modes + the two CPU metrics with udp only.
  assert.equal(bars.length, 5 * 2 + 2);
  assert.equal((svg.match(/<rect class="legend"/g) ?? []).length, 2, 'one legend entry per mode');
  assert.equal((svg.match(/>n\/a</g) ?? []).length, 2);
  const width = Number(/width="(\d+)"/.exec(svg)![1]);
  assert.ok(width <= 840, `drawn ${width} px wide`);
  const sizes = [...svg.matchAll(/font-size="([\d.]+)"/g)].map((m) => Number(m[1]) * (CHART_WIDTH / width));
  assert.ok(sizes.length > 20 && Math.min(...sizes) >= 12, `smallest text ${Math.min(...sizes)} px at ${CHART_WIDTH} px`);
});
