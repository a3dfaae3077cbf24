/**
 * The libFuzzer targets of native/fuzz (every parser of bytes from the
 * network or the kernel: the IPv4 header walk, the virtio-net header, the
 * segmenter, the coalescer), each run for a few seconds. `npm run fuzz`
 * runs them longer. They need clang with libFuzzer (scripts/bootstrap
 * installs it); without it this test fails rather than skips.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';

const ROOT = path.resolve(__dirname, '..', '..');
const TARGETS = ['fuzz_ipv4', 'fuzz_virtio_hdr', 'fuzz_segmenter', 'fuzz_coalescer'];
const SECONDS = 3;

describe('libFuzzer targets', () => {
  before(() => {
    execFileSync(path.join(ROOT, 'scripts', 'build-fuzzers.sh'), { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'], timeout: 300_000 });
  });

  test('every parser has a target', () => {
    const sources = fs.readdirSync(path.join(ROOT, 'native', 'fuzz')).filter((f) => f.startsWith('fuzz_') && f.endsWith('.cc'));
    assert.deepEqual(sources.map((f) => f.slice(0, -3)).sort(), [...TARGETS].sort());
  });

  for (const target of TARGETS) {
    test(`${target} runs ${SECONDS} s without a crash or a broken invariant`, { timeout: 60_000 }, () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${target}-`));
      try {
        const r = spawnSync(
          path.join(ROOT, 'build', 'fuzz', target),
          [`-max_total_time=${SECONDS}`, '-print_final_stats=1', `-artifact_prefix=${dir}/`, '-rss_limit_mb=1024'],
          { encoding: 'utf8', timeout: (SECONDS + 30) * 1000 },
        );
        const out = r.stdout + r.stderr;
        assert.equal(r.status, 0, `${target} failed:\n${out.slice(-3000)}`);
        const units = Number(/stat::number_of_executed_units:\s*(\d+)/.exec(out)?.[1] ?? 0);
        assert.ok(units > 1000, `${target} executed only ${units} inputs`);
        assert.deepEqual(fs.readdirSync(dir), [], 'no crash artifacts');
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});
