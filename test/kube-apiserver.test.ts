/**
 * The kube-apiserver stand-in (lab/kube-apiserver.ts) checked against a
 * second client, @kubernetes/client-node's own informer and API, so kube
 * mode's tests do not only agree with themselves: list, watch, resume from
 * a resourceVersion, 410 → relist (with the deletions it implies), bookmarks,
 * strategic-merge PATCH of nodes/status, pod get, auth, Status errors.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as https from 'node:https';
import * as os from 'node:os';
import * as path from 'node:path';
import { CoreV1Api, KubeConfig, makeInformer, PatchStrategy, setHeaderOptions, type V1Node } from '@kubernetes/client-node';
import { KubeApiStandIn } from '../lab/kube-apiserver';
import { makeTestPki } from '../lab/tls';

const TOKEN = 'stand-in-token';
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kube-standin-'));
const pki = makeTestPki(dir);
const ca = fs.readFileSync(pki.caFile);

function kubeConfig(port: number, token = TOKEN): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromClusterAndUser({ name: 'stand-in', server: `https://127.0.0.1:${port}`, caFile: pki.caFile, skipTLSVerify: false }, { name: 'flannel', token });
  return kc;
}

async function until(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function rawGet(port: number, path: string, ms: number): Promise<{ status: number; lines: string[] }> {
  return new Promise((resolve, reject) => {
    const req = https.get({ host: '127.0.0.1', port, path, ca, headers: { Authorization: `Bearer ${TOKEN}` } }, (res) => {
      let buf = '';
      res.on('data', (d: Buffer) => (buf += d.toString()));
      const done = () => resolve({ status: res.statusCode ?? 0, lines: buf.split('\n').filter((l) => l !== '') });
      res.on('end', done);
      setTimeout(() => {
        req.destroy();
        done();
      }, ms);
    });
    req.on('error', reject);
  });
}

describe('kube-apiserver stand-in vs @kubernetes/client-node', () => {
  const server = new KubeApiStandIn({ token: TOKEN, bookmarkIntervalMs: 100, tls: { certFile: pki.serverCert, keyFile: pki.serverKey } });
  let port = 0;

  before(async () => {
    server.putNode({ name: 'node-a', podCIDR: '10.244.1.0/24' });
    server.putNode({ name: 'node-b', podCIDR: '10.244.2.0/24' });
    await server.listen('127.0.0.1', 0);
    port = server.port;
  });
  after(async () => {
    await server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('the informer lists, follows add/modify/delete, and relists after a restart with 410', async () => {
    const kc = kubeConfig(port);
    const api = kc.makeApiClient(CoreV1Api);
    const inf = makeInformer<V1Node>(kc, '/api/v1/nodes', () => api.listNode());
    const seen: string[] = [];
    inf.on('add', (n) => seen.push(`add ${n.metadata!.name}`));
    inf.on('update', (n) => seen.push(`update ${n.metadata!.name} ${n.metadata!.annotations!['k'] ?? ''}`));
    inf.on('delete', (n) => seen.push(`delete ${n.metadata!.name}`));
    let errors = 0;
    let stopped = false;
    inf.on('error', () => {
      errors++;
      setTimeout(() => void (stopped || inf.start()), 50);
    });
    await inf.start();
    try {
      assert.deepEqual(seen.sort(), ['add node-a', 'add node-b']);
      seen.length = 0;
      server.putNode({ name: 'node-c', podCIDR: '10.244.3.0/24' });
      server.editNode('node-a', { annotations: { k: 'v1' } });
      server.deleteNode('node-b');
      await until(() => seen.length === 3, 'three watch events');
      assert.deepEqual(seen, ['add node-c', 'update node-a v1', 'delete node-b']);
      assert.equal(inf.list().length, 2);

      // The server goes away; while it is down node-c is deleted and history compacted.
      seen.length = 0;
      await server.close();
      server.deleteNode('node-c');
      server.editNode('node-a', { annotations: { k: 'v2' } });
      server.compact();
      await new Promise((r) => setTimeout(r, 300));
      await server.listen('127.0.0.1', port);
      await until(() => seen.includes('delete node-c') && seen.includes('update node-a v2'), 'the relist after 410', 10_000);
      assert.ok(errors >= 1, 'the broken watch was reported as an error');
      const watches = server.requests.filter((r) => r.query['watch'] === 'true');
      assert.ok(watches.every((r) => r.authorization === `Bearer ${TOKEN}`));
      assert.deepEqual(
        inf.list().map((n) => n.metadata!.name),
        ['node-a'],
      );
    } finally {
      stopped = true;
      await inf.stop();
    }
  });

  test('watch: resume from a resourceVersion, bookmarks, timeoutSeconds, 410 for a compacted one', async () => {
    server.putNode({ name: 'node-w', podCIDR: '10.244.9.0/24' });
    const rv = Number(server.resourceVersion);
    server.editNode('node-w', { annotations: { x: '1' } });
    const w = await rawGet(port, `/api/v1/nodes?watch=true&allowWatchBookmarks=true&resourceVersion=${rv}&timeoutSeconds=1`, 3000);
    assert.equal(w.status, 200);
    const events = w.lines.map((l) => JSON.parse(l) as { type: string; object: { kind: string; apiVersion: string; metadata: { resourceVersion: string } } });
    assert.equal(events[0]!.type, 'MODIFIED', 'only what came after the given RV is replayed');
    assert.ok(events.some((e) => e.type === 'BOOKMARK'), 'bookmarks when allowed');
    assert.ok(events.every((e) => e.object.kind && e.object.apiVersion && e.object.metadata.resourceVersion));
    server.compact();
    const old = await rawGet(port, `/api/v1/nodes?watch=true&resourceVersion=${rv}`, 1000);
    const err = JSON.parse(old.lines[0]!) as { type: string; object: { code: number; reason: string } };
    assert.deepEqual([err.type, err.object.code, err.object.reason], ['ERROR', 410, 'Expired']);
    const list = await rawGet(port, `/api/v1/nodes?resourceVersion=${rv}`, 1000);
    assert.equal(list.status, 410, 'a list at a compacted RV is Expired (client-go then lists without RV)');
    server.deleteNode('node-w');
  });

  test('PATCH nodes/status merges annotations and conditions, ignores spec; nodes PATCH is forbidden', async () => {
    const api = kubeConfig(port).makeApiClient(CoreV1Api);
    server.putNode({ name: 'node-p', podCIDR: '10.244.5.0/24', annotations: { keep: 'me', drop: 'x' } });
    const opts = setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch);
    await api.patchNodeStatus({ name: 'node-p', body: { metadata: { annotations: { a: '1', drop: null } }, spec: { podCIDR: '1.2.3.0/24' } } }, opts);
    const cond = { type: 'NetworkUnavailable', status: 'False', reason: 'FlannelIsUp', message: 'Flannel is running on this node' };
    await api.patchNodeStatus({ name: 'node-p', body: { status: { conditions: [cond] } } }, opts);
    await api.patchNodeStatus({ name: 'node-p', body: { status: { conditions: [{ ...cond, reason: 'Again' }] } } }, opts);
    const n = await api.readNode({ name: 'node-p' });
    assert.deepEqual(n.metadata!.annotations, { keep: 'me', a: '1' });
    assert.equal(n.spec!.podCIDR, '10.244.5.0/24');
    assert.equal(n.status!.conditions!.length, 1);
    assert.equal(n.status!.conditions![0]!.reason, 'Again');
    const last = server.requests.filter((r) => r.method === 'PATCH').at(-1)!;
    assert.equal(last.contentType, 'application/strategic-merge-patch+json');
    await assert.rejects(api.patchNode({ name: 'node-p', body: {} }, opts), (e: { code?: number }) => e.code === 403);
    await assert.rejects(api.readNode({ name: 'nope' }), (e: { code?: number; body?: string }) => e.code === 404 && /nodes \\?"nope\\?" not found/.test(String(e.body)));
    server.deleteNode('node-p');
  });

  test('pods get, and a wrong token is 401', async () => {
    server.putPod('kube-flannel', 'kube-flannel-ds-x', 'node-a');
    const api = kubeConfig(port).makeApiClient(CoreV1Api);
    const pod = await api.readNamespacedPod({ name: 'kube-flannel-ds-x', namespace: 'kube-flannel' });
    assert.equal(pod.spec!.nodeName, 'node-a');
    const bad = kubeConfig(port, 'wrong').makeApiClient(CoreV1Api);
    await assert.rejects(bad.readNode({ name: 'node-a' }), (e: { code?: number }) => e.code === 401);
  });
});
