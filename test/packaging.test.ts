/**
 * dist/: the systemd unit is Type=notify and runs bin/flanneld; every
 * variable of the environment-file example is one flanneld reads (a typo
 * there would be silently ignored by an operator's node); the kube-flannel
 * DaemonSet for udp and the image it names.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as os from 'node:os';
import { describe, test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { envName, FLANNEL_FLAGS } from '../src/cli/flags';
import { parseGoFlags } from '../src/cli/go-flags';
import { installConfMain } from '../src/cli/install-conf';
import { readNetConf } from '../src/lease/kube/kube-subnet-manager';
import { OFFLOAD_ENV, parseOffloadEnv } from '../src/forwarder/offload';
import { parseDotenv } from '../src/lease/subnet-file';

const DIST = path.resolve(__dirname, '..', '..', 'dist');

test('flanneld.service: Type=notify, restart on failure, watchdog, the env file', () => {
  const unit = fs.readFileSync(path.join(DIST, 'flanneld.service'), 'utf8');
  for (const line of ['Type=notify', 'Restart=on-failure', 'EnvironmentFile=-/etc/default/flanneld', 'ExecStart=/opt/flannel-ts/bin/flanneld']) {
    assert.ok(unit.split('\n').includes(line), `${line} in flanneld.service`);
  }
  assert.match(unit, /^WatchdogSec=\d+$/m);
});

test('flanneld.env: every variable, commented-out ones included, is a flag flanneld knows', () => {
  const text = fs.readFileSync(path.join(DIST, 'flanneld.env'), 'utf8');
  const known = new Set(FLANNEL_FLAGS.map((f) => envName(f.name)));
  const names = [...text.matchAll(/^#? ?([A-Z][A-Z0-9_]+)=/gm)].map((m) => m[1]!);
  assert.ok(names.length >= 10, names.join(' '));
  for (const n of names) assert.ok(known.has(n) || n === OFFLOAD_ENV, `${n} is not a flanneld variable`);
  const active = parseDotenv(text);
  assert.equal(active.get('FLANNELD_IP_MASQ'), 'true');
  assert.doesNotThrow(() => parseOffloadEnv('gso,gro'));
});

describe('dist/kube-flannel-udp.yml: the DaemonSet drop-in for the udp backend (docs/compatibility.md §11.9)', () => {
  type Doc = Record<string, any>;
  const docs = parseAllDocuments(fs.readFileSync(path.join(DIST, 'kube-flannel-udp.yml'), 'utf8')).map((d) => {
    assert.deepEqual(d.errors, [], 'valid YAML');
    return d.toJSON() as Doc;
  });
  const byKind = (kind: string): Doc => {
    const d = docs.find((x) => x['kind'] === kind);
    assert.ok(d, `a ${kind}`);
    return d;
  };

  test('RBAC: pods get; nodes get, list, watch; nodes/status patch; nothing else', () => {
    const rules = byKind('ClusterRole')['rules'] as Array<{ apiGroups: string[]; resources: string[]; verbs: string[] }>;
    const grants = rules.flatMap((r) => r.resources.flatMap((res) => r.verbs.map((v) => `${r.apiGroups.join(',')}/${res}:${v}`))).sort();
    assert.deepEqual(grants, ['/nodes/status:patch', '/nodes:get', '/nodes:list', '/nodes:watch', '/pods:get']);
    const binding = byKind('ClusterRoleBinding');
    assert.deepEqual(binding['subjects'], [{ kind: 'ServiceAccount', name: 'flannel', namespace: 'kube-flannel' }]);
    assert.equal(binding['roleRef']['name'], byKind('ClusterRole')['metadata']['name']);
    assert.equal(byKind('ServiceAccount')['metadata']['name'], 'flannel');
  });

  test('ConfigMap: net-conf.json selects udp and is what kube mode parses; cni-conf.json is the cbr0 conflist', () => {
    const data = byKind('ConfigMap')['data'] as Record<string, string>;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'netconf-'));
    try {
      fs.writeFileSync(path.join(dir, 'net-conf.json'), data['net-conf.json']!);
      const cfg = readNetConf(path.join(dir, 'net-conf.json'));
      assert.deepEqual([cfg.backendType, cfg.network?.toString()], ['udp', '10.244.0.0/16']);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
    const cni = JSON.parse(data['cni-conf.json']!) as { name: string; plugins: Array<{ type: string }> };
    assert.deepEqual([cni.name, cni.plugins.map((p) => p.type)], ['cbr0', ['flannel', 'portmap']]);
  });

  test('DaemonSet: args, privileged, env, probes, and the /run/flannel, /etc/kube-flannel and /dev/net/tun mounts', () => {
    const spec = byKind('DaemonSet')['spec']['template']['spec'] as Doc;
    assert.equal(spec['hostNetwork'], true);
    assert.equal(spec['serviceAccountName'], 'flannel');
    const main = (spec['containers'] as Doc[]).find((c) => c['name'] === 'kube-flannel')!;
    assert.deepEqual(main['command'], ['/opt/bin/flanneld']);
    assert.deepEqual(main['args'], ['--ip-masq', '--kube-subnet-mgr', '--healthz-port=8081']);
    // The args parse as flanneld's flags.
    const parsed = parseGoFlags(main['args'] as string[], FLANNEL_FLAGS);
    assert.deepEqual([parsed.values.get('kube-subnet-mgr'), parsed.values.get('ip-masq'), parsed.values.get('healthz-port')], [true, true, 8081]);
    assert.equal(main['securityContext']['privileged'], true);
    assert.deepEqual((main['env'] as Doc[]).map((e) => e['name']), ['POD_NAME', 'POD_NAMESPACE', 'EVENT_QUEUE_DEPTH', 'CONT_WHEN_CACHE_NOT_READY']);
    assert.equal(main['livenessProbe']['httpGet']['path'], '/healthz');
    assert.equal(main['readinessProbe']['httpGet']['path'], '/readyz');
    const volumes = new Map((spec['volumes'] as Doc[]).map((v) => [v['name'] as string, v]));
    const mounts = new Map((main['volumeMounts'] as Doc[]).map((m) => [m['mountPath'] as string, m['name'] as string]));
    assert.equal(volumes.get(mounts.get('/run/flannel')!)!['hostPath']['path'], '/run/flannel');
    assert.equal(volumes.get(mounts.get('/etc/kube-flannel/')!)!['configMap']['name'], 'kube-flannel-cfg');
    assert.deepEqual(volumes.get(mounts.get('/dev/net/tun')!)!['hostPath'], { path: '/dev/net/tun', type: 'CharDevice' });
    assert.equal(volumes.get(mounts.get('/run/xtables.lock')!)!['hostPath']['type'], 'FileOrCreate');
    const installCni = (spec['initContainers'] as Doc[]).find((c) => c['name'] === 'install-cni')!;
    assert.deepEqual([installCni['command'], installCni['args']], [['cp'], ['-f', '/etc/kube-flannel/cni-conf.json', '/etc/cni/net.d/10-flannel.conflist']]);
    assert.equal(installCni['image'], main['image'], 'the CNI config comes from the flannel image');
  });

  test('the Dockerfile provides /opt/bin/flanneld and /opt/bin/install-conf and the rule tools', () => {
    const text = fs.readFileSync(path.resolve(DIST, '..', 'Dockerfile'), 'utf8');
    for (const want of ['/opt/bin/flanneld', '/opt/bin/install-conf', 'iptables', 'nftables', 'npm ci']) assert.ok(text.includes(want), want);
    const pkg = JSON.parse(fs.readFileSync(path.resolve(DIST, '..', 'package.json'), 'utf8')) as { bin: Record<string, string> };
    for (const [name, file] of Object.entries(pkg.bin)) assert.ok(fs.existsSync(path.resolve(DIST, '..', file)), `${name} → ${file}`);
  });
});

describe('install-conf (the CNI config installer the manifest can run)', () => {
  test('atomic copy with the source mode; usage and failure messages', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'install-conf-'));
    try {
      const src = path.join(dir, 'cni-conf.json');
      fs.writeFileSync(src, '{"name":"cbr0"}');
      fs.chmodSync(src, 0o640);
      const dest = path.join(dir, 'net.d', '10-flannel.conflist');
      fs.mkdirSync(path.dirname(dest));
      let err = '';
      assert.equal(installConfMain('install-conf', [src, dest], (s) => (err += s)), 0);
      assert.equal(fs.readFileSync(dest, 'utf8'), '{"name":"cbr0"}');
      assert.equal(fs.statSync(dest).mode & 0o777, 0o640);
      assert.deepEqual(fs.readdirSync(path.dirname(dest)), ['10-flannel.conflist'], 'no temporary file left');
      assert.equal(installConfMain('install-conf', [src], (s) => (err += s)), 1);
      assert.match(err, /^usage: install-conf <src> <dest>$/m);
      assert.equal(installConfMain('install-conf', [path.join(dir, 'none'), dest], (s) => (err += s)), 1);
      assert.match(err, /error installing ".*none": ENOENT/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
