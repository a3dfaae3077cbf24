/**
 * The release tarball (npm run release) as an operator installs it: extracted
 * into a clean folder, run with the compilers gone from PATH (cc, g++, make,
 * python3: nothing can be rebuilt), `bin/flanneld -version` answers and a
 * two-node udp cluster from it carries pod traffic; the systemd unit,
 * pointed into the extracted folder, passes `systemd-analyze verify`.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { FlannelCluster } from '../lab/flannel-cluster';
import { Lab } from '../lab/netns';
import { ping } from '../lab/topology';
import { ROOT_SUITE } from './helpers/root';

const ROOT = path.resolve(__dirname, '..', '..');
const COMPILERS = new Set(['cc', 'c++', 'gcc', 'g++', 'clang', 'clang++', 'make', 'python3', 'python', 'node-gyp']);

/** A PATH with every executable of the current one but the compilers, as symlinks in `dir`. */
function pathWithoutCompilers(dir: string): string {
  fs.mkdirSync(dir, { recursive: true });
  for (const d of (process.env['PATH'] ?? '').split(':')) {
    if (!d || !fs.existsSync(d)) continue;
    for (const name of fs.readdirSync(d)) {
      if (COMPILERS.has(name) || /^(gcc|g\+\+|cc|clang|python3)[-.\d]/.test(name) || fs.existsSync(path.join(dir, name))) continue;
      try {
        fs.accessSync(path.join(d, name), fs.constants.X_OK);
        fs.symlinkSync(path.join(d, name), path.join(dir, name));
      } catch {
        // not an executable
      }
    }
  }
  return dir;
}

describe('the release tarball, installed without compilers', ROOT_SUITE, () => {
  let work: string;
  let flanneld: string;
  let env: NodeJS.ProcessEnv;

  before(() => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'flannel-ts-release-test-'));
    const tarball = execFileSync(process.execPath, [path.join(ROOT, 'scripts', 'release.mjs'), '--out', path.join(work, 'dist')], { encoding: 'utf8' }).trim();
    assert.match(path.basename(tarball), /^flannel-ts-\d+\.\d+\.\d+-linux-[a-z0-9]+\.tar\.gz$/);
    const install = path.join(work, 'opt');
    fs.mkdirSync(install);
    execFileSync('tar', ['-xzf', tarball, '-C', install]);
    flanneld = path.join(install, 'flannel-ts', 'bin', 'flanneld');
    env = { ...process.env, PATH: pathWithoutCompilers(path.join(work, 'path')) };
  });
  after(() => {
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  test('nothing to build: no compiler on PATH, no source, and -version answers', () => {
    for (const tool of ['cc', 'g++', 'make', 'python3']) {
      assert.notEqual(spawnSync('sh', ['-c', `command -v ${tool}`], { env }).status, 0, `${tool} is gone from PATH`);
    }
    const top = path.dirname(path.dirname(flanneld));
    assert.ok(!fs.existsSync(path.join(top, 'src')) && !fs.existsSync(path.join(top, 'native')), 'no sources shipped');
    assert.ok(fs.existsSync(path.join(top, 'build', 'Release', 'flannel_native.node')), 'the prebuilt addon');
    assert.ok(fs.existsSync(path.join(top, 'build', 'Release', 'udp_fastpath.bpf.o')), 'the kernel fast path');
    assert.ok(!fs.existsSync(path.join(top, 'node_modules', 'typescript')), 'no dev dependencies');
    const r = spawnSync(process.execPath, [flanneld, '-version'], { env, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const version = (JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
    assert.match(r.stderr.trim(), new RegExp(`^v?${version.replace(/\./g, '\\.')}`));
  });

  test('a two-node udp cluster from the extracted folder carries pod traffic', { timeout: 120_000 }, async () => {
    const lab = new Lab();
    try {
      const cluster = await FlannelCluster.create(lab, { nodes: 2, flanneld, config: { Network: '10.5.0.0/16', Backend: { Type: 'udp' } } });
      for (const i of [1, 2]) cluster.startNode(i, [], { PATH: env['PATH'] });
      for (const i of [1, 2]) await cluster.waitSubnet(i);
      for (const i of [1, 2]) await cluster.attachPod(i);
      const [a, b] = cluster.topology.nodes;
      assert.ok(await ping(lab, a!.pod.ns, b!.pod.address, 3), 'pod 1 -> pod 2');
    } finally {
      await lab.cleanup();
    }
  });

  test('the systemd unit, pointed into the extracted folder, passes systemd-analyze verify', () => {
    const top = path.dirname(path.dirname(flanneld));
    const unit = path.join(work, 'flanneld.service');
    fs.writeFileSync(unit, fs.readFileSync(path.join(top, 'dist', 'flanneld.service'), 'utf8').replaceAll('/opt/flannel-ts', top));
    const r = spawnSync('systemd-analyze', ['verify', '--man=no', unit], { encoding: 'utf8' });
    assert.equal(r.error, undefined, 'systemd-analyze runs (scripts/bootstrap installs systemd)');
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr.trim(), '', 'no warning');
  });
});
