import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RefusalReporter } from '../src/backends/udp/source-check';
import type { Refusal } from '../src/forwarder/udp-forwarder';
import { RecordingLogger } from '../src/log';

const unknown = (sender: string): Refusal => ({ sender, reason: 'ingress_drop_unknown_source' });

test('each unknown source is logged once, with the SourceCheck hint', () => {
  const batches: Refusal[][] = [[unknown('192.0.2.1'), unknown('192.0.2.2')], [], [unknown('192.0.2.1'), unknown('192.0.2.3')]];
  const log = new RecordingLogger();
  const r = new RefusalReporter({ drainRefusals: () => batches.shift() ?? [] }, log);
  assert.equal(r.poll(), 2);
  assert.equal(r.poll(), 0);
  assert.equal(r.poll(), 1);
  assert.deepEqual(log.records.map((x) => (x.obj as { source: string }).source), ['192.0.2.1', '192.0.2.2', '192.0.2.3']);
  for (const rec of log.records) {
    assert.equal(rec.level, 'warn');
    assert.equal((rec.obj as { reason: string }).reason, 'unknown_source');
    assert.match(rec.msg, /"SourceCheck": false/);
  }
});

test('a forged inner source and a foreign destination are logged once per sender, naming the addresses and the option', () => {
  const spoofed: Refusal = { sender: '192.0.2.2', reason: 'ingress_drop_spoofed_source', innerSource: '203.0.113.9', innerDestination: '10.5.1.7' };
  const foreign: Refusal = { sender: '192.0.2.2', reason: 'ingress_drop_foreign_destination', innerSource: '10.5.2.3', innerDestination: '10.5.3.4' };
  const batches: Refusal[][] = [[spoofed, foreign], [spoofed, { ...spoofed, sender: '192.0.2.3' }]];
  const log = new RecordingLogger();
  const r = new RefusalReporter({ drainRefusals: () => batches.shift() ?? [] }, log);
  assert.equal(r.poll(), 2);
  assert.equal(r.poll(), 1, 'the same sender and reason again is not logged; another sender is');
  const [a, b] = log.records;
  assert.deepEqual(a!.obj, { source: '192.0.2.2', reason: 'spoofed_source', innerSource: '203.0.113.9', innerDestination: '10.5.1.7' });
  assert.match(a!.msg, /203\.0\.113\.9 -> 10\.5\.1\.7/);
  assert.match(a!.msg, /"AllowExternalSources": true/);
  assert.equal((b!.obj as { reason: string }).reason, 'foreign_destination');
  assert.match(b!.msg, /not in this node's subnet/);
});
