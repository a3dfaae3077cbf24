/**
 * The alloc and extension backends end to end: real bin/flanneld in
 * namespaces with real etcd (and the API server stand-in for alloc in kube
 * mode). alloc: the lease, subnet.env, no device and no route. extension:
 * commands that record their arguments, environment and stdin to files; a
 * failing pre-start command; a hanging add command that is killed at its
 * time limit while another lease's command runs.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { FlannelCluster } from '../lab/flannel-cluster';
import { KubeFlannelCluster, kubeNodeName } from '../lab/kube-cluster';
import { Lab } from '../lab/netns';
import { ipj } from './helpers/cluster-probes';
import { eventually } from './helpers/eventually';
import { ROOT_SUITE } from './helpers/root';

async function leaseValue(c: FlannelCluster, subnet: string): Promise<string> {
  return (await c.etcdctl('get', `${c.prefix}/subnets/${subnet.replace('/', '-')}`, '--print-value-only')).trim();
}

/** What flanneld made in a node: links named flannel*, and routes of ours. */
async function flannelState(lab: Lab, ns: string): Promise<{ links: string[]; routes: number }> {
  const links = (await ipj(lab, ns, 'ip', 'link', 'show')).map((l) => String(l['ifname'])).filter((n) => n.startsWith('flannel'));
  const routes = (await ipj(lab, ns, 'ip', 'route', 'show', 'proto', '157')).length;
  return { links, routes };
}

describe('alloc, etcd mode: two nodes', ROOT_SUITE, () => {
  let lab: Lab;
  let c: FlannelCluster;

  before(async () => {
    lab = new Lab();
    c = await FlannelCluster.create(lab, { nodes: 2, config: { Network: '10.31.0.0/16', Backend: { Type: 'alloc' } } });
    for (const i of [1, 2]) c.startNode(i);
    for (const i of [1, 2]) await c.waitSubnet(i);
  });
  after(async () => {
    await lab?.cleanup();
  });

  test("a lease with the PublicIP only, subnet.env with the interface's MTU, no device and no route", async () => {
    for (const i of [1, 2]) {
      const env = c.nodes[i - 1]!.subnetEnv()!;
      assert.equal(env.get('FLANNEL_MTU'), '1500');
      assert.equal(env.get('FLANNEL_NETWORK'), '10.31.0.0/16');
      const subnet = env.get('FLANNEL_SUBNET')!.replace(/\.1\//, '.0/');
      assert.equal(await leaseValue(c, subnet), `{"PublicIP":"${c.topology.nodes[i - 1]!.underlayAddress}","PublicIPv6":null}`);
      const ttl = await c.etcdctl('get', `${c.prefix}/subnets/${subnet.replace('/', '-')}`, '-w', 'json');
      assert.match(ttl, /"lease":\d+/, 'the lease carries an etcd lease (it is renewed, not permanent)');
      assert.deepEqual(await flannelState(lab, c.topology.nodes[i - 1]!.ns), { links: [], routes: 0 });
    }
  });
});

describe('alloc, kube mode: two nodes', ROOT_SUITE, () => {
  let lab: Lab;
  let c: KubeFlannelCluster;

  before(async () => {
    lab = new Lab();
    c = await KubeFlannelCluster.create(lab, { nodes: 2, netConf: { Network: '10.244.0.0/16', EnableNFTables: false, Backend: { Type: 'alloc' } } });
    for (const i of [1, 2]) c.startNode(i);
    for (const i of [1, 2]) await c.waitSubnet(i);
  });
  after(async () => {
    await lab?.cleanup();
  });

  test('subnet.env from the podCIDR; the annotations carry the PublicIP and no backend; no device', async () => {
    const a = (await c.getNode(kubeNodeName(1)))!.metadata.annotations!;
    assert.equal(a['flannel.alpha.coreos.com/public-ip'], c.topology.nodes[0]!.underlayAddress);
    assert.equal(a['flannel.alpha.coreos.com/backend-type'], '');
    assert.equal(c.nodes[0]!.subnetEnv()!.get('FLANNEL_MTU'), '1500');
    assert.deepEqual(await flannelState(lab, c.topology.nodes[0]!.ns), { links: [], routes: 0 });
  });
});

describe('extension, etcd mode: commands around the lease and per peer', ROOT_SUITE, () => {
  let lab: Lab;
  let c: FlannelCluster;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ext-e2e-'));
  const rec = path.join(dir, 'records');
  const script = (name: string, body: string): string => {
    const file = path.join(dir, name);
    fs.writeFileSync(file, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
    return file;
  };
  const records = (prefix: string): string[] =>
    fs
      .readdirSync(rec)
      .filter((f) => f.startsWith(prefix))
      .sort()
      .map((f) => fs.readFileSync(path.join(rec, f), 'utf8'));

  before(async () => {
    fs.mkdirSync(rec);
    const pre = script('pre.sh', 'echo " tag=$NODE_TAG <&> "');
    const post = script('post.sh', `printf '%s|' "$NETWORK" "$SUBNET" "$IPV6SUBNET" "$PUBLIC_IP" "$PUBLIC_IPV6" > ${rec}/post-$NODE_TAG`);
    // add.sh: arguments and stdin to a file of its own; a peer whose data is "hang" makes it hang.
    const add = script('add.sh', `input=$(cat); f=${rec}/add-$NODE_TAG-$(date +%s%N); printf '%s|' "$@" "$input" > $f; [ "$input" != hang ] || sleep 60`);
    const remove = script('remove.sh', `printf '%s|' "$@" "$(cat)" > ${rec}/remove-$NODE_TAG-$(date +%s%N)`);
    lab = new Lab();
    lab.onCleanup(() => fs.rmSync(dir, { recursive: true, force: true }));
    c = await FlannelCluster.create(lab, {
      nodes: 2,
      config: {
        Network: '10.32.0.0/16',
        Backend: { Type: 'extension', PreStartupCommand: pre, PostStartupCommand: post, SubnetAddCommand: `${add} $SUBNET via-\${PUBLIC_IP}`, SubnetRemoveCommand: `${remove} $SUBNET`, CommandTimeoutSeconds: 2 },
      },
    });
    await c.etcdctl('put', '/failing/network/config', JSON.stringify({ Network: '10.33.0.0/16', Backend: { Type: 'extension', PreStartupCommand: script('fail.sh', 'echo boom; exit 3') } }));
    for (const i of [1, 2]) c.startNode(i, [], { NODE_TAG: `n${i}` });
    for (const i of [1, 2]) await c.waitSubnet(i);
  });
  after(async () => {
    await lab?.cleanup();
  });

  const subnetOf = (i: number) => c.nodes[i - 1]!.subnetEnv()!.get('FLANNEL_SUBNET')!.replace(/\.1\//, '.0/');

  test("the pre-start output, trimmed and JSON-encoded as Go does, is the lease's BackendData; PublicIP is the interface's", async () => {
    assert.equal(await leaseValue(c, subnetOf(1)), `{"PublicIP":"${c.topology.nodes[0]!.underlayAddress}","PublicIPv6":null,"BackendType":"extension","BackendData":"tag=n1 \\u003c\\u0026\\u003e"}`);
    assert.equal(c.nodes[0]!.subnetEnv()!.get('FLANNEL_MTU'), '1500');
  });

  test("the post-start command gets upstream's variables", () => {
    assert.deepEqual(records('post-n1'), [`10.32.0.0/16|${subnetOf(1)}|::/0|${c.topology.nodes[0]!.underlayAddress}|<nil>|`]);
  });

  test("each node's add command ran for the other lease: its subnet and PublicIP expanded into the arguments, its data on stdin", async () => {
    await eventually(() => records('add-n1'), (r) => r.length >= 1, 5000, "node 1's add command");
    assert.deepEqual(records('add-n1'), [`${subnetOf(2)}|via-${c.topology.nodes[1]!.underlayAddress}|tag=n2 <&>|`]);
    await eventually(() => records('add-n2'), (r) => r.length >= 1, 5000, "node 2's add command");
  });

  test('a hanging add command is killed at its time limit and logged; meanwhile another lease\'s command runs', { timeout: 30_000 }, async () => {
    const hangLease = '{"PublicIP":"192.168.100.91","PublicIPv6":null,"BackendType":"extension","BackendData":"hang"}';
    await c.etcdctl('put', `${c.prefix}/subnets/10.32.250.0-24`, hangLease);
    const t0 = Date.now();
    await c.etcdctl('put', `${c.prefix}/subnets/10.32.251.0-24`, '{"PublicIP":"192.168.100.92","PublicIPv6":null,"BackendType":"extension","BackendData":"quick"}');
    await eventually(() => records('add-n1').filter((r) => r.startsWith('10.32.251.0/24')), (r) => r.length === 1, 1500, 'the other lease\'s command, while the first hangs');
    assert.ok(Date.now() - t0 < 1800, 'not behind the hanging one');
    await eventually(
      () => c.nodes[0]!.messages(),
      (m) => m.some((x) => x.startsWith('failed to run command: ') && x.includes('Err: timed out after 2 s (killed)')),
      10_000,
      'the time limit, logged',
    );
  });

  test('a lease removed: the remove command runs with its subnet', async () => {
    await c.etcdctl('del', `${c.prefix}/subnets/10.32.251.0-24`);
    await eventually(() => records('remove-n1'), (r) => r.some((x) => x === '10.32.251.0/24|quick|'), 5000, 'the remove command');
    assert.ok(c.nodes[0]!.messages().includes('Subnet removed: 10.32.251.0/24'));
  });

  test("a failing pre-start command ends flanneld with upstream's message", async () => {
    const n = c.startNode(2, ['-etcd-prefix=/failing/network', `-subnet-file=${c.subnetFileOf(2)}.failing`], { NODE_TAG: 'f' });
    assert.equal(await n.waitExit(15_000), 1);
    assert.ok(n.messages().some((m) => m.includes('Error registering network: failed to run command: ') && m.endsWith('fail.sh Err: exit status 3 Output: boom')), n.messages().join('\n'));
  });
});
