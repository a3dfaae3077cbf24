#!/usr/bin/env node
// Runs the test suite: compiles the TypeScript (out/test afresh), lists out/test/**/*.test.js
// (Node 20's test runner does not expand globs), runs them with `node --test`
// one file at a time (the namespace tests move real traffic; running them in
// parallel on 2 cores makes their timing meaningless), and fails when a test
// fails or when no test ran at all.
//
//   npm test                  every test
//   npm test -- udp-datapath  only files whose path contains "udp-datapath"
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
process.chdir(root);

const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc');
// A fresh out/test: a test file renamed or deleted in test/ must not run from a stale build.
// The build info goes too, or the incremental build would not emit the files again.
fs.rmSync(path.join(root, 'out', 'test'), { recursive: true, force: true });
fs.rmSync(path.join(root, 'out', '.tsbuildinfo'), { force: true });
execFileSync(process.execPath, [tsc, '-p', 'tsconfig.json'], { stdio: 'inherit' });

function listTests(dir) {
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? listTests(path.join(dir, e.name)) : e.name.endsWith('.test.js') ? [path.join(dir, e.name)] : []))
    .sort();
}

const filters = process.argv.slice(2);
const files = listTests(path.join('out', 'test')).filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)));
if (files.length === 0) {
  console.error(`run-tests: no test files match ${filters.length ? filters.join(', ') : 'out/test/**/*.test.js'}`);
  process.exit(1);
}
if (process.getuid && process.getuid() !== 0) {
  console.error('run-tests: NOT running as root: tests that need namespaces, TUN devices, etcd or iptables will be SKIPPED (each says so).');
}

const tap = path.join('out', 'test-results.tap');
const args = [
  '--test',
  '--test-concurrency=1',
  '--test-reporter=spec',
  '--test-reporter-destination=stdout',
  '--test-reporter=tap',
  `--test-reporter-destination=${tap}`,
  ...files,
];
const result = spawnSync(process.execPath, args, { stdio: 'inherit' });
const summary = fs.existsSync(tap) ? fs.readFileSync(tap, 'utf8') : '';
const count = (name) => Number((new RegExp(`^# ${name} (\\d+)$`, 'm').exec(summary) ?? [])[1] ?? 0);
const [pass, fail, skipped, cancelled] = [count('pass'), count('fail'), count('skipped'), count('cancelled')];
console.log(`\nrun-tests: ${files.length} files, pass ${pass}, fail ${fail}, cancelled ${cancelled}, skipped ${skipped}`);
if (pass === 0) {
  console.error('run-tests: no test passed; a run that executes no test is a failure');
  process.exit(1);
}
process.exit(result.status === 0 && fail === 0 && cancelled === 0 ? 0 : 1);
