/**
 * The operator's documents say what the code and the last benchmark say:
 * the README's headline is RESULTS.md's, every flag is in the flags table
 * with its default and variable, every relative link and anchor resolves,
 * the layout table names the folders that exist, and no internal shorthand
 * (issue letters, notes meant for the developers) reaches a reader.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import {
  currentReadmeHeadline,
  HEADLINE_BEGIN,
  HEADLINE_END,
  HeadlineError,
  parseResultsHeadline,
  readmeHeadline,
  withReadmeHeadline,
} from '../bench/readme-headline';
import { envName, FLANNEL_FLAGS } from '../src/cli/flags';
import { NodeMetrics } from '../src/daemon/metrics';
import { COUNTER_NAMES } from '../src/forwarder/native-datapath';
import { KlogTextLogger } from '../src/logging';
import { UDP6_ENCAP_OVERHEAD, UDP_ENCAP_OVERHEAD } from '../src/routing/tun-device';
import { VXLAN6_OVERHEAD, VXLAN_OVERHEAD } from '../src/backends/vxlan/config';
import { IPIP_OVERHEAD } from '../src/backends/ipip/ipip-backend';
import { WIREGUARD_OVERHEAD } from '../src/backends/wireguard/config';

const ROOT = path.resolve(__dirname, '..', '..');
const read = (rel: string) => fs.readFileSync(path.join(ROOT, rel), 'utf8');
const DOCS = ['README.md', 'CHANGELOG.md', 'bench/RESULTS.md', ...fs.readdirSync(path.join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to '-'. */
function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[`*_]/g, '')
    .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/[^\p{L}\p{M}\p{N}\s-]/gu, '')
    .replace(/\s/g, '-');
}

function anchors(markdown: string): Set<string> {
  const out = new Set<string>();
  let inCode = false;
  for (const line of markdown.split('\n')) {
    if (line.startsWith('```')) inCode = !inCode;
    const m = !inCode && /^#{1,6}\s+(.*)$/.exec(line);
    if (m) out.add(slug(m[1]!));
  }
  return out;
}

describe('README', () => {
  const readme = read('README.md');

  test('at most 200 lines', () => {
    const lines = readme.split('\n').length;
    assert.ok(lines <= 200, `README.md has ${lines} lines`);
  });

  test('the performance headline is the one bench/RESULTS.md gives (npm run bench rewrites both)', () => {
    const expected = readmeHeadline(parseResultsHeadline(read('bench/RESULTS.md')));
    assert.equal(currentReadmeHeadline(readme), expected);
    assert.match(expected, /TCP, one stream:\*\* [\d.]+ Gbit\/s, \*\*[\d.]+×\*\* the upstream-style/);
  });

  test('the two fresh-machine commands are the demo and the tests, and .ci/run runs the second', () => {
    assert.ok(readme.includes('scripts/bootstrap && npm run demo'));
    assert.ok(readme.includes('scripts/bootstrap && npm test'));
    assert.match(read('.ci/run'), /^scripts\/bootstrap && npm test$/m);
  });
});

describe('the headline generator', () => {
  const results = read('bench/RESULTS.md');

  test('reads medians and ratios from the Headline table', () => {
    const facts = parseResultsHeadline(results);
    const tcp1 = facts.rows.get('TCP 1 stream (Gbit/s)');
    assert.ok(tcp1);
    assert.match(tcp1.udp, /^[\d.]+$/);
    assert.match(tcp1.udpVsUpstream, /^[\d.]+×$/);
    assert.match(facts.date, /^\d{4}-\d\d-\d\dT/);
  });

  test('a run without the upstream mode is refused with the fix, not half a headline', () => {
    const noUpstream = results.replace(/\| upstream \| udp \/ upstream \|/, '| |');
    assert.throws(() => parseResultsHeadline(noUpstream), (e: unknown) => e instanceof HeadlineError && /no "upstream" column.*npm run bench/.test((e as Error).message));
  });

  test('replaces only the block between the markers; a README without them is an error', () => {
    const block = `${HEADLINE_BEGIN}\nnew\n${HEADLINE_END}`;
    assert.equal(withReadmeHeadline(`a\n${HEADLINE_BEGIN}\nold\n${HEADLINE_END}\nb`, block), `a\n${block}\nb`);
    assert.throws(() => withReadmeHeadline('no markers', block), HeadlineError);
  });
});

describe('docs/operations.md', () => {
  const ops = read('docs/operations.md');
  const rows = new Map(
    [...ops.matchAll(/^\| `-([a-z0-9_-]+)` \| ([^|]+) \| ([^|]+) \| (?:`([A-Z0-9_]+)`|—) \|/gm)].map((m) => [m[1]!, { kind: m[2]!.trim(), def: m[3]!.trim(), env: m[4] }]),
  );

  test('the flags table lists every flag, with its default and FLANNELD_* variable (none for -version, read before the environment), and no other', () => {
    assert.deepEqual([...rows.keys()].sort(), FLANNEL_FLAGS.map((f) => f.name).sort());
    for (const f of FLANNEL_FLAGS) {
      const row = rows.get(f.name)!;
      const def = Array.isArray(f.default) ? '(none)' : f.default === '' ? '""' : `\`${String(f.default)}\``;
      assert.equal(row.def, def, `-${f.name}: default`);
      assert.equal(row.env, f.name === 'version' ? undefined : envName(f.name), `-${f.name}: variable`);
    }
  });
});

describe('links and words', () => {
  test('every relative link resolves to a file, and every #anchor to a heading', () => {
    const broken: string[] = [];
    for (const doc of DOCS) {
      const text = read(doc).replace(/```[\s\S]*?```/g, '');
      for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        const target = m[1]!;
        if (/^[a-z]+:/.test(target)) continue;
        const [file, anchor] = target.split('#') as [string, string | undefined];
        const resolved = file === '' ? path.join(ROOT, doc) : path.resolve(path.dirname(path.join(ROOT, doc)), file);
        if (!fs.existsSync(resolved)) {
          broken.push(`${doc}: ${target} (no such file)`);
          continue;
        }
        if (anchor !== undefined && resolved.endsWith('.md') && !anchors(fs.readFileSync(resolved, 'utf8')).has(anchor)) {
          broken.push(`${doc}: ${target} (no such heading)`);
        }
      }
    }
    assert.deepEqual(broken, []);
  });

  test('no developers\' shorthand in what the project ships', () => {
    const files = execFileSync('git', ['ls-files'], { cwd: ROOT, encoding: 'utf8' })
      .split('\n')
      .filter((f) => /\.(md|ts|cc|h|c|mjs|yml|sh)$|^Dockerfile$|^dist\//.test(f) && f !== 'test/docs.test.ts');
    const banned = [/compat §/i, /PORT NOTE/, /users-and-style/, /datapath-facts/, /shared\/reference/, /\bissues? [A-Z]\b/, /\([A-K]\d\)/];
    const found: string[] = [];
    for (const f of files) {
      if (!fs.existsSync(path.join(ROOT, f))) continue;
      read(f)
        .split('\n')
        .forEach((line, i) => {
          for (const re of banned) if (re.test(line)) found.push(`${f}:${i + 1}: ${line.trim()}`);
        });
    }
    assert.deepEqual(found, []);
  });
});

describe('docs/architecture.md', () => {
  const arch = read('docs/architecture.md');
  const listed = new Set([...arch.matchAll(/^\| ([^|]+) \|/gm)].flatMap((m) => [...m[1]!.matchAll(/`([^`]+)\/`/g)].map((x) => x[1]!)));

  test('the layout table names every folder of the repository, src/ and native/, and only folders that exist', () => {
    const tracked = execFileSync('git', ['ls-files'], { cwd: ROOT, encoding: 'utf8' }).split('\n').filter(Boolean);
    const dirs = new Set<string>();
    for (const f of tracked) {
      const parts = f.split('/');
      if (parts.length > 1) dirs.add(parts[0]!);
      if ((parts[0] === 'src' || parts[0] === 'native') && parts.length > 2) dirs.add(`${parts[0]}/${parts[1]}`);
    }
    for (const d of ['src', 'native']) dirs.delete(d);
    const missing = [...dirs].filter((d) => !listed.has(d)).sort();
    assert.deepEqual(missing, [], 'folders the layout table does not name');
    for (const d of listed) assert.ok(fs.existsSync(path.join(ROOT, d)), `the layout table names ${d}/, which does not exist`);
  });

  test('the picture exists and is referenced', () => {
    assert.ok(arch.includes('](architecture.svg)'));
    assert.match(read('docs/architecture.svg'), /^<svg [^>]*viewBox/);
  });
});

describe('what the documents say the code does', () => {
  const ops = read('docs/operations.md');
  const datapath = read('docs/datapath.md');

  test("the log's modules listed in operations.md are the ones the code logs under", () => {
    const sources = execFileSync('git', ['ls-files', 'src'], { cwd: ROOT, encoding: 'utf8' }).split('\n').filter((f) => f.endsWith('.ts') && fs.existsSync(path.join(ROOT, f)));
    const used = new Set(['flanneld']);
    for (const f of sources) for (const m of read(f).matchAll(/child\(\{ (?:component|backend): '([a-z0-9-]+)'/g)) used.add(m[1]!);
    const para = /The modules: ([\s\S]*?)`-log-format=json`/.exec(ops)?.[1] ?? '';
    const listed = new Set([...para.matchAll(/`([a-z0-9-]+)`/g)].map((m) => m[1]!));
    assert.deepEqual([...listed].sort(), [...used].sort());
  });

  test("the sample 'flanneld is running' line is what the text logger writes for the daemon's call", () => {
    const daemon = read('src/daemon/daemon.ts');
    assert.match(daemon, /log\.info\(\{ subnet: leaseKey\(bn\.lease\), backend: this\.status\.backendType \}, 'flanneld is running'\)/, 'the daemon logs it from its root logger with subnet and backend');
    const lines: string[] = [];
    new KlogTextLogger(false, (l) => lines.push(l)).info({ subnet: '10.5.72.0/24', backend: 'udp' }, 'flanneld is running');
    const sample = /^I\d{4} [\d:.]+ +\d+ .*flanneld is running.*$/m.exec(ops)?.[0];
    assert.ok(sample, 'operations.md shows the line');
    const strip = (l: string) => l.trim().replace(/^I\d{4} [\d:.]+ +\d+ /, '');
    assert.equal(strip(sample), strip(lines[0]!));
  });

  test('every flanneld_* metric the documents name is one /metrics serves', async () => {
    const served = new Set(((await new NodeMetrics(async () => ({}) as never).registry.getMetricsAsJSON()) as Array<{ name: string }>).map((m) => m.name));
    const named = new Set<string>();
    for (const doc of DOCS) for (const m of read(doc).matchAll(/\b(flanneld_[a-z0-9_]+)/g)) named.add(m[1]!);
    assert.deepEqual([...named].filter((n) => !served.has(n)).sort(), []);
  });

  test("datapath.md's drop reasons are the datapath's drop counters, per direction", () => {
    for (const direction of ['egress', 'ingress'] as const) {
      const item = new RegExp(`^- ${direction} \\(.*?\\): ([\\s\\S]*?)(?=\\n- |\\n\\n)`, 'm').exec(datapath)?.[1] ?? '';
      const listed = [...item.matchAll(/`([a-z0-9_]+)`/g)].map((m) => m[1]!).sort();
      const counters = COUNTER_NAMES.filter((n) => n.startsWith(`${direction}_drop_`)).map((n) => n.slice(`${direction}_drop_`.length)).sort();
      assert.deepEqual(listed, counters, direction);
    }
  });

  test('the MTU overheads the documents give are the code\'s', () => {
    const troubleshooting = /- \*\*MTU\*\*: ([\s\S]*?)\n- /.exec(ops)?.[1] ?? '';
    const overheads = [UDP_ENCAP_OVERHEAD, UDP6_ENCAP_OVERHEAD, VXLAN_OVERHEAD, VXLAN6_OVERHEAD, WIREGUARD_OVERHEAD, IPIP_OVERHEAD];
    for (const n of overheads) {
      assert.match(troubleshooting, new RegExp(`− ${n}\\b`), `operations.md troubleshooting names − ${n}`);
    }
    const compat = read('docs/compatibility.md');
    for (const n of overheads) assert.match(compat, new RegExp(`− ${n}\\b`), `compatibility.md names − ${n}`);
  });
});
