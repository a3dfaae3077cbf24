/** Probes of a running test cluster shared by the end-to-end tests: `ip -j` output, pod pings. */
import assert from 'node:assert/strict';
import type { FlanneldNodes } from '../../lab/flannel-cluster';
import type { Lab } from '../../lab/netns';
import { ping } from '../../lab/topology';
import { eventually } from './eventually';

export type Json = Record<string, unknown>;

/** `<cmd> -j <args>` in `ns`, parsed (an empty answer is an empty list). */
export async function ipj(lab: Lab, ns: string, cmd: string, ...args: string[]): Promise<Json[]> {
  const out = (await lab.exec(ns, cmd, ['-j', ...args])).stdout.trim();
  return out === '' ? [] : (JSON.parse(out) as Json[]);
}

/** Every pod of `nodes` pings every other one over `family` (each pair given 10 s). */
export async function allPodsPing(lab: Lab, cluster: FlanneldNodes, nodes: number[], family: 4 | 6 = 4): Promise<void> {
  for (const a of nodes) {
    for (const b of nodes) {
      if (a === b) continue;
      const pa = cluster.topology.nodes[a - 1]!.pod;
      const pb = cluster.topology.nodes[b - 1]!.pod;
      const to = family === 4 ? pb.address : pb.address6;
      assert.ok(to !== undefined, `pod${b} has no IPv6 address`);
      assert.ok(await eventually(() => ping(lab, pa.ns, to, 1), (ok) => ok, 10_000, `pod${a} -> pod${b} (IPv${family})`));
    }
  }
}
