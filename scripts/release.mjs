#!/usr/bin/env node
// `npm run release [-- --out DIR]`: the release tarball an operator installs
// without compilers: flannel-ts-<version>-linux-<arch>.tar.gz with one top
// folder, flannel-ts/, holding the compiled TypeScript (out/src), the native
// addon built for this architecture, the production dependencies (prebuilt
// binaries included), bin/, dist/ (systemd unit, environment file,
// mk-docker-opts.sh, the DaemonSet), docs/ and the README. Extract it to
// /opt (docs/operations.md) and run /opt/flannel-ts/bin/flanneld.
//
// It packs what `npm ci` built: run that (or `npm run build`) first.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
const args = process.argv.slice(2);
const outIdx = args.indexOf('--out');
const outDir = path.resolve(outIdx >= 0 ? args[outIdx + 1] : path.join(root, 'build', 'release'));
const arch = { x64: 'x64', arm64: 'arm64' }[process.arch] ?? process.arch;
const name = `flannel-ts-${pkg.version}-linux-${arch}.tar.gz`;

const needed = ['out/src/cli/main.js', 'build/Release/flannel_native.node', 'build/Release/udp_fastpath.bpf.o'];
for (const f of needed) {
  if (!fs.existsSync(path.join(root, f))) {
    console.error(`release: ${f} is missing: run \`npm ci\` (or \`npm run build\`) first`);
    process.exit(1);
  }
}

const stage = fs.mkdtempSync(path.join(os.tmpdir(), 'flannel-ts-release-'));
const top = path.join(stage, 'flannel-ts');
const copy = (rel, dest = rel) => fs.cpSync(path.join(root, rel), path.join(top, dest), { recursive: true, dereference: false });
try {
  fs.mkdirSync(top);
  for (const f of ['bin', 'dist', 'docs', 'README.md', 'CHANGELOG.md', 'package.json', 'package-lock.json', 'binding.gyp']) copy(f);
  copy('out/src');
  // Only what compiles from today's sources (out/ may hold files of deleted ones).
  for (const f of fs.readdirSync(path.join(top, 'out', 'src'), { recursive: true })) {
    const rel = String(f);
    if (!/\.js(\.map)?$/.test(rel)) continue;
    if (!fs.existsSync(path.join(root, 'src', rel.replace(/\.js(\.map)?$/, '.ts')))) fs.rmSync(path.join(top, 'out', 'src', rel));
  }
  copy('build/Release/flannel_native.node');
  // The udp backend's kernel fast path, loaded beside the addon ("Datapath": "ebpf").
  copy('build/Release/udp_fastpath.bpf.o');
  copy('node_modules');
  // Production dependencies only; nothing is built (no scripts run).
  execFileSync('npm', ['prune', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--offline'], { cwd: top, stdio: ['ignore', 'ignore', 'inherit'] });
  fs.mkdirSync(outDir, { recursive: true });
  const tarball = path.join(outDir, name);
  execFileSync('tar', ['-czf', tarball, '-C', stage, 'flannel-ts']);
  console.log(tarball);
} finally {
  fs.rmSync(stage, { recursive: true, force: true });
}
