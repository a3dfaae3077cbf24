/**
 * The ipip backend with the real kernel. This kernel has no ipip module
 * (CONFIG_NET_IPIP is not set): here flanneld must refuse ipip at start with
 * the fix, before it takes a lease, and that part runs everywhere; where the
 * module exists, two nodes carry pod traffic over flannel.ipip, and where it
 * does not, that part says so in the output. The plan itself is tested on the
 * in-memory kernel (test/ipip-extension-logic.test.ts).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { FlannelCluster } from '../lab/flannel-cluster';
import { Lab } from '../lab/netns';
import { allPodsPing, ipj, type Json } from './helpers/cluster-probes';
import { type LinkTypeProbe, needsModule, probeLinkType } from './helpers/kernel-module';
import { ROOT_SUITE } from './helpers/root';

describe('ipip with the real kernel', ROOT_SUITE, () => {
  let lab: Lab;
  let c: FlannelCluster;
  let module: LinkTypeProbe;

  before(async () => {
    lab = new Lab();
    module = await probeLinkType(lab, 'ipip', ['local', '127.0.0.1']);
    c = await FlannelCluster.create(lab, { nodes: 2, config: { Network: '10.34.0.0/16', Backend: { Type: 'ipip' } } });
  });
  after(async () => {
    await lab?.cleanup();
  });

  test('without the module: refused at start naming the fix, no lease taken; with it: flannel.ipip as upstream makes it', { timeout: 60_000 }, async () => {
    const n = c.startNode(1);
    if (!module.ok) {
      assert.equal(await n.waitExit(20_000), 1);
      assert.ok(n.messages().some((m) => /^Error registering network: the ipip backend needs the kernel's ipip module \(CONFIG_NET_IPIP\).*modprobe ipip/.test(m)), n.messages().join('\n'));
      assert.equal((await c.etcdctl('get', '--prefix', '--keys-only', `${c.prefix}/subnets/`)).trim(), '', 'no lease taken');
      return;
    }
    await c.waitSubnet(1);
    const [link] = await ipj(lab, c.topology.nodes[0]!.ns, 'ip', '-d', 'link', 'show', 'flannel.ipip');
    const info = ((link!['linkinfo'] as Json)['info_data'] ?? {}) as Json;
    assert.deepEqual([(link!['linkinfo'] as Json)['info_kind'], info['local'], link!['mtu']], ['ipip', c.topology.nodes[0]!.underlayAddress, 1480]);
  });

  test('two nodes carry pod traffic over flannel.ipip', { timeout: 60_000 }, async (t) => {
    if (!needsModule(t, module)) return;
    c.startNode(2);
    for (const i of [1, 2]) await c.waitSubnet(i);
    for (const i of [1, 2]) await c.attachPod(i);
    await allPodsPing(lab, c, [1, 2]);
  });
});
