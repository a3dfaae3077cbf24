/**
 * flannel0 configuration (docs/compatibility.md §5.2) is idempotent and repairs drift, and
 * TUN creation failures say what to do. Real TUN devices in namespaces.
 */
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Lab } from '../lab/netns';
import { type StaticUdpNode, startStaticUdpNodes } from '../lab/static-udp-nodes';
import { buildCluster, type Cluster, ping } from '../lab/topology';
import { ROOT_SUITE } from './helpers/root';

const OPEN_TUN = path.resolve(__dirname, '..', 'lab', 'bin', 'open-tun.js');

describe('flannel0 configuration', ROOT_SUITE, () => {
  let lab: Lab;
  let cluster: Cluster;
  let nodes: StaticUdpNode[];
  const ip = (...args: string[]) => lab.exec(cluster.nodes[0]!.ns, 'ip', args).then((r) => r.stdout);

  before(async () => {
    lab = new Lab();
    cluster = await buildCluster(lab, { nodes: 2 });
    nodes = await startStaticUdpNodes(lab, cluster);
  });
  after(async () => {
    await lab?.cleanup();
  });

  test('configuring again changes nothing and never fails with EEXIST', async () => {
    assert.deepEqual(await nodes[0]!.reconfigure(), []);
    assert.deepEqual(await nodes[0]!.reconfigure(), []);
  });

  test('drift in address, MTU, UP flag and route is repaired', async () => {
    await ip('addr', 'del', '10.5.1.0/32', 'dev', 'flannel0');
    await ip('addr', 'add', '10.5.77.0/32', 'dev', 'flannel0');
    await ip('link', 'set', 'flannel0', 'mtu', '1300');
    await ip('link', 'set', 'flannel0', 'down');
    const changes = await nodes[0]!.reconfigure();
    for (const want of [/removed address 10\.5\.77\.0\/32/, /added address 10\.5\.1\.0\/32/, /set MTU 1472 \(was 1300\)/, /set UP/, /set route 10\.5\.0\.0\/16 dev flannel0/]) {
      assert.ok(changes.some((c) => want.test(c)), `${want} in ${JSON.stringify(changes)}`);
    }
    const link = await ip('-o', 'link', 'show', 'flannel0');
    assert.match(link, / mtu 1472 /);
    assert.match(link, /[<,]UP[,>]/);
    assert.match(await ip('-o', '-4', 'addr', 'show', 'dev', 'flannel0'), /inet 10\.5\.1\.0\/32/);
    assert.doesNotMatch(await ip('-o', '-4', 'addr', 'show', 'dev', 'flannel0'), /10\.5\.77\.0/);
    assert.match(await ip('route', 'show', '10.5.0.0/16'), /dev flannel0/);
    assert.deepEqual(await nodes[0]!.reconfigure(), [], 'a second pass finds nothing to fix');
    assert.ok(await ping(lab, cluster.nodes[0]!.pod.ns, cluster.nodes[1]!.pod.address), 'traffic flows again');
  });

  test('a route for the Network through another device is taken over', async () => {
    await ip('route', 'replace', '10.5.0.0/16', 'dev', cluster.nodes[0]!.underlayIf);
    const changes = await nodes[0]!.reconfigure();
    assert.ok(changes.some((c) => /set route 10\.5\.0\.0\/16 dev flannel0/.test(c)), JSON.stringify(changes));
    const routes = (await ip('route', 'show', '10.5.0.0/16')).trim().split('\n');
    assert.deepEqual(routes.map((r) => r.trim()), ['10.5.0.0/16 dev flannel0 proto 157']);
  });

  test('closing the datapath removes the device with its address and route (not persistent)', async () => {
    const ns = await lab.addNamespace('t1');
    const r = await lab.exec(ns, process.execPath, [OPEN_TUN]);
    assert.deepEqual(JSON.parse(r.stdout), { ok: true, name: 'flannel0' });
    const links = (await lab.exec(ns, 'ip', ['-o', 'link'])).stdout;
    assert.doesNotMatch(links, /flannel0/, 'the device went away with the process');
  });
});

describe('TUN creation errors', ROOT_SUITE, () => {
  let lab: Lab;
  let ns: string;
  before(async () => {
    lab = new Lab();
    ns = await lab.addNamespace('te');
  });
  after(async () => {
    await lab?.cleanup();
  });

  test('no /dev/net/tun: says to mount or create the device node', async () => {
    const r = await lab.exec(ns, 'unshare', ['--mount', 'sh', '-c', `mount -t tmpfs tmpfs /dev/net && exec ${process.execPath} ${OPEN_TUN}`]);
    const res = JSON.parse(r.stdout) as { ok: boolean; name: string; code: string; op: string; message: string };
    assert.equal(res.ok, false);
    assert.equal(res.name, 'TunOpenError');
    assert.equal(res.code, 'ENOENT');
    assert.equal(res.op, 'open /dev/net/tun');
    assert.match(res.message, /^failed to open TUN device: open \/dev\/net\/tun: No such file or directory/);
    assert.match(res.message, /hostPath/);
    assert.match(res.message, /mknod \/dev\/net\/tun c 10 200/);
  });

  test('no CAP_NET_ADMIN: says the capability is needed', async () => {
    const r = await lab.exec(ns, 'setpriv', ['--inh-caps=-net_admin', '--bounding-set=-net_admin', process.execPath, OPEN_TUN]);
    const res = JSON.parse(r.stdout) as { ok: boolean; name: string; code: string; op: string; message: string };
    assert.equal(res.ok, false);
    assert.equal(res.code, 'EPERM');
    assert.equal(res.op, 'ioctl TUNSETIFF');
    assert.match(res.message, /^failed to open TUN device: ioctl TUNSETIFF: Operation not permitted/);
    assert.match(res.message, /CAP_NET_ADMIN/);
  });
});
