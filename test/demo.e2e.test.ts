/**
 * The README's demo command works and leaves nothing behind.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { test } from 'node:test';
import { needsRoot } from './helpers/root';

const DEMO = path.resolve(__dirname, '..', 'lab', 'demo.js');

test('the demo runs etcd and three flanneld nodes, shows pod-to-pod traffic and cleans up', { timeout: 120_000 }, (t) => {
  if (!needsRoot(t)) return;
  const r = spawnSync(process.execPath, [DEMO, '--once'], { encoding: 'utf8', timeout: 110_000 });
  assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
  for (const [a, b] of [[1, 2], [1, 3], [2, 1], [2, 3], [3, 1], [3, 2]]) {
    assert.match(r.stdout, new RegExp(`pod${a} reaches pod${b} \\(10\\.5\\.\\d+\\.2\\) through flannel0: ping ok`));
  }
  assert.match(r.stdout, /\{"PublicIP":"192\.168\.100\.1","PublicIPv6":null,"BackendData":\{"Capabilities":\["partial-checksums"\]\}\}/);
  assert.match(r.stdout, /sha256 matches/);
  const prefix = /namespaces (f[0-9a-z]{5})\*/.exec(r.stdout)?.[1];
  assert.ok(prefix, 'the demo names its namespaces');
  assert.match(r.stdout, /cleaned up/);
  const left = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  assert.doesNotMatch(left, new RegExp(prefix!), 'no namespace of the demo is left');
});
