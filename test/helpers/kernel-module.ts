/**
 * Tests of features that need a kernel module this machine may lack (the
 * wireguard and ipip link types): probe once, and where the module is
 * missing skip the part that needs it, saying so plainly in the output.
 */
import type { TestContext } from 'node:test';
import type { Lab } from '../../lab/netns';

export interface LinkTypeProbe {
  ok: boolean;
  /** The kernel's answer: "created", or `ip`'s error. */
  answer: string;
  type: string;
}

/** Whether this kernel makes a link of `type` (tried in a namespace of the lab's own). */
export async function probeLinkType(lab: Lab, type: string, args: readonly string[] = []): Promise<LinkTypeProbe> {
  const ns = await lab.addNamespace(`k${type.slice(0, 2)}`);
  return lab.exec(ns, 'ip', ['link', 'add', 'probe0', 'type', type, ...args]).then(
    () => ({ ok: true, answer: 'created', type }),
    (e: { stderr?: string }) => ({ ok: false, answer: String(e.stderr ?? e).trim(), type }),
  );
}

/** Marks `t` skipped with a line in the output when the module is missing; true when the test may go on. */
export function needsModule(t: TestContext, probe: LinkTypeProbe): boolean {
  if (probe.ok) return true;
  const reason = `NOT RUN on this machine: the kernel has no ${probe.type} module (ip link add ... type ${probe.type}: ${probe.answer}); it runs wherever the module exists`;
  process.stdout.write(`# ${reason}\n`);
  t.skip(reason);
  return false;
}
