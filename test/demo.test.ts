/**
 * The README's demo command works and leaves nothing behind.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { test } from 'node:test';
import { needsRoot } from './helpers/root';

const DEMO = path.resolve(__dirname, '..', 'lab', 'demo.js');

test('the demo shows pod1 reaching pod2 through flannel0 and cleans up', { timeout: 120_000 }, (t) => {
  if (!needsRoot(t)) return;
  const r = spawnSync(process.execPath, [DEMO, '--once'], { encoding: 'utf8', timeout: 110_000 });
  assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
  assert.match(r.stdout, /pod1 \(10\.5\.1\.2\) reaches pod2 \(10\.5\.2\.2\) through flannel0: ping ok/);
  assert.match(r.stdout, /sha256 matches/);
  const prefix = /namespaces (f[0-9a-z]{5})\*/.exec(r.stdout)?.[1];
  assert.ok(prefix, 'the demo names its namespaces');
  assert.match(r.stdout, /cleaned up/);
  const left = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  assert.doesNotMatch(left, new RegExp(prefix!), 'no namespace of the demo is left');
});
