import assert from 'node:assert/strict';
import { test } from 'node:test';
import { UnknownSourceReporter } from '../src/backends/udp/source-check';
import { RecordingLogger } from '../src/log';

test('each unknown source is logged once, with the SourceCheck hint', () => {
  const batches = [['192.0.2.1', '192.0.2.2'], [], ['192.0.2.1', '192.0.2.3']];
  const log = new RecordingLogger();
  const r = new UnknownSourceReporter({ drainUnknownSources: () => batches.shift() ?? [] }, log);
  assert.equal(r.poll(), 2);
  assert.equal(r.poll(), 0);
  assert.equal(r.poll(), 1);
  assert.deepEqual(log.records.map((x) => (x.obj as { source: string }).source), ['192.0.2.1', '192.0.2.2', '192.0.2.3']);
  for (const rec of log.records) {
    assert.equal(rec.level, 'warn');
    assert.match(rec.msg, /"SourceCheck": false/);
  }
});
