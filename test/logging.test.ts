/**
 * The daemon's log formats: klog text lines (upstream's shape) by default,
 * JSON on request, -v for debug lines, and a bad -log-format refused.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { run } from '../src/cli/main';
import { createLogger, KlogTextLogger, klogLine } from '../src/logging';

test('a klog line: severity, MMDD, time with microseconds, the pid in 7 columns, the module, the message', () => {
  const at = new Date(2026, 11, 1, 21, 8, 5, 123);
  assert.equal(klogLine('info', at, 1, 'daemon', 'flanneld is running'), 'I1201 21:08:05.123000       1 daemon] flanneld is running\n');
  assert.equal(klogLine('warn', at, 31316, 'kube', 'x'), 'W1201 21:08:05.123000   31316 kube] x\n');
  assert.equal(klogLine('error', at, 7, 'flanneld', 'y'), 'E1201 21:08:05.123000       7 flanneld] y\n');
});

test('the text logger names the module from component or backend bindings; debug only with -v', () => {
  const lines: string[] = [];
  const at = new Date(2026, 0, 2, 3, 4, 5, 6);
  const quiet = new KlogTextLogger(false, (l) => lines.push(l), {}, () => at);
  quiet.info({ subnet: '10.5.1.0/24' }, 'a');
  quiet.child({ component: 'kube' }).warn({}, 'b');
  quiet.child({ backend: 'vxlan' }).error({}, 'c\nsecond line');
  quiet.debug({}, 'hidden');
  quiet.info({ n: 3, ok: true, config: { etcd: { prefix: '/x' } } }, 'fields');
  // A call's own `backend` field is a field, not the module (only a child logger's binding names one).
  quiet.info({ subnet: '10.5.72.0/24', backend: 'udp' }, 'flanneld is running');
  new KlogTextLogger(true, (l) => lines.push(l), {}, () => at).debug({}, 'shown');
  const pid = String(process.pid).padStart(7);
  assert.deepEqual(lines, [
    `I0102 03:04:05.006000 ${pid} flanneld] a subnet="10.5.1.0/24"\n`,
    `W0102 03:04:05.006000 ${pid} kube] b\n`,
    `E0102 03:04:05.006000 ${pid} vxlan] c\n    second line\n`,
    `I0102 03:04:05.006000 ${pid} flanneld] fields n=3 ok=true config={"etcd":{"prefix":"/x"}}\n`,
    `I0102 03:04:05.006000 ${pid} flanneld] flanneld is running subnet="10.5.72.0/24" backend="udp"\n`,
    `I0102 03:04:05.006000 ${pid} flanneld] shown\n`,
  ]);
});

test('-log-format=json writes JSON lines; the default is text; another value exits 2 with the usage', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'logfmt-'));
  try {
    for (const [format, check] of [
      ['json', (line: string) => assert.equal((JSON.parse(line) as { msg: string }).msg, 'hello')],
      ['text', (line: string) => assert.match(line, /^I\d{4} \d\d:\d\d:\d\d\.\d{6} +\d+ flanneld\] hello$/)],
    ] as const) {
      const file = path.join(dir, format);
      const fd = fs.openSync(file, 'w');
      createLogger(0, format, fd).info({}, 'hello');
      fs.closeSync(fd);
      check(fs.readFileSync(file, 'utf8').trim());
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  let err = '';
  const code = await run(['-log-format=xml'], { argv0: 'flanneld', env: {}, stderr: (s) => void (err += s), runDaemon: async () => 0 });
  assert.equal(code, 2);
  assert.match(err, /invalid value "xml" for flag -log-format: use text or json/);
});
