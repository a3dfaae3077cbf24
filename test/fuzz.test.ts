/**
 * The libFuzzer targets of native/fuzz (every parser of bytes from the
 * network or the kernel: the IPv4 header walk, the virtio-net header, the
 * segmenter, the coalescer, the egress and ingress glue), each run for a few
 * seconds from its checked-in seeds (native/fuzz/corpus/). `npm run fuzz`
 * (scripts/fuzz.sh) runs them longer; it is shown here to fail on a crash
 * (a throwaway target with a planted bug) and to run again after a run.
 * They need clang with libFuzzer (scripts/bootstrap installs it); without
 * it this test fails rather than skips.
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
        const seeds = path.join(FUZZ_DIR, 'corpus', target);
        assert.ok(fs.readdirSync(seeds).length > 0, `${target} has checked-in seeds in native/fuzz/corpus/${target}`);
        // The seeds are read, never written: new inputs go to a scratch corpus.
        const r = spawnSync(
          path.join(ROOT, 'build', 'fuzz', target),
          [`-max_total_time=${SECONDS}`, '-print_final_stats=1', `-artifact_prefix=${dir}/`, '-rss_limit_mb=1024', dir, seeds],
          { encoding: 'utf8', timeout: (SECONDS + 30) * 1000 },
        );
        const out = r.stdout + r.stderr;
        assert.equal(r.status, 0, `${target} failed:\n${out.slice(-3000)}`);
        const units = Number(/stat::number_of_executed_units:\s*(\d+)/.exec(out)?.[1] ?? 0);
        assert.ok(units > 1000, `${target} executed only ${units} inputs`);
        assert.deepEqual(fs.readdirSync(dir).filter((f) => /^(crash|leak|timeout|oom)-/.test(f)), [], 'no crash artifacts');
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
  }

  test('scripts/fuzz.sh runs again after a run, and fails, naming the target, when a target crashes (a planted bug)', { timeout: 120_000 }, () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fuzz-planted-'));
    try {
      const sources = path.join(dir, 'src');
      fs.mkdirSync(path.join(sources, 'corpus', 'fuzz_planted'), { recursive: true });
      // A bug planted for this test: an invariant that breaks on one 8-byte input, "PLANTED!",
      // recognized by its FNV-1a hash so the fuzzer cannot find it on its own in a second.
      fs.writeFileSync(
        path.join(sources, 'fuzz_planted.cc'),
        [
          '#include <cstddef>',
          '#include <cstdint>',
          '#include "fuzz_check.h"',
          'extern "C" int LLVMFuzzerTestOneInput(const uint8_t* d, size_t n) {',
          '  uint32_t h = 0x811c9dc5u;',
          '  for (size_t i = 0; i < n; ++i) h = (h ^ d[i]) * 0x01000193u;',
          '  FUZZ_CHECK(!(n == 8 && h == 0x0928b8c6u));',
          '  return 0;',
          '}',
        ].join('\n'),
      );
      const run = () =>
        spawnSync(path.join(ROOT, 'scripts', 'fuzz.sh'), ['1'], {
          cwd: ROOT,
          encoding: 'utf8',
          env: { ...process.env, FUZZ_SOURCES: sources, FUZZ_OUT: path.join(dir, 'out') },
          timeout: 100_000,
        });
      for (const attempt of [1, 2]) {
        const ok = run();
        assert.equal(ok.status, 0, `run ${attempt} without the triggering input:\n${ok.stdout}${ok.stderr}`);
      }
      fs.writeFileSync(path.join(sources, 'corpus', 'fuzz_planted', 'seed'), 'PLANTED!');
      const crash = run();
      assert.notEqual(crash.status, 0, 'a crash fails the command');
      assert.match(crash.stderr, /fuzz: fuzz_planted failed/);
      assert.ok(fs.readdirSync(path.join(dir, 'out', 'artifacts')).some((f) => f.startsWith('fuzz_planted-crash-')), 'the crashing input is kept');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
