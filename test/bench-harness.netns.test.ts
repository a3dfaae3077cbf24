/**
 * `npm run bench` end to end at its smallest size: one JSON object and
 * nothing else on stdout, the result files written, namespaces removed;
 * and a missing tool named with its apt package.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { needsRoot } from './helpers/root';

const ROOT = path.resolve(__dirname, '..', '..');
const RUN = path.join(ROOT, 'out', 'bench', 'run.js');

test('npm run bench -- --json prints one JSON object and writes the reports', { timeout: 180_000 }, (t) => {
  if (!needsRoot(t)) return;
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-'));
  try {
    const nsBefore = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
    const r = spawnSync('npm', ['run', '-s', 'bench', '--', '--json', '--modes', 'udp,upstream,vxlan', '--runs', '1', '--seconds', '1', '--out', out], {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 170_000,
    });
    assert.equal(r.status, 0, r.stderr);
    const j = JSON.parse(r.stdout) as { modes: Record<string, Record<string, number | null>> };
    assert.deepEqual(Object.keys(j.modes), ['udp', 'upstream', 'vxlan']);
    assert.ok(j.modes['upstream']!['tcp1_gbps']! > 0, 'the upstream-style forwarder carried traffic');
    assert.ok(j.modes['upstream']!['cpu_pct']! > 0, 'and its CPU is measured');
    assert.ok(j.modes['udp']!['tcp1_gbps']! > 0);
    assert.ok(j.modes['udp']!['udp64_pps']! > 0);
    assert.ok(j.modes['udp']!['rtt_p99_us']! >= j.modes['udp']!['rtt_p50_us']!);
    assert.ok(j.modes['udp']!['cpu_pct']! > 0, 'the forwarders\' CPU is measured');
    assert.equal(j.modes['vxlan']!['cpu_pct'], null);
    const md = fs.readFileSync(path.join(out, 'RESULTS.md'), 'utf8');
    assert.match(md, /Command: `npm run bench -- --json --modes udp,upstream,vxlan --runs 1 --seconds 1 --out /);
    assert.match(md, /^\| metric \| udp \| vxlan \| udp \/ vxlan \| bar \|  \| upstream \| udp \/ upstream \|$/m, 'the generated headline');
    assert.match(md, /^\| TCP 1 stream \(Gbit\/s\) \| [\d.]+ \| [\d.]+ \| [\d.]+× \| ≥ 0\.8× \| (not )?met \| [\d.]+ \| [\d.]+× \|$/m);
    assert.match(md, /ns with the inner source and destination checked too/);
    assert.match(md, /kernel \d/);
    assert.match(md, /\| 10,000 \| [\d,]+ \|/);
    assert.match(fs.readFileSync(path.join(out, 'results.svg'), 'utf8'), /^<svg/);
    assert.equal(execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }), nsBefore, 'no namespace left behind');
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
});

test('the IPv6 modes: inner IPv6 over the IPv6 underlay against vxlan on flannel-v6.1, with round trips from lab/udp-rtt', { timeout: 180_000 }, (t) => {
  if (!needsRoot(t)) return;
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'bench6-'));
  try {
    const r = spawnSync('npm', ['run', '-s', 'bench', '--', '--json', '--modes', 'udp-v6,vxlan-v6', '--runs', '1', '--seconds', '1', '--out', out], {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 170_000,
    });
    assert.equal(r.status, 0, r.stderr);
    const j = JSON.parse(r.stdout) as { baseline: string; modes: Record<string, Record<string, number | null>> };
    assert.equal(j.baseline, 'vxlan-v6', 'a run of the IPv6 modes alone compares with vxlan-v6');
    for (const m of ['udp-v6', 'vxlan-v6']) {
      assert.ok(j.modes[m]!['tcp1_gbps']! > 0, `${m} carried TCP`);
      assert.ok(j.modes[m]!['rtt_p50_us']! > 0 && j.modes[m]!['rtt_p99_us']! >= j.modes[m]!['rtt_p50_us']!, `${m} round trips`);
    }
    assert.ok(j.modes['udp-v6']!['cpu_pct']! > 0, 'the udp datapath\'s CPU is measured');
    const md = fs.readFileSync(path.join(out, 'RESULTS.md'), 'utf8');
    assert.match(md, /^## IPv6$/m);
    assert.match(md, /^\| metric \| udp-v6 \| vxlan-v6 \| udp-v6 \/ vxlan-v6 \| bar \|/m, 'the IPv6 headline');
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
});

test('a missing tool is named with its apt package', (t) => {
  if (!needsRoot(t)) return;
  // A PATH with node and sh but without iperf3.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nopath-'));
  try {
    for (const tool of ['sh', 'ip', 'bridge']) {
      const where = execFileSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).trim();
      fs.symlinkSync(where, path.join(dir, tool));
    }
    const r = spawnSync(process.execPath, [RUN, '--quick'], { encoding: 'utf8', env: { ...process.env, PATH: dir } });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /iperf3 is not installed: apt-get install iperf3/);
    assert.equal(r.stdout, '');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('an interrupted run removes its namespaces and processes', { timeout: 60_000 }, async (t) => {
  if (!needsRoot(t)) return;
  const { spawn } = await import('node:child_process');
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-int-'));
  try {
    const nsBefore = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
    const child = spawn(process.execPath, [RUN, '--modes', 'udp', '--runs', '1', '--seconds', '10', '--out', out], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the bench never started measuring: ${err}`)), 30_000);
      child.stderr.on('data', (d: Buffer) => {
        err += d.toString();
        if (err.includes('TCP 1 stream')) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    const code = await new Promise<number | null>((resolve) => {
      child.once('exit', (c) => resolve(c));
      child.kill('SIGINT');
    });
    assert.equal(code, 130);
    assert.equal(execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }), nsBefore, 'no namespace left behind');
    const strays = spawnSync('pgrep', ['-f', 'static-udp-node'], { encoding: 'utf8' }).stdout.trim();
    assert.equal(strays, '', 'no forwarder left running');
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
});
