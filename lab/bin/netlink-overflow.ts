/**
 * Run inside a test's namespace: makes the kernel drop rtnetlink
 * notifications (a tiny receive buffer, the event loop blocked while 2,000
 * routes are added) and prints what the Reconciler saw as one JSON line:
 * {"overflows":N,"runs":N,"reasons":[...]}.
 */
import { execFileSync } from 'node:child_process';
import { RecordingLogger } from '../../src/logging';
import { NetlinkEvents } from '../../src/routing/netlink-events';
import { Reconciler } from '../../src/routing/reconciler';

const dev = process.argv[2];
if (!dev) {
  process.stderr.write('usage: netlink-overflow <device>\n');
  process.exit(2);
}
const log = new RecordingLogger();
const events = new NetlinkEvents(log, 4096);
const reasons: string[] = [];
const reconciler = new Reconciler({ name: 'overflow test', intervalMs: 3_600_000, relevant: () => false }, async () => [], events, log);
reconciler.start();
// Only the overflow may trigger a run here (relevant() rejects every event).
events.on('overflow', () => reasons.push('overflow'));
let batch = '';
for (let i = 0; i < 2000; i++) batch += `route add 10.77.${i >> 8}.${i & 255}/32 dev ${dev}\n`;
execFileSync('ip', ['-batch', '-'], { input: batch }); // blocks the event loop: the socket is not read
setTimeout(() => {
  process.stdout.write(JSON.stringify({ overflows: (events as NetlinkEvents).overflows, runs: reconciler.stats.runs, reasons, logs: log.records.map((r) => r.msg) }) + '\n');
  void reconciler.stop().then(() => {
    events.close();
    process.exit(0);
  });
}, 500);
