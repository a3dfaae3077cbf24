/**
 * `npm run bench`: udp (ours) vs kernel vxlan vs host-gw, side by side in one
 * run, pod to pod over a veth underlay. See docs/benchmarking.md.
 *
 *   npm run bench                  3 runs of 5 s per case of every default mode
 *   npm run bench -- --quick       3 runs of 1 s per case
 *   npm run -s bench -- --json     one JSON object on stdout, nothing else (-s: npm prints no banner)
 *   npm run bench -- --modes udp,vxlan --runs 5 --seconds 10   only these modes
 *   npm run bench -- --modes +udp-1-worker                     the default modes and this one
 *   npm run bench -- --out /tmp/x  write RESULTS.md and results.svg there
 *
 * (How long each takes, measured: docs/benchmarking.md.) Progress goes to
 * stderr. bench/RESULTS.md and bench/results.svg are rewritten by a run of
 * every default mode (RESULTS.md keeps everything below its notes marker),
 * and the README's performance headline with them when the run measured
 * udp, vxlan and upstream; a run of only some modes writes to build/bench/
 * unless --out says where, so the committed results keep every mode.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Lab } from '../lab/netns';
import { rttUs, startServers, tcpGbps, udp64Pps, type Durations } from './measure';
import { updateReadmeHeadline } from './readme-headline';
import { BASELINE_MODE, baselineOf, BUSY_POLL_MICROSECONDS, BUSY_POLL_MODE, EBPF_MODE, IPV6_BASELINE_MODE, IPV6_UDP_MODE, type ModeDefinition, type ModeSetup, MODES, SAME_DATAPATH_PAIRS, UPSTREAM_MODE } from './modes';
import {
  headline,
  jsonResults,
  type LpmResult,
  markdownTable,
  METRICS,
  type MetricKey,
  pairRatios,
  pairTable,
  ratio,
  type Results,
  type RunInfo,
  summarize,
  svgChart,
  textTable,
  UDP_EBPF_BARS,
  UDP_USER_BARS,
} from './report';

const ROOT = path.resolve(__dirname, '..', '..');
const BENCH_DIR = path.join(ROOT, 'bench');
const LPM_BENCH = path.join(ROOT, 'build', 'Release', 'native_lpm_bench');
/** The IPv6 headline has no upstream column: upstream's udp backend carries no IPv6. */
const NO_UPSTREAM = '';
const NOTES_MARKER = '<!-- Notes below this line are written by hand and kept across runs. -->';

interface Options {
  quick: boolean;
  json: boolean;
  runs: number;
  seconds: number;
  modes: ModeDefinition[];
  budgetSeconds: number;
  outDir: string;
}

class UsageError extends Error {}

function parseArgs(argv: string[]): Options {
  const quick = argv.includes('--quick');
  const opts: Options = {
    quick,
    json: argv.includes('--json'),
    runs: 3,
    seconds: quick ? 1 : 5,
    modes: MODES.filter((m) => !m.optional),
    budgetSeconds: 0,
    outDir: BENCH_DIR,
  };
  let replaced = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = (): string => {
      const eq = a.indexOf('=');
      if (eq >= 0) return a.slice(eq + 1);
      const v = argv[++i];
      if (v === undefined) throw new UsageError(`${a} needs a value`);
      return v;
    };
    if (a === '--quick' || a === '--json') continue;
    if (a.startsWith('--out')) opts.outDir = path.resolve(value());
    else if (a.startsWith('--runs')) opts.runs = Number(value());
    else if (a.startsWith('--seconds')) opts.seconds = Number(value());
    else if (a.startsWith('--modes')) {
      const names = value().split(',');
      const find = (n: string): ModeDefinition => {
        const m = MODES.find((x) => x.name === n);
        if (!m) throw new UsageError(`unknown mode '${n}'; modes: ${MODES.map((x) => x.name).join(', ')}`);
        return m;
      };
      // "+name" adds to the default modes; plain names replace them.
      const added = names.filter((n) => n.startsWith('+')).map((n) => find(n.slice(1)));
      const only = names.filter((n) => !n.startsWith('+')).map(find);
      opts.modes = only.length > 0 ? [...only, ...added] : [...opts.modes, ...added.filter((m) => !opts.modes.includes(m))];
      if (only.length > 0) replaced = true;
    } else throw new UsageError(`unknown option ${a}; options: --quick --json --runs N --seconds S --modes a,b (or +a to add) --out DIR`);
  }
  // Only some modes: the committed results (every mode) stay as they are unless --out says otherwise.
  if (replaced && !argv.some((x) => x.startsWith('--out'))) opts.outDir = path.join(ROOT, 'build', 'bench');
  if (!Number.isInteger(opts.runs) || opts.runs < 1) throw new UsageError('--runs must be a positive integer');
  if (!(opts.seconds >= 1 && opts.seconds <= 60)) throw new UsageError('--seconds must be 1..60');
  // The time budget scales with the cases: four per mode and run (the 4-stream
  // case takes at least 8 s in full runs), plus setup and tool start-up.
  const caseSeconds = 3 * opts.seconds + (quick ? opts.seconds : Math.max(opts.seconds, 8));
  opts.budgetSeconds = 60 + opts.modes.length * opts.runs * (caseSeconds + 15);
  return opts;
}

function progress(msg: string): void {
  process.stderr.write(`[bench] ${msg}\n`);
}

/** Fails with the apt package to install when a tool is missing. */
function checkTools(modes: readonly ModeDefinition[]): void {
  if (process.getuid?.() !== 0) throw new UsageError('the benchmark creates network namespaces: run it as root');
  const tools: Array<[string, string]> = [
    ['iperf3', 'iperf3'],
    ['sockperf', 'sockperf'],
    ['ip', 'iproute2'],
    ['bridge', 'iproute2'],
    ...(modes.some((m) => m.name === 'wireguard') ? ([['wg', 'wireguard-tools'], ['wireguard-go', 'wireguard-go']] as Array<[string, string]>) : []),
  ];
  for (const [tool, pkg] of tools) {
    const r = spawnSync('sh', ['-c', `command -v ${tool}`]);
    if (r.status !== 0) throw new UsageError(`${tool} is not installed: apt-get install ${pkg} (or run scripts/bootstrap)`);
  }
  if (!fs.existsSync(LPM_BENCH)) throw new UsageError(`${LPM_BENCH} is missing: run npm ci or npm run build:native`);
}

function runLpmBench(): LpmResult[] {
  const out = execFileSync(LPM_BENCH, ['10', '10000'], { encoding: 'utf8', timeout: 60_000 });
  return out
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { routes: number; lookups_per_sec: number })
    .map((r) => ({ routes: r.routes, lookupsPerSec: r.lookups_per_sec }));
}

interface IngressPolicyCost {
  outer: number;
  full: number;
}

/** decide_ingress ns per packet with only the outer source checked, and with the inner checks too. */
function runIngressPolicyBench(): IngressPolicyCost {
  const out = execFileSync(LPM_BENCH, ['--ingress'], { encoding: 'utf8', timeout: 60_000 });
  const rows = out.trim().split('\n').map((l) => JSON.parse(l) as { ingress_policy: string; ns_per_packet: number });
  const ns = (name: string) => rows.find((r) => r.ingress_policy === name)?.ns_per_packet ?? NaN;
  return { outer: ns('outer'), full: ns('full') };
}

function machineInfo(): Pick<RunInfo, 'cores' | 'cpuModel' | 'kernel'> {
  return { cores: os.cpus().length, cpuModel: os.cpus()[0]?.model ?? 'unknown', kernel: os.release() };
}

function writeResultsMd(file: string, results: Results, lpm: LpmResult[], policy: IngressPolicyCost, info: RunInfo): void {
  const previous = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
  const markerAt = previous.indexOf(NOTES_MARKER);
  const notes = markerAt >= 0 ? previous.slice(markerAt + NOTES_MARKER.length) : '\n';
  const l10 = lpm.find((x) => x.routes === 10);
  const l10k = lpm.find((x) => x.routes === 10000);
  const lpmRatio = l10 && l10k ? l10k.lookupsPerSec / l10.lookupsPerSec : NaN;
  const modeLines = MODES.filter((m) => results[m.name]).map((m) => `- \`${m.name}\`: ${m.description}`);
  const baseline = baselineOf(results);
  const v4Headline = results['udp'] && results[BASELINE_MODE] ? `## Headline

The udp datapath (\`udp\`) against kernel vxlan (the bars) and against the upstream-style
forwarder (what upstream flanneld runs), this run's medians. Ratios are udp / the other mode:
above 1 is better for throughput, below 1 for latency.

${headline(results, 'udp', BASELINE_MODE, UPSTREAM_MODE)}
` : '';
  const ebpf = results[EBPF_MODE] && results[BASELINE_MODE]
    ? `\n## The kernel fast path\n\nThe udp datapath with its kernel fast path (\`${EBPF_MODE}\`, "Datapath": "ebpf") against kernel vxlan, with the\nfast path's bars, and against the user-space datapath alone (\`udp\`), this run's medians. The CPU\ncolumns count the user-space processes only: the fast path's work is the kernel's, as vxlan's is.\n\n${headline(results, EBPF_MODE, BASELINE_MODE, 'udp', UDP_EBPF_BARS)}\n`
    : '';
  const rttCpu = (mode: string) => {
    const c = results[mode]?.rtt_cpu_pct;
    return c && c.samples.length > 0 ? `${c.median.toFixed(0)} %` : '–';
  };
  const busy = results['udp'] && results[BUSY_POLL_MODE] && results[BASELINE_MODE]
    ? `\n## The user-space path: small packets and round trips\n\nThe user-space datapath's own bars against kernel vxlan, this run's medians: \`udp\` as it runs by default, then\n\`${BUSY_POLL_MODE}\` ("BusyPollMicroseconds": ${BUSY_POLL_MICROSECONDS}: workers poll without sleeping for that long after work,\ntrading CPU for wakeups). The forwarders' CPU during the round trips, both nodes, of one core: \`udp\`\n${rttCpu('udp')}, \`${BUSY_POLL_MODE}\` ${rttCpu(BUSY_POLL_MODE)}.\n\n${headline(results, 'udp', BASELINE_MODE, NO_UPSTREAM, UDP_USER_BARS)}\n\n${headline(results, BUSY_POLL_MODE, BASELINE_MODE, 'udp', UDP_USER_BARS)}\n`
    : '';
  const ipv6 = results[IPV6_UDP_MODE] && results[IPV6_BASELINE_MODE]
    ? `\n## IPv6\n\nInner IPv6 over the IPv6 underlay: the udp datapath (\`${IPV6_UDP_MODE}\`) against the kernel's vxlan on\nflannel-v6.1 (\`${IPV6_BASELINE_MODE}\`), this run's medians.\n\n${headline(results, IPV6_UDP_MODE, IPV6_BASELINE_MODE, NO_UPSTREAM)}\n`
    : '';
  const md = `# Benchmark results

Written by \`npm run bench\`; do not edit above the notes marker.

- Command: \`${info.command}\`
- Date: ${info.date}
- Machine: ${info.cores} cores (${info.cpuModel}), kernel ${info.kernel}
- Each case: ${info.runs} runs of ${info.durationSeconds} s (TCP 4 streams: ${info.tcp4Seconds} s); median with (min–max). Whole run: ${info.seconds.toFixed(0)} s.
- Topology: pod → node → veth underlay (MTU 1500; the IPv6 modes: a bridge) → node → pod, in
  network namespaces; the traffic generators and both nodes' forwarders share the machine's cores.
- Tools: iperf3 \`-C cubic\` (TCP, first second omitted; UDP \`-l 64 -b 0\`, datagrams received per
  second), sockperf ping-pong \`-m 64 --full-rtt\` (round trip; in the IPv6 modes lab/udp-rtt, the same
  exchange, since Debian's sockperf 3.7 takes IPv4 addresses only).
- CPU: the user-space forwarders' CPU time (both nodes) during the TCP 1-stream case, % of one core;
  \`–\` for kernel modes.

${modeLines.join('\n')}

${v4Headline}${ebpf}${busy}${ipv6}
## All modes

Ratios are mode / ${baseline} (and udp / ${UPSTREAM_MODE}, ${IPV6_UDP_MODE} / ${IPV6_BASELINE_MODE}); for latency and CPU lower is better.

${markdownTable(results, baseline, [['udp', UPSTREAM_MODE], [IPV6_UDP_MODE, IPV6_BASELINE_MODE]])}

![bar chart of these results](results.svg)

## Route lookup micro-benchmark

\`build/Release/native_lpm_bench 10 10000\` (C++ loop over the datapath's LPM table, /24 routes,
destinations spread uniformly over the routes, median of 7 runs):

| routes | lookups per second |
|---:|---:|
${lpm.map((r) => `| ${r.routes.toLocaleString('en-US')} | ${Math.round(r.lookupsPerSec).toLocaleString('en-US')} |`).join('\n')}

10,000 routes run at ${(lpmRatio * 100).toFixed(0)} % of the 10-route rate (bar: at least 80 %).

## Cost of the source check

\`build/Release/native_lpm_bench --ingress\` (the forwarding decision for 64-byte packets from
1,000 peers, median of 7 runs): ${policy.outer.toFixed(1)} ns per packet with only the outer
source checked, ${policy.full.toFixed(1)} ns with the inner source and destination checked too:
${(policy.full - policy.outer).toFixed(1)} ns per packet${udpPpsCost(results, policy)}.
${pairRatios(results, SAME_DATAPATH_PAIRS).length ? `
## flannel-ts's kernel backends vs the kernel configured by hand

Same datapath, so the same numbers are expected (bar: within 10 %):

${pairTable(results, SAME_DATAPATH_PAIRS, 0.1)}
` : ''}
${NOTES_MARKER}${notes}`;
  fs.writeFileSync(file, md);
}

/** What the inner checks cost at the udp mode's measured 64-byte rate, as a share of one core. */
function udpPpsCost(results: Results, policy: IngressPolicyCost): string {
  const pps = results['udp']?.udp64_pps?.median;
  if (!pps) return '';
  const share = ((policy.full - policy.outer) * pps) / 1e9;
  return `, ${(share * 100).toFixed(3)} % of one core at this run's udp rate of ${Math.round(pps).toLocaleString('en-US')} packets per second`;
}

async function main(): Promise<number> {
  let opts: Options;
  try {
    opts = parseArgs(process.argv.slice(2));
    checkTools(opts.modes);
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`bench: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
  const started = Date.now();
  const deadline = setTimeout(() => {
    progress(`time budget of ${opts.budgetSeconds} s exceeded: aborting (namespaces are removed)`);
    process.exit(3); // the labs' exit hooks clean up
  }, opts.budgetSeconds * 1000);
  deadline.unref();

  const labs: Lab[] = [];
  try {
    const setups: ModeSetup[] = [];
    for (const mode of opts.modes) {
      progress(`setting up ${mode.name}`);
      const lab = new Lab();
      labs.push(lab);
      const setup = await mode.setup(lab);
      await startServers(lab, setup);
      setups.push(setup);
    }
    const d: Durations = { seconds: opts.seconds, tcp4Seconds: opts.quick ? opts.seconds : Math.max(opts.seconds, 8) };
    const samples: Record<string, Record<MetricKey, number[]>> = {};
    for (const s of setups) samples[s.name] = Object.fromEntries(METRICS.map((m) => [m.key, []])) as unknown as Record<MetricKey, number[]>;

    for (let run = 1; run <= opts.runs; run++) {
      // Rotate the order so no mode always runs first (or last) in a round.
      const order = setups.map((_, i) => setups[(i + run - 1) % setups.length]!);
      for (const s of order) {
        const lab = labs[setups.indexOf(s)]!;
        const acc = samples[s.name]!;
        progress(`run ${run}/${opts.runs} ${s.name}: TCP 1 stream`);
        const t1 = await tcpGbps(lab, s, 1, d);
        acc.tcp1_gbps.push(t1.value);
        if (t1.cpuPct !== undefined) {
          acc.cpu_pct.push(t1.cpuPct);
          if (t1.value > 0) acc.cpu_per_gbps.push(t1.cpuPct / t1.value);
        }
        progress(`run ${run}/${opts.runs} ${s.name}: TCP 4 streams`);
        acc.tcp4_gbps.push((await tcpGbps(lab, s, 4, d)).value);
        progress(`run ${run}/${opts.runs} ${s.name}: UDP 64-byte datagrams`);
        acc.udp64_pps.push((await udp64Pps(lab, s, d)).value);
        progress(`run ${run}/${opts.runs} ${s.name}: request/response latency`);
        const rtt = await rttUs(lab, s, d);
        acc.rtt_p50_us.push(rtt.p50);
        acc.rtt_p99_us.push(rtt.p99);
        if (rtt.cpuPct !== undefined) acc.rtt_cpu_pct.push(rtt.cpuPct);
      }
    }
    progress('route lookup micro-benchmark');
    const lpm = runLpmBench();
    const policyCost = runIngressPolicyBench();

    const results: Results = {};
    for (const s of setups) {
      results[s.name] = Object.fromEntries(METRICS.map((m) => [m.key, summarize(samples[s.name]![m.key])])) as Results[string];
    }
    const info: RunInfo = {
      command: `npm run bench${process.argv.length > 2 ? ' -- ' + process.argv.slice(2).join(' ') : ''}`,
      date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
      ...machineInfo(),
      seconds: (Date.now() - started) / 1000,
      runs: opts.runs,
      durationSeconds: opts.seconds,
      tcp4Seconds: d.tcp4Seconds,
    };
    const resultsMd = path.join(opts.outDir, 'RESULTS.md');
    const resultsSvg = path.join(opts.outDir, 'results.svg');
    fs.mkdirSync(opts.outDir, { recursive: true });
    writeResultsMd(resultsMd, results, lpm, policyCost, info);
    if (opts.outDir === BENCH_DIR) {
      if (results['udp'] && results[BASELINE_MODE] && results[UPSTREAM_MODE]) {
        updateReadmeHeadline(ROOT);
        process.stderr.write('README.md: performance headline rewritten from bench/RESULTS.md\n');
      } else {
        process.stderr.write(`README.md: headline left as it was (it needs the udp, ${BASELINE_MODE} and ${UPSTREAM_MODE} modes in one run)\n`);
      }
    }
    fs.writeFileSync(
      resultsSvg,
      svgChart(results, 'flannel-ts overlay benchmark (pod to pod, two nodes)', `${info.date}, ${info.cores} cores, kernel ${info.kernel}, ${opts.runs} runs × ${opts.seconds} s`),
    );
    if (opts.json) {
      process.stdout.write(
        JSON.stringify(
          jsonResults(results, {
            baseline: baselineOf(results),
            lpm_lookups_per_sec: Object.fromEntries(lpm.map((r) => [String(r.routes), r.lookupsPerSec])),
            ingress_decision_ns: policyCost,
            machine: { cores: info.cores, cpu: info.cpuModel, kernel: info.kernel },
            date: info.date,
            runs: info.runs,
            seconds_per_case: info.durationSeconds,
            same_datapath_ratios: pairRatios(results, SAME_DATAPATH_PAIRS),
          }),
        ) + '\n',
      );
    } else {
      process.stdout.write(`\n${textTable(results, baselineOf(results))}\n\n`);
      for (const r of lpm) process.stdout.write(`route lookups, ${r.routes} routes: ${Math.round(r.lookupsPerSec).toLocaleString('en-US')}/s\n`);
      process.stdout.write(`ingress decision: ${policyCost.outer.toFixed(1)} ns/packet (outer source only), ${policyCost.full.toFixed(1)} ns with the inner checks\n`);
      for (const p of pairRatios(results, SAME_DATAPATH_PAIRS)) {
        const text = Object.entries(p.ratios).map(([k, v]) => `${k} ${v === null ? '–' : v.toFixed(2) + '×'}`).join(', ');
        process.stdout.write(`${p.ours} vs ${p.reference}: ${text}\n`);
      }
      for (const ref of [BASELINE_MODE, UPSTREAM_MODE]) {
        const r = (k: MetricKey) => ratio(results, 'udp', ref, k);
        if (r('tcp1_gbps') === null) continue;
        const text = METRICS.filter((m) => ['tcp1_gbps', 'tcp4_gbps', 'udp64_pps', 'rtt_p50_us'].includes(m.key))
          .map((m) => `${m.label} ${r(m.key)?.toFixed(2) ?? '–'}×`)
          .join(', ');
        process.stdout.write(`udp / ${ref}: ${text} (latency: lower is better)\n`);
      }
      process.stdout.write(`\nwrote ${resultsMd} and ${resultsSvg} (${info.seconds.toFixed(0)} s)\n`);
    }
    return 0;
  } finally {
    for (const lab of labs) await lab.cleanup();
    clearTimeout(deadline);
  }
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`bench failed: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
    process.exit(1);
  },
);
