/**
 * The kube subnet manager against the stand-in API server over HTTPS (no
 * namespaces needed): the calls of docs/compatibility.md §11.2 in order, the exact PATCH
 * bytes, the condition, the VtepMAC restore, node events → lease events,
 * and every startup error of docs/compatibility.md §11.1/docs/compatibility.md §11.5 with its message.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { KubeApiStandIn } from '../lab/kube-apiserver';
import { writeKubeconfig } from '../lab/kubeconfig';
import { makeTestPki } from '../lab/tls';
import { KubeSubnetManager, type KubeModeConfig, TEST_TIMINGS_ENV } from '../src/lease/kube/kube-subnet-manager';
import { RecordingLogger } from '../src/logging';
import { parseIpv4 } from '../src/util/ipv4';
import { guardedWatch } from './helpers/guarded-watch';

const TOKEN = 'flannel-sa-token';
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kube-mgr-'));
const pki = makeTestPki(path.join(dir, 'pki'));
const netConf = path.join(dir, 'net-conf.json');
fs.writeFileSync(netConf, JSON.stringify({ Network: '10.244.0.0/16', Backend: { Type: 'vxlan' } }));
const FAST = '3000,1500,100';

const udpAttrs = { publicIp: parseIpv4('192.168.50.11'), publicIpv6: undefined, backendType: '', backendData: undefined, backendV6Data: undefined };

async function until(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('kube subnet manager vs the stand-in API server', () => {
  const server = new KubeApiStandIn({ token: TOKEN, tls: { certFile: pki.serverCert, keyFile: pki.serverKey } });
  let kubeconfig = '';
  const managers: KubeSubnetManager[] = [];
  const cfg = (over: Partial<KubeModeConfig> = {}): KubeModeConfig => ({
    kubeconfigFile: kubeconfig,
    kubeApiUrl: '',
    kubeAnnotationPrefix: 'flannel.alpha.coreos.com',
    netConfigPath: netConf,
    setNodeNetworkUnavailable: true,
    ...over,
  });
  const create = async (env: NodeJS.ProcessEnv, over: Partial<KubeModeConfig> = {}, log = new RecordingLogger()) => {
    const m = await KubeSubnetManager.create(cfg(over), { [TEST_TIMINGS_ENV]: FAST, ...env }, log, new AbortController().signal);
    managers.push(m);
    return m;
  };

  before(async () => {
    await server.listen('127.0.0.1', 0);
    kubeconfig = path.join(dir, 'kubeconfig');
    writeKubeconfig(kubeconfig, { server: `https://127.0.0.1:${server.port}`, caFile: pki.caFile, token: TOKEN });
    server.putNode({ name: 'node-a', podCIDR: '10.244.1.0/24' });
    server.putNode({
      name: 'node-b',
      podCIDR: '10.244.2.0/24',
      annotations: {
        'flannel.alpha.coreos.com/kube-subnet-manager': 'true',
        'flannel.alpha.coreos.com/backend-type': 'vxlan',
        'flannel.alpha.coreos.com/backend-data': '{"VNI":1,"VtepMAC":"26:5a:1c:9e:0b:12"}',
        'flannel.alpha.coreos.com/public-ip': '192.168.50.12',
      },
    });
    server.putPod('kube-flannel', 'kube-flannel-ds-abcde', 'node-a');
  });
  after(async () => {
    for (const m of managers) await m.close();
    await server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('startup via POD_NAME, udp lease, annotations and condition with upstream bytes; peers as lease events', async () => {
    const from = server.requests.length;
    const log = new RecordingLogger();
    const m = await create({ POD_NAME: 'kube-flannel-ds-abcde', POD_NAMESPACE: 'kube-flannel' }, {}, log);
    assert.equal(m.nodeName, 'node-a');
    const lease = await m.acquireLease(udpAttrs, new AbortController().signal);
    assert.equal(lease.subnet.toString(), '10.244.1.0/24');
    await m.completeLease();
    const reqs = server.requests.slice(from);
    assert.deepEqual(
      reqs.map((r) => `${r.method} ${r.path}${r.query['watch'] ? ' watch' : ''}`),
      ['GET /api/v1/namespaces/kube-flannel/pods/kube-flannel-ds-abcde', 'GET /api/v1/nodes', 'GET /api/v1/nodes watch', 'PATCH /api/v1/nodes/node-a/status', 'PATCH /api/v1/nodes/node-a/status'],
    );
    assert.ok(reqs.every((r) => r.authorization === `Bearer ${TOKEN}`));
    const watch = reqs.find((r) => r.query['watch'] === 'true')!;
    assert.equal(watch.query['allowWatchBookmarks'], 'true');
    assert.ok(Number(watch.query['timeoutSeconds']) >= 300 && Number(watch.query['timeoutSeconds']) <= 599, `timeoutSeconds ${watch.query['timeoutSeconds']}`);
    assert.ok(Number(watch.query['resourceVersion']) > 0, 'the watch starts at the list\'s resourceVersion');
    const [patchF, patchG] = reqs.filter((r) => r.method === 'PATCH');
    assert.equal(patchF!.contentType, 'application/strategic-merge-patch+json');
    assert.equal(
      patchF!.body,
      '{"metadata":{"annotations":{"flannel.alpha.coreos.com/backend-data":"null","flannel.alpha.coreos.com/backend-type":"","flannel.alpha.coreos.com/kube-subnet-manager":"true","flannel.alpha.coreos.com/public-ip":"192.168.50.11"}}}',
    );
    assert.match(
      patchG!.body,
      /^\{"status":\{"conditions":\[\{"type":"NetworkUnavailable","status":"False","lastHeartbeatTime":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ","lastTransitionTime":"[^"]+","reason":"FlannelIsUp","message":"Flannel is running on this node"\}\]\}\}$/,
    );
    const node = server.getNode('node-a')! as { metadata: { annotations: Record<string, string> }; status: { conditions: Array<{ type: string; status: string }> } };
    assert.equal(node.metadata.annotations['dummy'], 'value', 'existing annotations are kept');
    assert.deepEqual(node.status.conditions.map((c) => `${c.type}=${c.status}`), ['NetworkUnavailable=False']);

    const { w, batches } = guardedWatch(m, lease, '{"Network":"10.244.0.0/16"}');
    await until(() => batches.length === 1, 'the first batch');
    assert.deepEqual(batches[0]!.map((e) => `${e.type} ${e.lease.subnet.toString()}`), ['added 10.244.2.0/24'], 'node-b only: node-a is us');
    assert.equal(w.stats.snapshotApplied, true);
    server.putNode({ name: 'node-c', podCIDR: '10.244.3.0/24', annotations: { 'flannel.alpha.coreos.com/kube-subnet-manager': 'true', 'flannel.alpha.coreos.com/backend-type': '', 'flannel.alpha.coreos.com/backend-data': 'null', 'flannel.alpha.coreos.com/public-ip': '192.168.50.13' } });
    await until(() => batches.length === 2, 'node-c');
    server.editNode('node-c', { annotations: { unrelated: 'x' } });
    server.deleteNode('node-c');
    await until(() => batches.length === 3, 'node-c deleted');
    assert.deepEqual(batches.slice(1).map((b) => b.map((e) => `${e.type} ${e.lease.subnet.toString()}`)), [['added 10.244.3.0/24'], ['removed 10.244.3.0/24']]);

    // A second start finds the annotations in place: no annotation PATCH.
    const before = server.requests.length;
    const again = await create({ NODE_NAME: 'node-a' });
    await again.acquireLease(udpAttrs, new AbortController().signal);
    assert.equal(server.requests.slice(before).filter((r) => r.method === 'PATCH').length, 0);
  });

  test('our annotations changed by someone else are restored at once, naming what changed and which manager', async () => {
    server.putNode({ name: 'node-r', podCIDR: '10.244.9.0/24' });
    const log = new RecordingLogger();
    const m = await create({ NODE_NAME: 'node-r' }, {}, log);
    await m.acquireLease(udpAttrs, new AbortController().signal);
    const annotations = () => (server.getNode('node-r') as { metadata: { annotations: Record<string, string> } }).metadata.annotations;
    const managers = () => ((server.getNode('node-r') as { metadata: { managedFields?: Array<{ manager: string }> } }).metadata.managedFields ?? []).map((f) => f.manager);
    assert.ok(managers().includes('flanneld'), `our patch is recorded as flanneld's: ${managers().join(', ')}`);
    // A patch of public-ip would redirect our pods' traffic on every peer.
    server.editNode('node-r', { annotations: { 'flannel.alpha.coreos.com/public-ip': '203.0.113.66' }, manager: 'kubectl-annotate' });
    await until(() => annotations()['flannel.alpha.coreos.com/public-ip'] === '192.168.50.11', 'public-ip restored');
    assert.ok(log.records.some((r) => /changed by kubectl-annotate \(flannel\.alpha\.coreos\.com\/public-ip: "203\.0\.113\.66"\); restoring them/.test(r.msg)));
    // Removing the backend annotations (which withdraws us from every peer) is undone too.
    server.editNode('node-r', { annotations: { 'flannel.alpha.coreos.com/backend-type': null, 'flannel.alpha.coreos.com/kube-subnet-manager': null }, manager: 'cleanup-script' });
    await until(() => annotations()['flannel.alpha.coreos.com/kube-subnet-manager'] === 'true' && annotations()['flannel.alpha.coreos.com/backend-type'] === '', 'annotations restored');
    assert.ok(log.records.some((r) => /changed by cleanup-script .*kube-subnet-manager: \(removed\)/.test(r.msg)));
    // Our own restore does not trigger another.
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(log.records.filter((r) => /restoring them/.test(r.msg)).length, 2);
  });

  test('vxlan: the VtepMAC comes back from the annotation, with a custom prefix too', async () => {
    server.putNode({ name: 'node-v', podCIDR: '10.244.4.0/24' });
    const m = await create({ NODE_NAME: 'node-v' }, { kubeAnnotationPrefix: 'example.com/pfx' });
    assert.equal(await m.storedVtepMac(), undefined);
    await m.acquireLease({ ...udpAttrs, backendType: 'vxlan', backendData: '{"VNI":1,"VtepMAC":"12:c6:65:89:b4:e3"}' }, new AbortController().signal);
    const n = server.getNode('node-v') as { metadata: { annotations: Record<string, string> } };
    assert.equal(n.metadata.annotations['example.com/pfx-backend-type'], 'vxlan');
    assert.equal(await m.storedVtepMac(), '12:c6:65:89:b4:e3');
  });

  test('a node without any annotations: lease acquired, nothing crashes (upstream panics)', async () => {
    server.putNode({ name: 'node-bare', podCIDR: '10.244.5.0/24', annotations: null });
    const m = await create({ NODE_NAME: 'node-bare' });
    assert.equal(await m.storedVtepMac(), undefined);
    assert.deepEqual(await m.publicIpHints(), { publicIp: undefined, publicIpv6: undefined });
    const lease = await m.acquireLease(udpAttrs, new AbortController().signal);
    assert.equal(lease.subnet.toString(), '10.244.5.0/24');
  });

  test('bad own node: missing podCIDR; podCIDR outside Network (no PATCH sent first); no such node', async () => {
    server.putNode({ name: 'node-nocidr' });
    const m1 = await create({ NODE_NAME: 'node-nocidr' });
    await assert.rejects(m1.acquireLease(udpAttrs, new AbortController().signal), /node "node-nocidr" pod cidr not assigned.*--allocate-node-cidrs/);
    server.putNode({ name: 'node-out', podCIDR: '10.99.1.0/24' });
    const m2 = await create({ NODE_NAME: 'node-out' });
    const before = server.requests.length;
    await assert.rejects(m2.acquireLease(udpAttrs, new AbortController().signal), /subnet "10\.244\.0\.0\/16" specified in the flannel net config doesn't contain "10\.99\.1\.0\/24" PodCIDR of the "node-out" node/);
    assert.equal(server.requests.slice(before).filter((r) => r.method === 'PATCH').length, 0, 'nothing published');
    const m3 = await create({ NODE_NAME: 'node-ghost' });
    await assert.rejects(m3.acquireLease(udpAttrs, new AbortController().signal), /timeout contacting kube-api, failed to patch node "node-ghost".*NODE_NAME/);
  });

  test('a failing PATCH is retried; the condition PATCH failing is only logged', async () => {
    server.putNode({ name: 'node-r', podCIDR: '10.244.6.0/24' });
    const log = new RecordingLogger();
    const m = await create({ NODE_NAME: 'node-r' }, {}, log);
    server.failPatches = { count: 2, code: 500 };
    await m.acquireLease(udpAttrs, new AbortController().signal);
    assert.equal((server.getNode('node-r') as { metadata: { annotations: Record<string, string> } }).metadata.annotations['flannel.alpha.coreos.com/kube-subnet-manager'], 'true');
    server.failPatches = { count: 1, code: 500 };
    await m.completeLease();
    assert.ok(log.records.some((r) => r.level === 'error' && /^CompleteLease execute error err: .*500/.test(r.msg)));
    const off = await create({ NODE_NAME: 'node-r' }, { setNodeNetworkUnavailable: false });
    const before = server.requests.length;
    await off.completeLease();
    assert.equal(server.requests.length, before, '-set-node-network-unavailable=false sends nothing');
  });

  test('startup errors name the problem and the fix', async () => {
    const signal = new AbortController().signal;
    const make = (over: Partial<KubeModeConfig>, env: NodeJS.ProcessEnv) => KubeSubnetManager.create(cfg(over), { [TEST_TIMINGS_ENV]: '500,500,100', ...env }, new RecordingLogger(), signal);
    await assert.rejects(make({ kubeconfigFile: path.join(dir, 'nope') }, { NODE_NAME: 'x' }), /stat .*nope: no such file or directory/);
    await assert.rejects(make({ kubeconfigFile: '' }, { NODE_NAME: 'x' }), /no configuration has been provided.*KUBERNETES_MASTER/);
    await assert.rejects(make({}, {}), /env variables POD_NAME and POD_NAMESPACE must be set/);
    await assert.rejects(make({}, { POD_NAME: 'gone', POD_NAMESPACE: 'kube-flannel' }), /error retrieving pod spec for 'kube-flannel\/gone': .*404 pods "gone" not found/);
    await assert.rejects(make({ netConfigPath: path.join(dir, 'missing.json') }, { NODE_NAME: 'x' }), /failed to read net conf: open .*missing\.json: no such file or directory/);
    await assert.rejects(make({ kubeAnnotationPrefix: 'org' }, { NODE_NAME: 'x' }), /error creating network manager: subnet\/kube: prefix must be in a format/);
    await assert.rejects(make({}, { NODE_NAME: 'x', EVENT_QUEUE_DEPTH: 'lots' }), /env EVENT_QUEUE_DEPTH=lots format error/);
    // -kube-api-url alone is anonymous: this server wants a token, so the list never succeeds.
    await assert.rejects(make({ kubeconfigFile: '', kubeApiUrl: `https://127.0.0.1:${server.port}` }, { NODE_NAME: 'x' }), /error waiting for nodeController to sync state: context deadline exceeded/);
    const cont = await make({ kubeconfigFile: '', kubeApiUrl: `https://127.0.0.1:${server.port}` }, { NODE_NAME: 'x', CONT_WHEN_CACHE_NOT_READY: 'true' });
    managers.push(cont);
  });

  test('kubeconfig plus -kube-api-url: the URL replaces the server', async () => {
    const other = path.join(dir, 'kubeconfig-wrong-server');
    writeKubeconfig(other, { server: 'https://127.0.0.1:1', caFile: pki.caFile, token: TOKEN });
    const m = await create({ NODE_NAME: 'node-a' }, { kubeconfigFile: other, kubeApiUrl: `https://127.0.0.1:${server.port}` });
    assert.equal(m.client.server, `https://127.0.0.1:${server.port}`);
  });

  test('-kube-api-url alone against a plain-http server: anonymous, as client-go allows', async () => {
    const plain = new KubeApiStandIn();
    await plain.listen('127.0.0.1', 0);
    try {
      plain.putNode({ name: 'node-h', podCIDR: '10.244.7.0/24' });
      const m = await create({ NODE_NAME: 'node-h' }, { kubeconfigFile: '', kubeApiUrl: `http://127.0.0.1:${plain.port}` });
      const lease = await m.acquireLease(udpAttrs, new AbortController().signal);
      assert.equal(lease.subnet.toString(), '10.244.7.0/24');
      assert.ok(plain.requests.length >= 3 && plain.requests.every((r) => r.authorization === undefined), 'no credentials sent');
      await m.close();
    } finally {
      await plain.close();
    }
  });

  test('bin/flanneld: SIGTERM during the initial node sync exits 0 at once (upstream dies by the signal)', { timeout: 20_000 }, async () => {
    const flanneld = path.resolve(__dirname, '..', '..', 'bin', 'flanneld');
    // Nothing listens on port 1: the informer keeps retrying, flanneld keeps waiting.
    const p = spawn(process.execPath, [flanneld, '-kube-subnet-mgr', '-kube-api-url=https://127.0.0.1:1', `-net-config-path=${netConf}`, `-subnet-file=${path.join(dir, 'never.env')}`], {
      env: { ...process.env, NODE_NAME: 'node-a' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (out += d.toString()));
    await until(() => out.includes('Waiting 10m0s for node controller to sync') && out.includes('node list/watch failed'), 'the sync wait', 10_000);
    const t0 = Date.now();
    p.kill('SIGTERM');
    const code = await new Promise<number | null>((resolve) => p.once('exit', (c) => resolve(c)));
    assert.equal(code, 0, out.slice(-2000));
    assert.ok(Date.now() - t0 < 3000);
    assert.ok(!fs.existsSync(path.join(dir, 'never.env')));
  });

  test('in-cluster: KUBERNETES_SERVICE_HOST/PORT and the service-account token', async () => {
    const { loadKubeConfig } = await import('../src/lease/kube/kube-client');
    const sa = path.join(dir, 'sa', 'var/run/secrets/kubernetes.io/serviceaccount');
    fs.mkdirSync(sa, { recursive: true });
    fs.writeFileSync(path.join(sa, 'token'), TOKEN);
    fs.copyFileSync(pki.caFile, path.join(sa, 'ca.crt'));
    const log = new RecordingLogger();
    const kc = loadKubeConfig({ kubeconfigFile: '', apiUrl: '', env: { KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: String(server.port) }, serviceAccountDir: sa, log });
    assert.equal(kc.getCurrentCluster()!.server, `https://127.0.0.1:${server.port}`);
    assert.ok(log.records.some((r) => r.msg === 'Neither --kubeconfig nor --master was specified.  Using the inClusterConfig.  This might not work.'));
    const { KubeClient } = await import('../src/lease/kube/kube-client');
    const node = await new KubeClient(kc, log).getNode('node-a');
    assert.equal(node.metadata?.name, 'node-a');
  });
});
