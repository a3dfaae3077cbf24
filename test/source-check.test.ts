import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MAX_REMEMBERED, RefusalReporter, SUMMARY_INTERVAL_MS } from '../src/backends/udp/source-check';
import type { Refusal } from '../src/forwarder/udp-forwarder';
import { RecordingLogger } from '../src/logging';

const unknown = (sender: string): Refusal => ({ sender, reason: 'ingress_drop_unknown_source' });
const noCounts = () => ({ get: () => 0 });

test('each unknown source is logged once, with the SourceCheck hint', () => {
  const batches: Refusal[][] = [[unknown('192.0.2.1'), unknown('192.0.2.2')], [], [unknown('192.0.2.1'), unknown('192.0.2.3')]];
  const log = new RecordingLogger();
  const r = new RefusalReporter({ drainRefusals: () => batches.shift() ?? [], stats: noCounts }, log);
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
  const r = new RefusalReporter({ drainRefusals: () => batches.shift() ?? [], stats: noCounts }, log);
  assert.equal(r.poll(), 2);
  assert.equal(r.poll(), 1, 'the same sender and reason again is not logged; another sender is');
  const [a, b] = log.records;
  assert.deepEqual(a!.obj, { source: '192.0.2.2', reason: 'spoofed_source', innerSource: '203.0.113.9', innerDestination: '10.5.1.7' });
  assert.match(a!.msg, /203\.0\.113\.9 -> 10\.5\.1\.7/);
  assert.match(a!.msg, /"AllowExternalSources": true/);
  assert.equal((b!.obj as { reason: string }).reason, 'foreign_destination');
  assert.match(b!.msg, /not in this node's subnet/);
});

test('a periodic summary counts refusals by reason and names the newest, so a flood past the log-once memory is never silent', () => {
  const log = new RecordingLogger();
  let now = 0;
  const counts: Record<string, number> = { ingress_drop_spoofed_source: 0, ingress_drop_martian_source: 0 };
  const batches: Refusal[][] = [];
  const r = new RefusalReporter({ drainRefusals: () => batches.shift() ?? [], stats: () => ({ get: (n) => counts[n] ?? 0 }) }, log, () => now);
  // More distinct forged senders than are remembered as logged.
  const flood = Array.from({ length: MAX_REMEMBERED + 100 }, (_, i): Refusal => ({
    sender: `192.0.${i >> 8}.${i & 255}`,
    reason: 'ingress_drop_spoofed_source',
    innerSource: '10.5.2.9',
    innerDestination: '10.5.1.7',
  }));
  batches.push(flood);
  counts['ingress_drop_spoofed_source'] = flood.length * 3;
  assert.equal(r.poll(), flood.length);
  assert.equal(log.records.filter((x) => /refused \d+ datagram/.test(x.msg)).length, 0, 'no summary before the interval');
  // The first senders were forgotten as logged (bounded memory): seen again, they are logged again.
  batches.push([flood[0]!]);
  assert.equal(r.poll(), 1);
  now += SUMMARY_INTERVAL_MS;
  batches.push([{ sender: '192.0.2.99', reason: 'ingress_drop_martian_source', innerSource: '127.0.0.1', innerDestination: '10.5.1.7' }]);
  counts['ingress_drop_martian_source'] = 7;
  r.poll();
  const summary = log.records.find((x) => /refused \d+ datagram/.test(x.msg));
  assert.ok(summary, 'a summary after the interval');
  assert.deepEqual((summary.obj as { refused: Record<string, number> }).refused, { spoofed_source: flood.length * 3, martian_source: 7 });
  assert.match(summary.msg, /newest: .*192\.0\.2\.99: martian_source 127\.0\.0\.1 -> 10\.5\.1\.7/);
  // Nothing refused since: no summary.
  now += SUMMARY_INTERVAL_MS;
  const lines = log.records.length;
  r.poll();
  assert.equal(log.records.length, lines);
});

test('a martian source is logged with its own reason and no option to accept it', () => {
  const log = new RecordingLogger();
  const batches: Refusal[][] = [[{ sender: '192.0.2.2', reason: 'ingress_drop_martian_source', innerSource: '192.168.100.1', innerDestination: '10.5.1.7' }]];
  new RefusalReporter({ drainRefusals: () => batches.shift() ?? [], stats: noCounts }, log).poll();
  assert.equal((log.records[0]!.obj as { reason: string }).reason, 'martian_source');
  assert.match(log.records[0]!.msg, /no option accepts these/);
});
