/**
 * Command line (docs/compatibility.md §1): Go flag syntax, FLANNELD_* environment, the
 * frozen config, -version/-h, and our deviations (unknown flag exits 2,
 * password never logged).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { buildConfig, ConfigError, redactedConfig } from '../src/cli/config';
import { applyEnvironment, envName, FLANNEL_FLAGS } from '../src/cli/flags';
import { FlagParseError, HelpRequested, parseGoBool, parseGoFlags, parseGoInt } from '../src/cli/go-flags';
import { run } from '../src/cli/main';
import { RecordingLogger } from '../src/logging';

const parse = (...argv: string[]) => parseGoFlags(argv, FLANNEL_FLAGS);
const cfgOf = (argv: string[], env: NodeJS.ProcessEnv = {}) => {
  const p = parse(...argv);
  applyEnvironment(p, FLANNEL_FLAGS, env);
  return buildConfig(p);
};

describe('Go flag syntax', () => {
  test('upstream defaults', () => {
    const c = cfgOf([]);
    assert.deepEqual(c.etcd.endpoints, ['http://127.0.0.1:4001', 'http://127.0.0.1:2379']);
    assert.equal(c.etcd.prefix, '/coreos.com/network');
    assert.equal(c.subnetFile, '/run/flannel/subnet.env');
    assert.equal(c.subnetLeaseRenewMarginMinutes, 60);
    assert.equal(c.iptablesResyncSeconds, 5);
    assert.equal(c.iptablesForwardRules, true);
    assert.equal(c.ipMasq, false);
    assert.equal(c.healthzIp, '0.0.0.0');
    assert.equal(c.healthzPort, 0);
    assert.equal(c.kubeAnnotationPrefix, 'flannel.alpha.coreos.com');
    assert.equal(c.netConfigPath, '/etc/kube-flannel/net-conf.json');
    assert.equal(c.setNodeNetworkUnavailable, true);
    assert.deepEqual(c.iface, []);
    assert.ok(Object.isFrozen(c) && Object.isFrozen(c.etcd) && Object.isFrozen(c.iface));
  });

  test('-name=v, --name v, -name v all set a value', () => {
    assert.equal(cfgOf(['-etcd-prefix=/a']).etcd.prefix, '/a');
    assert.equal(cfgOf(['--etcd-prefix', '/b']).etcd.prefix, '/b');
    assert.equal(cfgOf(['-etcd-prefix', '/c']).etcd.prefix, '/c');
    assert.equal(cfgOf(['--etcd-prefix=/d']).etcd.prefix, '/d');
  });

  test('endpoints are split on commas verbatim', () => {
    assert.deepEqual(cfgOf(['-etcd-endpoints=http://a:2379, http://b:2379']).etcd.endpoints, ['http://a:2379', ' http://b:2379']);
  });

  test('bools: -name sets true, -name=false unsets, -name false does not', () => {
    assert.equal(cfgOf(['-ip-masq']).ipMasq, true);
    assert.equal(cfgOf(['-iptables-forward-rules=false']).iptablesForwardRules, false);
    for (const v of ['1', 't', 'T', 'TRUE', 'true', 'True']) assert.equal(cfgOf([`-ip-masq=${v}`]).ipMasq, true, v);
    for (const v of ['0', 'f', 'F', 'FALSE', 'false', 'False']) assert.equal(cfgOf([`-ip-masq=${v}`]).ipMasq, false, v);
    // "false" is the first non-flag argument: parsing stops and the flag stays true.
    const p = parse('-iptables-forward-rules', 'false', '-ip-masq');
    assert.equal(p.values.get('iptables-forward-rules'), true);
    assert.equal(p.values.get('ip-masq'), false);
    assert.deepEqual(p.rest, ['false', '-ip-masq']);
    assert.throws(() => parse('-ip-masq=yes'), /invalid boolean value "yes" for -ip-masq: parse error/);
    assert.equal(parseGoBool('tRuE'), undefined);
  });

  test('ints take Go base prefixes and digit separators', () => {
    assert.equal(cfgOf(['-healthz-port=0x10']).healthzPort, 16);
    assert.equal(cfgOf(['-healthz-port=010']).healthzPort, 8);
    assert.equal(cfgOf(['-healthz-port=0o17']).healthzPort, 15);
    assert.equal(cfgOf(['-healthz-port=0b101']).healthzPort, 5);
    assert.equal(cfgOf(['-healthz-port=1_000']).healthzPort, 1000);
    assert.equal(cfgOf(['-subnet-lease-renew-margin', '+30']).subnetLeaseRenewMarginMinutes, 30);
    assert.equal(parseGoInt('1__0'), 'syntax');
    assert.equal(parseGoInt('_10'), 'syntax');
    assert.equal(parseGoInt('10_'), 'syntax');
    assert.equal(parseGoInt('08'), 'syntax');
    assert.equal(parseGoInt('0x'), 'syntax');
    assert.equal(parseGoInt('9223372036854775808'), 'range');
    assert.equal(parseGoInt('-9223372036854775808'), -9223372036854775808);
    assert.throws(() => parse('-healthz-port=abc'), /invalid value "abc" for flag -healthz-port: parse error/);
    // klog's -v is base 10 only.
    assert.equal(cfgOf(['-v=010']).verbosity, 10);
  });

  test('repeatable -iface and -iface-regex keep every occurrence in order', () => {
    const c = cfgOf(['-iface=eth1', '--iface', '10.0.0.5', '-iface-regex=^en', '-iface-regex', '^wl']);
    assert.deepEqual(c.iface, ['eth1', '10.0.0.5']);
    assert.deepEqual(c.ifaceRegex, ['^en', '^wl']);
  });

  test('-- and a lone - end the flags', () => {
    assert.deepEqual(parse('-ip-masq', '--', '-iface=x').rest, ['-iface=x']);
    assert.deepEqual(parse('-', '-ip-masq').rest, ['-', '-ip-masq']);
  });

  test('errors use Go\'s words', () => {
    assert.throws(() => parse('-nosuch'), (e: unknown) => e instanceof FlagParseError && e.message === 'flag provided but not defined: -nosuch');
    assert.throws(() => parse('-etcd-prefix'), /flag needs an argument: -etcd-prefix/);
    assert.throws(() => parse('---x'), /bad flag syntax: ---x/);
    assert.throws(() => parse('-=x'), /bad flag syntax: -=x/);
    assert.throws(() => parse('-h'), HelpRequested);
    assert.throws(() => parse('--help'), HelpRequested);
  });

  test('the renew margin must be 1..1439 (upstream\'s text)', () => {
    assert.throws(() => cfgOf(['-subnet-lease-renew-margin=0']), (e: unknown) => e instanceof ConfigError && e.message === 'Invalid subnet-lease-renew-margin option, out of acceptable range');
    assert.throws(() => cfgOf(['-subnet-lease-renew-margin=1440']), ConfigError);
    assert.equal(cfgOf(['-subnet-lease-renew-margin=1439']).subnetLeaseRenewMarginMinutes, 1439);
  });
});

describe('FLANNELD_* environment', () => {
  test('names: upper case, - and . as _', () => {
    assert.equal(envName('etcd-endpoints'), 'FLANNELD_ETCD_ENDPOINTS');
    assert.equal(envName('iface-can-reach'), 'FLANNELD_IFACE_CAN_REACH');
    assert.equal(envName('ip-masq-fully-random-disable'), 'FLANNELD_IP_MASQ_FULLY_RANDOM_DISABLE');
    assert.equal(envName('kubeconfig-file'), 'FLANNELD_KUBECONFIG_FILE');
    assert.equal(envName('v'), 'FLANNELD_V');
    assert.equal(envName('log_backtrace_at'), 'FLANNELD_LOG_BACKTRACE_AT');
  });

  test('command line > environment > default; empty values ignored', () => {
    const env = { FLANNELD_ETCD_PREFIX: '/from-env', FLANNELD_SUBNET_FILE: '', FLANNELD_IP_MASQ: 'true', FLANNELD_HEALTHZ_PORT: '0x1f90' };
    const c = cfgOf(['-etcd-prefix=/from-cli'], env);
    assert.equal(c.etcd.prefix, '/from-cli');
    assert.equal(c.subnetFile, '/run/flannel/subnet.env');
    assert.equal(c.ipMasq, true);
    assert.equal(c.healthzPort, 8080);
  });

  test('a repeatable flag gets exactly one element from the environment', () => {
    assert.deepEqual(cfgOf([], { FLANNELD_IFACE: 'eth0,eth1' }).iface, ['eth0,eth1']);
    assert.deepEqual(cfgOf(['-iface=eth2'], { FLANNELD_IFACE: 'eth0' }).iface, ['eth2']);
  });

  test('a value that does not parse keeps the default and is reported', () => {
    const p = parse();
    const problems = applyEnvironment(p, FLANNEL_FLAGS, { FLANNELD_HEALTHZ_PORT: 'eighty', FLANNELD_IP_MASQ: 'maybe' });
    assert.deepEqual(problems.map((x) => x.variable).sort(), ['FLANNELD_HEALTHZ_PORT', 'FLANNELD_IP_MASQ']);
    const c = buildConfig(p);
    assert.equal(c.healthzPort, 0);
    assert.equal(c.ipMasq, false);
  });
});

describe('flanneld entry point', () => {
  const io = (env: NodeJS.ProcessEnv = {}) => {
    let err = '';
    const log = new RecordingLogger();
    let daemonCfg: unknown;
    return {
      get err() {
        return err;
      },
      log,
      get daemonCfg() {
        return daemonCfg;
      },
      opts: {
        env,
        stderr: (s: string) => void (err += s),
        argv0: 'flanneld',
        createLogger: () => log,
        runDaemon: async (c: unknown) => {
          daemonCfg = c;
          return 0;
        },
      },
    };
  };

  test('-version prints to stderr and exits 0, before the environment is read', async () => {
    const x = io({ FLANNELD_VERSION: 'false', FLANNELD_HEALTHZ_PORT: 'junk' });
    assert.equal(await run(['-version'], x.opts), 0);
    assert.match(x.err, /^\d+\.\d+\.\d+\n$/);
    assert.equal(x.log.records.length, 0);
    const y = io({ FLANNELD_VERSION: 'true' });
    assert.equal(await run([], y.opts), 0);
    assert.ok(y.daemonCfg, 'FLANNELD_VERSION has no effect');
  });

  test('-h prints usage and exits 0; an unknown flag prints usage and exits 2', async () => {
    const h = io();
    assert.equal(await run(['-h'], h.opts), 0);
    assert.match(h.err, /^Usage: flanneld \[OPTION\]\.\.\.\n/);
    assert.match(h.err, /  -etcd-endpoints string\n    \ta comma-delimited list of etcd endpoints \(default "http:\/\/127\.0\.0\.1:4001,http:\/\/127\.0\.0\.1:2379"\)/);
    const u = io();
    assert.equal(await run(['-etcd-endpoint=x'], u.opts), 2);
    assert.match(u.err, /^flag provided but not defined: -etcd-endpoint\nUsage: flanneld/);
    assert.equal(u.daemonCfg, undefined);
  });

  test('the etcd password is never logged', async () => {
    const x = io({ FLANNELD_ETCD_PASSWORD: 's3cret-pw' });
    assert.equal(await run(['-etcd-username=flannel'], x.opts), 0);
    const dump = JSON.stringify(x.log.records);
    assert.doesNotMatch(dump, /s3cret-pw/);
    assert.match(dump, /CLI flags config/);
    assert.match(dump, /<redacted>/);
    assert.equal((x.daemonCfg as { etcd: { password: string } }).etcd.password, 's3cret-pw', 'the daemon still gets it');
    assert.equal((redactedConfig(cfgOf([])).etcd as { password: string }).password, '');
    assert.equal((redactedConfig(cfgOf(['-etcd-password=x'])).etcd as { password: string }).password, '<redacted>');
  });

  test('-kube-subnet-mgr and its flags reach the daemon (from the command line and FLANNELD_*)', async () => {
    const x = io({ FLANNELD_KUBE_ANNOTATION_PREFIX: 'example.com/pfx', FLANNELD_SET_NODE_NETWORK_UNAVAILABLE: 'false' });
    assert.equal(await run(['--kube-subnet-mgr', '-kubeconfig-file=/tmp/k', '--net-config-path', '/tmp/net-conf.json'], x.opts), 0);
    const cfg = x.daemonCfg as { kubeSubnetMgr: boolean; kubeconfigFile: string; netConfigPath: string; kubeAnnotationPrefix: string; setNodeNetworkUnavailable: boolean };
    assert.deepEqual(
      [cfg.kubeSubnetMgr, cfg.kubeconfigFile, cfg.netConfigPath, cfg.kubeAnnotationPrefix, cfg.setNodeNetworkUnavailable],
      [true, '/tmp/k', '/tmp/net-conf.json', 'example.com/pfx', false],
    );
  });

  test('a bad renew margin exits 1 with upstream\'s message', async () => {
    const x = io();
    assert.equal(await run(['-subnet-lease-renew-margin=2000'], x.opts), 1);
    assert.match(JSON.stringify(x.log.records), /Invalid subnet-lease-renew-margin option, out of acceptable range/);
  });

  test('an env value that does not parse is logged and the default kept', async () => {
    const x = io({ FLANNELD_IPTABLES_RESYNC: 'soon' });
    assert.equal(await run([], x.opts), 0);
    assert.match(JSON.stringify(x.log.records), /Failed to set flag FLANNELD from env FLANNELD_IPTABLES_RESYNC/);
    assert.equal((x.daemonCfg as { iptablesResyncSeconds: number }).iptablesResyncSeconds, 5);
  });
});
