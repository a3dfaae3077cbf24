/**
 * Lost rtnetlink notifications (ENOBUFS) trigger a full reconcile
 * (upstream issues flannel-io/flannel#414, #958): a real kernel overflow in a namespace of
 * our own, provoked by a tiny receive buffer and a burst of 2,000 routes.
 */
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Lab } from '../lab/netns';
import { ROOT_SUITE } from './helpers/root';

const OVERFLOW = path.resolve(__dirname, '..', 'lab', 'bin', 'netlink-overflow.js');

describe('netlink notification overflow', ROOT_SUITE, () => {
  let lab: Lab;
  before(() => {
    lab = new Lab();
  });
  after(async () => {
    await lab?.cleanup();
  });

  test('ENOBUFS is reported as an overflow and the reconciler runs at once', async () => {
    const ns = await lab.addNamespace('nlo');
    await lab.exec(ns, 'ip', ['link', 'add', 'va', 'type', 'veth', 'peer', 'name', 'vb']);
    await lab.exec(ns, 'ip', ['link', 'set', 'va', 'up']);
    const out = JSON.parse((await lab.exec(ns, process.execPath, [OVERFLOW, 'va'], { timeoutMs: 30_000 })).stdout) as {
      overflows: number;
      runs: number;
      reasons: string[];
      logs: string[];
    };
    assert.ok(out.overflows >= 1, JSON.stringify(out));
    assert.ok(out.runs >= 1, `the reconciler ran after the overflow: ${JSON.stringify(out)}`);
    assert.ok(out.logs.includes('netlink notifications were lost (ENOBUFS); reconciling everything'));
  });
});
