/**
 * No import runs up a layer (docs/architecture.md, "Layers"): the layers of src/, from
 * the bottom, are util/ (and the logger interface), addon/ (the native
 * loader), then forwarder/, routing/, lease/ and traffic/, then backends/,
 * then daemon/, then cli/. Of the backends only backends/udp reaches the
 * datapath (forwarder/); routing never does. Checked on the sources, so a
 * stray import fails here rather than in review.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';

const SRC = path.resolve(__dirname, '..', '..', 'src');

/** What each folder of src/ may import (besides itself and the root files log.ts, version.ts). */
const ALLOWED: Record<string, readonly string[]> = {
  util: [],
  addon: ['util'],
  forwarder: ['util', 'addon'],
  routing: ['util', 'addon'],
  lease: ['util'],
  traffic: ['util', 'routing'],
  backends: ['util', 'lease', 'routing', 'forwarder'],
  daemon: ['util', 'addon', 'lease', 'routing', 'traffic', 'backends', 'forwarder'],
  cli: ['util', 'addon', 'lease', 'routing', 'traffic', 'backends', 'forwarder', 'daemon'],
};
const ROOT_FILES = new Set(['log', 'logging', 'version']);

function sources(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : []));
}

function imports(file: string): string[] {
  const text = fs.readFileSync(file, 'utf8');
  return [...text.matchAll(/(?:from|import)\s*\(?\s*'(\.[^']+)'/g)].map((m) => path.resolve(path.dirname(file), m[1]!));
}

/** The top folder of src/ a path is in, or the root file's name. */
function layerOf(abs: string): string {
  const rel = path.relative(SRC, abs).split(path.sep);
  return rel.length === 1 ? rel[0]!.replace(/\.ts$/, '') : rel[0]!;
}

test('no import in src/ runs up a layer', () => {
  const violations: string[] = [];
  for (const file of sources(SRC)) {
    const from = layerOf(file);
    if (ROOT_FILES.has(from)) continue;
    const allowed = ALLOWED[from];
    assert.ok(allowed, `src/${from} has no place in the layer table: add it`);
    for (const target of imports(file)) {
      const to = layerOf(target);
      if (to === from || ROOT_FILES.has(to) || allowed.includes(to)) continue;
      violations.push(`${path.relative(SRC, file)} imports ${path.relative(SRC, target)}`);
    }
  }
  assert.deepEqual(violations, []);
});

test('of the backends only backends/udp imports the datapath; routing never does', () => {
  const violations: string[] = [];
  for (const file of sources(SRC)) {
    const rel = path.relative(SRC, file);
    const udp = rel.startsWith(`backends${path.sep}udp${path.sep}`);
    for (const target of imports(file)) {
      if (layerOf(target) !== 'forwarder') continue;
      if ((rel.startsWith(`backends${path.sep}`) && !udp) || rel.startsWith(`routing${path.sep}`)) violations.push(`${rel} imports ${path.relative(SRC, target)}`);
    }
  }
  assert.deepEqual(violations, []);
});

test('the layer check sees imports (it is not vacuous)', () => {
  const kernelNetwork = imports(path.join(SRC, 'backends', 'kernel-network.ts')).map(layerOf);
  assert.ok(kernelNetwork.includes('routing') && kernelNetwork.includes('lease'), kernelNetwork.join(','));
});
