/**
 * The test build of the native addon (binding.gyp target flannel_native_test,
 * compiled with FLANNEL_TEST_FAULTS: native/linux/test_faults_linux.h), for
 * tests that force the kernel's failures: the test launcher
 * (test/bin/flanneld-test.ts) and the static node (lab/bin/static-udp-node.ts)
 * call useTestAddon() before anything loads the addon. The shipped flanneld
 * never loads it: nothing in src/ reads an environment variable or flag for it.
 */
import * as path from 'node:path';
import { loadAddon, packageRoot, useAddonFile } from '../src/addon/loader';

export const TEST_ADDON_FILE = path.join(packageRoot(), 'build', 'Release', 'flannel_native_test.node');

/** The fault names the test build knows (native/addon/datapath_wrapper.cc, ParseTestFaults). */
export const TEST_FAULTS = ['tun-tso', 'tun-uso', 'udp-gso-send', 'udp-gro', 'tun-gro-write', 'stall-ingress', 'tun-partial-write'] as const;

/** The environment variable the test launcher reads (only the launcher: flanneld itself never does). */
export const TEST_FAULTS_ENV = 'FLANNEL_TS_TEST_FAULTS';

export function parseTestFaults(value: string | undefined): string[] {
  return (value ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

/** Loads the test build, and arms `faults` on every datapath this process starts. */
export function useTestAddon(faults: readonly string[]): void {
  useAddonFile(TEST_ADDON_FILE);
  const { module } = loadAddon();
  const Base = module['Datapath'] as new () => { start(options: object): void };
  module['Datapath'] = class extends Base {
    override start(options: object): void {
      super.start({ ...options, testFaults: [...faults] });
    }
  };
}
