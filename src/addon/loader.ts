/**
 * The one loader of the native addon, flannel_native.node (native/addon/).
 * Each feature takes its own face of it, where its users live:
 * src/forwarder/native-datapath.ts (the udp datapath),
 * src/routing/netlink-monitor.ts (rtnetlink notifications) and
 * src/daemon/sd-notify.ts (systemd notifications).
 *
 * The file is looked for in explicit candidate places (build/Release, then
 * build/Debug of this package); the error says what is missing and how to
 * build it. Nothing here reads the environment: a test build of the addon
 * (with its fault injection) is chosen only by test code, through
 * useAddonFile() (test/bin/flanneld-test.ts).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { NamedError } from '../util/errors';

/** Thrown when the addon cannot be found or does not match this code. */
export class NativeAddonLoadError extends NamedError {}

export const ADDON_FILE = 'flannel_native.node';

/** The package root: the nearest folder up from here with package.json and binding.gyp. */
export function packageRoot(): string {
  let dir = __dirname;
  for (let i = 0; i < 6; i++) {
    if (fs.existsSync(path.join(dir, 'package.json')) && fs.existsSync(path.join(dir, 'binding.gyp'))) return dir;
    dir = path.dirname(dir);
  }
  return path.resolve(__dirname, '..', '..', '..');
}

let chosen: string | undefined;
let cached: { file: string; module: Record<string, unknown> } | undefined;

/** Test code only: load this file instead of the release addon (before anything loads it). */
export function useAddonFile(file: string): void {
  if (cached && cached.file !== file) throw new NativeAddonLoadError(`the addon ${cached.file} is already loaded; useAddonFile(${file}) must come first`);
  chosen = file;
}

/** The addon module (loaded once), and the file it came from. */
export function loadAddon(): { file: string; module: Record<string, unknown> } {
  if (cached) return cached;
  const root = packageRoot();
  const candidates = chosen ? [chosen] : [path.join(root, 'build', 'Release', ADDON_FILE), path.join(root, 'build', 'Debug', ADDON_FILE)];
  const found = candidates.find((p) => fs.existsSync(p));
  if (!found) {
    throw new NativeAddonLoadError(
      `the flannel-ts native addon (${ADDON_FILE}) was not found; tried: ${candidates.join(', ')}. ` +
        'Build it with `npm ci` or `npm run build:native` (needs g++, make and python3).',
    );
  }
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  cached = { file: found, module: require(found) as Record<string, unknown> };
  return cached;
}
