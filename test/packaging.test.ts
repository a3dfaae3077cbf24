/**
 * dist/: the systemd unit is Type=notify and runs bin/flanneld; every
 * variable of the environment-file example is one flanneld reads (a typo
 * there would be silently ignored by an operator's node).
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { envName, FLANNEL_FLAGS } from '../src/cli/flags';
import { OFFLOAD_ENV, parseOffloadEnv } from '../src/forwarder/offload';
import { parseDotenv } from '../src/lease/subnet-file';

const DIST = path.resolve(__dirname, '..', '..', 'dist');

test('flanneld.service: Type=notify, restart on failure, watchdog, the env file', () => {
  const unit = fs.readFileSync(path.join(DIST, 'flanneld.service'), 'utf8');
  for (const line of ['Type=notify', 'Restart=on-failure', 'EnvironmentFile=-/etc/default/flanneld', 'ExecStart=/opt/flannel-ts/bin/flanneld']) {
    assert.ok(unit.split('\n').includes(line), `${line} in flanneld.service`);
  }
  assert.match(unit, /^WatchdogSec=\d+$/m);
});

test('flanneld.env: every variable, commented-out ones included, is a flag flanneld knows', () => {
  const text = fs.readFileSync(path.join(DIST, 'flanneld.env'), 'utf8');
  const known = new Set(FLANNEL_FLAGS.map((f) => envName(f.name)));
  const names = [...text.matchAll(/^#? ?([A-Z][A-Z0-9_]+)=/gm)].map((m) => m[1]!);
  assert.ok(names.length >= 10, names.join(' '));
  for (const n of names) assert.ok(known.has(n) || n === OFFLOAD_ENV, `${n} is not a flanneld variable`);
  const active = parseDotenv(text);
  assert.equal(active.get('FLANNELD_IP_MASQ'), 'true');
  assert.doesNotThrow(() => parseOffloadEnv('gso,gro'));
});
