/**
 * Tests that need root (namespaces, TUN devices, etcd, iptables) call
 * needsRoot(t). CI runs as root, so there they always run; on a machine
 * without root they are skipped with the reason printed, never silently.
 */
import type { TestContext } from 'node:test';

export const IS_ROOT = typeof process.getuid === 'function' && process.getuid() === 0;

/** Returns false (and marks the test skipped, saying why) when not root. */
export function needsRoot(t: TestContext): boolean {
  if (IS_ROOT) return true;
  const reason = 'SKIPPED: needs root (network namespaces / TUN); CI runs as root';
  process.stderr.write(`${t.name}: ${reason}\n`);
  t.skip(reason);
  return false;
}

/** For describe()-level hooks: the options object that skips a suite without root. */
export const ROOT_SUITE = IS_ROOT ? {} : { skip: 'SKIPPED: needs root (network namespaces / TUN); CI runs as root' };
