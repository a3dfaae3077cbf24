/**
 * The etcd watch stream's reconnect rules against a fake gRPC watch stream
 * (src/lease/etcd/watch-stream.ts): a stream created and dropped at once
 * keeps growing its reconnect delay instead of reconnecting every 100 ms, a
 * stream that stayed up long enough starts the backoff over, and the resume
 * revision moves only at the last fragment of a revision.
 */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { test } from 'node:test';
import type { Etcd3 } from 'etcd3';
import { EtcdWatchStream } from '../src/lease/etcd/watch-stream';
import { silentLogger } from '../src/logging';
import { Backoff } from '../src/util/backoff';
import { eventually } from './helpers/eventually';

/** A gRPC watch stream that answers a create request with `script`'s responses, then breaks. */
function fakeClient(script: (n: number) => Array<Record<string, unknown>>): { client: Etcd3; sessions: () => number; starts: string[] } {
  let n = 0;
  const starts: string[] = [];
  const header = (revision: number) => ({ revision: String(revision), cluster_id: '7' });
  const client = {
    watchClient: {
      watch: async () => {
        const stream = new EventEmitter() as EventEmitter & { write(m: Record<string, unknown>): void; cancel(): void };
        const session = ++n;
        stream.write = (m) => {
          const create = m['create_request'] as { start_revision: string } | undefined;
          if (!create) return;
          starts.push(create.start_revision);
          setImmediate(() => {
            for (const res of script(session)) stream.emit('data', { created: false, canceled: false, compact_revision: '0', events: [], fragment: false, ...res, header: header(Number(res['revision'] ?? 5)) });
            stream.emit('error', new Error('dropped'));
          });
        };
        stream.cancel = () => undefined;
        return stream;
      },
    },
  } as unknown as Etcd3;
  return { client, sessions: () => n, starts };
}

class CountingBackoff extends Backoff {
  resets = 0;
  nexts = 0;
  constructor() {
    super(1, 1000, 2, 0);
  }
  override next(): number {
    this.nexts++;
    super.next();
    return 1;
  }
  override reset(): void {
    this.resets++;
    super.reset();
  }
}

const handlers = { onEvents: () => undefined, onCompacted: () => undefined, onReset: () => undefined };

test('a stream created and dropped at once does not reset the reconnect backoff', async () => {
  const { client, sessions } = fakeClient(() => [{ created: true }]);
  const backoff = new CountingBackoff();
  const w = new EtcdWatchStream(client, { key: Buffer.from('/k/'), startRevision: 5n, backoff, confirmHeader: async () => ({ revision: 1n, clusterId: '7' }) }, handlers, silentLogger);
  w.start();
  await eventually(() => sessions(), (n) => n >= 6, 5000, 'reconnects');
  await w.stop();
  assert.equal(backoff.resets, 0, 'created-then-dropped streams never reset the backoff');
  assert.ok(backoff.nexts >= 5);
});

test('a stream that stayed up long enough starts the backoff over', async () => {
  const { client, sessions } = fakeClient(() => [{ created: true }]);
  const backoff = new CountingBackoff();
  const w = new EtcdWatchStream(client, { key: Buffer.from('/k/'), startRevision: 5n, backoff, healthyResetMs: 0, confirmHeader: async () => ({ revision: 1n, clusterId: '7' }) }, handlers, silentLogger);
  w.start();
  await eventually(() => sessions(), (n) => n >= 3, 5000, 'reconnects');
  await w.stop();
  assert.ok(backoff.resets >= 2);
});

test('the resume revision moves only at the last fragment of a revision', async () => {
  // Session 1: two fragments of revision 9 arrive, the stream breaks before the last.
  const { client, sessions, starts } = fakeClient((n) => (n === 1 ? [{ created: true }, { revision: 9, fragment: true, events: [] }] : [{ created: true }, { revision: 9, fragment: false, events: [] }]));
  const w = new EtcdWatchStream(client, { key: Buffer.from('/k/'), startRevision: 5n, backoff: new CountingBackoff(), confirmHeader: async () => ({ revision: 9n, clusterId: '7' }) }, handlers, silentLogger);
  w.start();
  await eventually(() => sessions(), (n) => n >= 3, 5000, 'reconnects');
  await w.stop();
  assert.deepEqual(starts.slice(0, 3), ['5', '5', '10'], 'resumed at 5 after a broken fragment group, at 10 after a whole one');
});
