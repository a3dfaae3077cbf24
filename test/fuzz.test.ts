/**
 * The libFuzzer targets of native/fuzz (every parser of bytes from the
 * network or the kernel: the IPv4 header walk, the virtio-net header, the
 * segmenter, the coalescer, the egress and ingress glue), each run for a few seconds. `npm run fuzz`
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
const FUZZ_DIR = path.join(ROOT, 'native', 'fuzz');
/** Every target in native/fuzz (fuzz_<name>.cc). */
const TARGETS = fs.readdirSync(FUZZ_DIR).filter((f) => /^fuzz_.*\.cc$/.test(f)).map((f) => f.slice(0, -3)).sort();
const SECONDS = 3;

/**
 * The functions of native/core that read bytes from the network or the
 * kernel: declared in a header, named parse_*, decode_*, decide_*, classify_*,
 * split_*, for_each_*, coalesce_* or complete_* (the packet core's naming).
 */
function coreParsers(): string[] {
  const dir = path.join(ROOT, 'native', 'core');
  const names = new Set<string>();
  for (const f of fs.readdirSync(dir).filter((x) => x.endsWith('.h'))) {
    for (const m of fs.readFileSync(path.join(dir, f), 'utf8').matchAll(/^(?:inline\s+)?[A-Za-z_][\w:<>]*\s+((?:parse|decode|decide|classify|split|for_each|coalesce|complete)_\w+)\s*\(/gm)) names.add(m[1]!);
  }
  return [...names].sort();
}

describe('libFuzzer targets', () => {
  before(() => {
    execFileSync(path.join(ROOT, 'scripts', 'build-fuzzers.sh'), { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'], timeout: 300_000 });
  });

  test('every parser of native/core is driven by some fuzz target', () => {
    const parsers = coreParsers();
    assert.ok(parsers.length >= 6, `found only ${parsers.join(', ')}`);
    const fuzzed = TARGETS.map((t) => fs.readFileSync(path.join(FUZZ_DIR, `${t}.cc`), 'utf8')).join('\n');
    assert.deepEqual(parsers.filter((p) => !new RegExp(`\\b${p}\\s*\\(`).test(fuzzed)), [], 'parsers no fuzz target calls');
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
