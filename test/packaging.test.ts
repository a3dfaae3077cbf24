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
import { parseDotenv, writeSubnetEnv } from '../src/lease/subnet-file';
import { Ipv4Net } from '../src/util/ipv4';
import { spawnSync } from 'node:child_process';

const DIST = path.resolve(__dirname, '..', '..', 'dist');

test('flanneld.service: Type=notify, always restarted (a lost lease exits 0), watchdog, the env file and its options hook', () => {
  const unit = fs.readFileSync(path.join(DIST, 'flanneld.service'), 'utf8');
  for (const line of [
    'Type=notify',
    'Restart=always',
    'EnvironmentFile=-/etc/default/flanneld',
    'ExecStart=/opt/flannel-ts/bin/flanneld $FLANNEL_OPTIONS',
    '#ExecStartPost=/opt/flannel-ts/dist/mk-docker-opts.sh -k DOCKER_NETWORK_OPTIONS -d /run/flannel/docker',
    'Documentation=file:/opt/flannel-ts/docs/operations.md',
    'KillMode=process',
  ]) {
    assert.ok(unit.split('\n').includes(line), `${line} in flanneld.service`);
  }
  assert.match(unit, /^WatchdogSec=\d+$/m);
  assert.doesNotMatch(unit, /drop-in for upstream/, 'upstream ships no unit');
});

test('flanneld.env: every variable, commented-out ones included, is a flag flanneld knows', () => {
  const text = fs.readFileSync(path.join(DIST, 'flanneld.env'), 'utf8');
  const known = new Set(FLANNEL_FLAGS.map((f) => envName(f.name)));
  const names = [...text.matchAll(/^#? ?([A-Z][A-Z0-9_]+)=/gm)].map((m) => m[1]!);
  assert.ok(names.length >= 10, names.join(' '));
  for (const n of names) assert.ok(known.has(n) || n === OFFLOAD_ENV || n === 'FLANNEL_OPTIONS', `${n} is not a flanneld variable`);
  assert.doesNotMatch(text, /10s|Go's syntax|regex\)/, 'no duration or regex promise that no flag keeps');
  const active = parseDotenv(text);
  assert.equal(active.get('FLANNELD_IP_MASQ'), 'true');
  assert.doesNotThrow(() => parseOffloadEnv('gso,gro'));
});

for (const [manifest, backend] of [
  ['kube-flannel-udp.yml', 'udp'],
  ['kube-flannel-wireguard.yml', 'wireguard'],
] as const) {
describe(`dist/${manifest}: the DaemonSet drop-in for the ${backend} backend (docs/compatibility.md §11.9)`, () => {
  type Doc = Record<string, any>;
  const docs = parseAllDocuments(fs.readFileSync(path.join(DIST, manifest), 'utf8')).map((d) => {
    assert.deepEqual(d.errors, [], 'valid YAML');
    return d.toJSON() as Doc;
  });
  const byKind = (kind: string): Doc => {
    const d = docs.find((x) => x['kind'] === kind);
    assert.ok(d, `a ${kind}`);
    return d;
  };

  test('RBAC, least privilege: nodes get, list, watch and nodes/status patch cluster-wide; pods get only in kube-flannel; nothing else', () => {
    const grantsOf = (kind: string) =>
      (byKind(kind)['rules'] as Array<{ apiGroups: string[]; resources: string[]; verbs: string[] }>)
        .flatMap((r) => r.resources.flatMap((res) => r.verbs.map((v) => `${r.apiGroups.join(',')}/${res}:${v}`)))
        .sort();
    assert.deepEqual(grantsOf('ClusterRole'), ['/nodes/status:patch', '/nodes:get', '/nodes:list', '/nodes:watch']);
    assert.deepEqual(grantsOf('Role'), ['/pods:get']);
    assert.equal(byKind('Role')['metadata']['namespace'], 'kube-flannel');
    for (const [binding, role] of [['ClusterRoleBinding', 'ClusterRole'], ['RoleBinding', 'Role']] as const) {
      assert.deepEqual(byKind(binding)['subjects'], [{ kind: 'ServiceAccount', name: 'flannel', namespace: 'kube-flannel' }]);
      assert.deepEqual([byKind(binding)['roleRef']['kind'], byKind(binding)['roleRef']['name']], [role, byKind(role)['metadata']['name']]);
    }
    assert.equal(byKind('ServiceAccount')['metadata']['name'], 'flannel');
  });

  test(`ConfigMap: net-conf.json selects ${backend} and is what kube mode parses; cni-conf.json is the cbr0 conflist`, () => {
    const data = byKind('ConfigMap')['data'] as Record<string, string>;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'netconf-'));
    try {
      fs.writeFileSync(path.join(dir, 'net-conf.json'), data['net-conf.json']!);
      const cfg = readNetConf(path.join(dir, 'net-conf.json'));
      assert.deepEqual([cfg.backendType, cfg.network?.toString()], [backend, '10.244.0.0/16']);
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
    assert.deepEqual(main['args'], ['--ip-masq', '--kube-subnet-mgr', '--healthz-port=8081', '--healthz-ip=$(NODE_IP)']);
    // The args parse as flanneld's flags.
    const parsed = parseGoFlags(main['args'] as string[], FLANNEL_FLAGS);
    assert.deepEqual([parsed.values.get('kube-subnet-mgr'), parsed.values.get('ip-masq'), parsed.values.get('healthz-port')], [true, true, 8081]);
    // Privileged only for the TUN device's cgroup rule; the capabilities flanneld needs are named for the alternative.
    assert.equal(main['securityContext']['privileged'], true);
    const text = fs.readFileSync(path.join(DIST, manifest), 'utf8');
    if (backend === 'udp') assert.match(text, /runc 1\.2 removed the TUN device from its default\s+#\s+allow-list/);
    assert.match(text, /#\s+add: \["NET_ADMIN", "NET_RAW"\]/);
    const nodeIp = (main['env'] as Doc[]).find((e) => e['name'] === 'NODE_IP')!;
    assert.equal(nodeIp['valueFrom']['fieldRef']['fieldPath'], 'status.hostIP', 'the health port binds to the node IP');
    assert.deepEqual((main['env'] as Doc[]).map((e) => e['name']), ['NODE_IP', 'POD_NAME', 'POD_NAMESPACE', 'EVENT_QUEUE_DEPTH', 'CONT_WHEN_CACHE_NOT_READY']);
    assert.equal(main['livenessProbe']['httpGet']['path'], '/healthz');
    assert.equal(main['readinessProbe']['httpGet']['path'], '/readyz');
    const volumes = new Map((spec['volumes'] as Doc[]).map((v) => [v['name'] as string, v]));
    const mounts = new Map((main['volumeMounts'] as Doc[]).map((m) => [m['mountPath'] as string, m['name'] as string]));
    assert.equal(volumes.get(mounts.get('/run/flannel')!)!['hostPath']['path'], '/run/flannel');
    assert.equal(volumes.get(mounts.get('/etc/kube-flannel/')!)!['configMap']['name'], 'kube-flannel-cfg');
    assert.deepEqual(volumes.get(mounts.get('/dev/net/tun')!)!['hostPath'], { path: '/dev/net/tun', type: 'CharDevice' });
    assert.equal(volumes.get(mounts.get('/run/xtables.lock')!)!['hostPath']['type'], 'FileOrCreate');
    if (backend === 'wireguard') assert.deepEqual(volumes.get(mounts.get('/var/run/wireguard')!)!['hostPath'], { path: '/var/run/wireguard', type: 'DirectoryOrCreate' });
    const installCni = (spec['initContainers'] as Doc[]).find((c) => c['name'] === 'install-cni')!;
    assert.deepEqual([installCni['command'], installCni['args']], [['/opt/bin/install-conf'], ['/etc/kube-flannel/cni-conf.json', '/etc/cni/net.d/10-flannel.conflist']]);
    assert.equal(installCni['image'], main['image'], 'the CNI config comes from the flannel image');
  });
});
}

describe('the image', () => {
  test('the Dockerfile provides /opt/bin/flanneld and /opt/bin/install-conf and the rule tools', () => {
    const text = fs.readFileSync(path.resolve(DIST, '..', 'Dockerfile'), 'utf8');
    for (const want of ['/opt/bin/flanneld', '/opt/bin/install-conf', 'iptables', 'nftables', 'wireguard-tools', 'wireguard-go', 'npm ci', 'iptables-wrapper.sh', 'org.opencontainers.image.version']) assert.ok(text.includes(want), want);
    const pkg = JSON.parse(fs.readFileSync(path.resolve(DIST, '..', 'package.json'), 'utf8')) as { bin: Record<string, string> };
    for (const [name, file] of Object.entries(pkg.bin)) assert.ok(fs.existsSync(path.resolve(DIST, '..', file)), `${name} → ${file}`);
  });
});

describe('the Dockerfile, checked without building it (no registry here)', () => {
  const root = path.resolve(DIST, '..');
  const text = fs.readFileSync(path.join(root, 'Dockerfile'), 'utf8');

  test('a current Node LTS base, every COPY source present and not excluded by .dockerignore', () => {
    const node = /^ARG NODE_VERSION=(\d+)$/m.exec(text);
    assert.ok(node && Number(node[1]) >= 22, 'Node 20 is past its end of life');
    const ignored = fs.readFileSync(path.join(root, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
    const sources = [...text.matchAll(/^COPY (?!--from)(.+) \S+$/gm)].flatMap((m) => m[1]!.split(/\s+/));
    assert.ok(sources.length >= 10, sources.join(' '));
    for (const src of sources) {
      assert.ok(fs.existsSync(path.join(root, src)), `COPY ${src}: missing`);
      assert.ok(!ignored.includes(src), `COPY ${src} is excluded by .dockerignore`);
    }
    for (const stage of [...text.matchAll(/^FROM (\S+)/gm)].map((m) => m[1]!)) assert.match(stage, /^node:\$\{NODE_VERSION\}-bookworm(-slim)?$/);
    assert.match(text, /^RUN npm ci/m);
    assert.ok(!fs.existsSync(path.join(root, '.npmrc')) || !/loglevel\s*=\s*silent/.test(fs.readFileSync(path.join(root, '.npmrc'), 'utf8')), 'nothing silences npm: a hand-run npm ci shows its errors');
  });
});

describe('dist/mk-docker-opts.sh: upstream\'s options and output, from the subnet.env flanneld writes', () => {
  const script = path.join(DIST, 'mk-docker-opts.sh');
  const run = (args: string[], env: NodeJS.ProcessEnv = {}): { out: string; stderr: string; status: number | null } => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mkdo-'));
    try {
      const subnetEnv = path.join(dir, 'subnet.env');
      writeSubnetEnv(subnetEnv, { network: Ipv4Net.parse('10.1.0.0/16'), subnet: Ipv4Net.parse('10.1.74.0/24'), ipv6Network: undefined, ipv6Subnet: undefined, mtu: 1472, ipMasq: false });
      const out = path.join(dir, 'docker_opts.env');
      const r = spawnSync('sh', [script, '-f', subnetEnv, '-d', out, ...args], { encoding: 'utf8', env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', ...env } });
      return { out: fs.existsSync(out) ? fs.readFileSync(out, 'utf8') : '', stderr: r.stderr, status: r.status };
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  };
  const cases: Array<[string, string[], string]> = [
    ['default', [], 'DOCKER_OPT_BIP="--bip=10.1.74.1/24"\nDOCKER_OPT_IPMASQ="--ip-masq=true"\nDOCKER_OPT_MTU="--mtu=1472"\nDOCKER_OPTS=" --bip=10.1.74.1/24 --ip-masq=true --mtu=1472"\n'],
    ['-i', ['-i'], 'DOCKER_OPT_BIP="--bip=10.1.74.1/24"\nDOCKER_OPT_IPMASQ="--ip-masq=true"\nDOCKER_OPT_MTU="--mtu=1472"\n'],
    ['-c', ['-c'], 'DOCKER_OPTS=" --bip=10.1.74.1/24 --ip-masq=true --mtu=1472"\n'],
    ['-k', ['-k', 'CUSTOM_KEY'], 'DOCKER_OPT_BIP="--bip=10.1.74.1/24"\nDOCKER_OPT_IPMASQ="--ip-masq=true"\nDOCKER_OPT_MTU="--mtu=1472"\nCUSTOM_KEY=" --bip=10.1.74.1/24 --ip-masq=true --mtu=1472"\n'],
    ['-m', ['-m'], 'DOCKER_OPT_BIP="--bip=10.1.74.1/24"\nDOCKER_OPT_MTU="--mtu=1472"\nDOCKER_OPTS=" --bip=10.1.74.1/24 --mtu=1472"\n'],
  ];
  for (const [name, args, want] of cases) {
    test(`${name}: exactly upstream's lines`, () => {
      const r = run(args);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.out, want);
    });
  }
  test('the combined variable keeps a value it already has; a bad FLANNEL_IPMASQ fails', () => {
    assert.equal(run(['-c'], { DOCKER_OPTS: '--debug' }).out, 'DOCKER_OPTS="--debug  --bip=10.1.74.1/24 --ip-masq=true --mtu=1472"\n');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mkdo-'));
    try {
      fs.writeFileSync(path.join(dir, 's.env'), 'FLANNEL_SUBNET=10.9.1.1/24\nFLANNEL_IPMASQ=maybe\n');
      const r = spawnSync('sh', [script, '-f', path.join(dir, 's.env'), '-d', path.join(dir, 'o')], { encoding: 'utf8' });
      assert.equal(r.status, 1);
      assert.match(r.stderr, /Invalid value of FLANNEL_IPMASQ: maybe/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('dist/iptables-wrapper.sh: the host\'s iptables backend', () => {
  /** Stub backends: each -save prints `rules` rule lines (and the kubelet hint when asked); each tool echoes its name. */
  function stubs(dir: string, legacy: { rules: number; hint?: boolean }, nft: { rules: number; hint?: boolean }): void {
    for (const [mode, s] of [['legacy', legacy], ['nft', nft]] as const) {
      for (const fam of ['iptables', 'ip6tables']) {
        const lines = [':KUBE-IPTABLES-HINT - [0:0]'].filter(() => s.hint && fam === 'iptables').concat(Array.from({ length: fam === 'iptables' ? s.rules : 0 }, (_, i) => `-A X -j ACCEPT # ${i}`));
        fs.writeFileSync(path.join(dir, `${fam}-${mode}-save`), `#!/bin/sh\nprintf '%s\\n' ${lines.map((l) => `'${l}'`).join(' ') || "''"}\n`, { mode: 0o755 });
        for (const tool of [`${fam}-${mode}`, `${fam}-${mode}-restore`]) fs.writeFileSync(path.join(dir, tool), `#!/bin/sh\necho ${tool} "$@"\n`, { mode: 0o755 });
      }
    }
    for (const t of ['iptables', 'iptables-save', 'ip6tables-restore']) fs.symlinkSync(path.join(DIST, 'iptables-wrapper.sh'), path.join(dir, t));
  }
  const call = (dir: string, tool: string, args: string[]) =>
    spawnSync(path.join(dir, tool), args, { encoding: 'utf8', env: { PATH: `${dir}:/usr/bin:/bin`, IPTABLES_WRAPPER_MODE_FILE: path.join(dir, 'mode') } });

  for (const [name, legacy, nft, want] of [
    ['the backend with more rules', { rules: 5 }, { rules: 1 }, 'legacy'],
    ['nft when neither has rules', { rules: 0 }, { rules: 0 }, 'nft'],
    ["the kubelet's hint over the rule count", { rules: 9 }, { rules: 0, hint: true }, 'nft'],
  ] as const) {
    test(`${name}: ${want}`, () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iptw-'));
      try {
        stubs(dir, legacy, nft);
        const r = call(dir, 'iptables', ['-t', 'nat', '-S']);
        assert.equal(r.status, 0, r.stderr);
        assert.equal(r.stdout.trim(), `iptables-${want} -t nat -S`);
        assert.equal(fs.readFileSync(path.join(dir, 'mode'), 'utf8').trim(), want, 'remembered');
        assert.equal(call(dir, 'ip6tables-restore', ['--noflush']).stdout.trim(), `ip6tables-${want}-restore --noflush`);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
  }
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
