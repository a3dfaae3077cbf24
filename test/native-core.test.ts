/**
 * Runs the C++ unit tests of the pure packet core (native/test), built by
 * `npm ci` as build/Release/native_core_tests. No root needed.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';

const BINARY = path.resolve(__dirname, '..', '..', 'build', 'Release', 'native_core_tests');

test('native core unit tests pass', () => {
  assert.ok(fs.existsSync(BINARY), `${BINARY} is missing: run npm ci or npm run build:native`);
  const r = spawnSync(BINARY, [], { encoding: 'utf8', timeout: 120_000 });
  const output = `${r.stdout}\n${r.stderr}`;
  const tests = Number(/^# tests (\d+)$/m.exec(r.stdout)?.[1] ?? 0);
  const failed = Number(/^# failed (\d+)$/m.exec(r.stdout)?.[1] ?? -1);
  assert.equal(failed, 0, output);
  assert.ok(tests >= 30, `expected at least 30 native tests, ran ${tests}\n${output}`);
  assert.equal(r.status, 0, output);
});
