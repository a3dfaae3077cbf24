/**
 * The wireguard backend's kernel implementation. The kernel's device needs
 * the WireGuard module (drivers/net/wireguard); where it is missing (this
 * development machine, and the legacy kernels the udp backend exists for)
 * a forced `Implementation: kernel` must be refused with the fix named, and
 * that part runs everywhere. Where the module exists, two nodes run on the
 * kernel's device; where it does not, that part says so in the output.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { FlannelCluster } from '../lab/flannel-cluster';
import { Lab } from '../lab/netns';
import { ipj } from './helpers/cluster-probes';
import { allPodsPing } from './helpers/cluster-probes';
import { eventually } from './helpers/eventually';
import { type LinkTypeProbe, needsModule, probeLinkType } from './helpers/kernel-module';
import { ROOT_SUITE } from './helpers/root';

const NODE_DIRS = ['/var/run/wireguard', '/run/flannel'];

describe('wireguard: the kernel implementation', ROOT_SUITE, () => {
  let lab: Lab;
  let c: FlannelCluster;
  let module: LinkTypeProbe;
  const node = (i: number) => c.topology.nodes[i - 1]!;

  before(async () => {
    lab = new Lab();
    module = await probeLinkType(lab, 'wireguard');
    c = await FlannelCluster.create(lab, { nodes: 2, config: { Network: '10.25.0.0/16', Backend: { Type: 'wireguard', Implementation: 'kernel' } } });
    for (const i of [1, 2]) await lab.isolateMounts(node(i).ns, NODE_DIRS);
  });
  after(async () => {
    await lab?.cleanup();
  });

  test('forced on a kernel without the module: refused, naming the fixes; forced on one with it: the kernel device', { timeout: 60_000 }, async (t) => {
    const n = c.startNode(1);
    if (!module.ok) {
      assert.equal(await n.waitExit(20_000), 1);
      const msgs = n.messages();
      assert.ok(
        msgs.some((m) => /^Error registering network: Implementation kernel: this kernel has no WireGuard module \(creating flannel-wg of type wireguard: .*ENOTSUP\)\. Load it \(modprobe wireguard.*wireguard-dkms.*"Implementation" to "auto" or "userspace"/.test(m)),
        msgs.join('\n'),
      );
      assert.deepEqual(await ipj(lab, node(1).ns, 'ip', 'link', 'show', 'flannel-wg').catch(() => []), [], 'nothing left behind');
      return;
    }
    await c.waitSubnet(1);
    const [link] = await ipj(lab, node(1).ns, 'ip', '-d', 'link', 'show', 'flannel-wg');
    t.diagnostic(`kernel device: ${JSON.stringify((link!['linkinfo'] as Record<string, unknown>)['info_kind'])}`);
    assert.equal((link!['linkinfo'] as Record<string, unknown>)['info_kind'], 'wireguard');
    assert.ok(n.messages().includes('WireGuard: the kernel module'));
  });

  test('two nodes on the kernel device carry pod traffic and keep the device across a restart', { timeout: 60_000 }, async (t) => {
    if (!needsModule(t, module)) return;
    c.startNode(2);
    for (const i of [1, 2]) await c.waitSubnet(i);
    for (const i of [1, 2]) await c.attachPod(i);
    await allPodsPing(lab, c, [1, 2]);
    assert.equal(await c.nodes[0]!.stop('SIGTERM'), 0);
    await allPodsPing(lab, c, [1, 2]);
    c.startNode(1);
    await eventually(() => c.nodes[0]!.messages(), (m) => m.includes("kept the kernel's WireGuard device flannel-wg"), 15_000, 'the device kept');
    await allPodsPing(lab, c, [1, 2]);
  });
});
