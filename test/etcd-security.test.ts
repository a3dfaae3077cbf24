/**
 * etcd client security (docs/compatibility.md §3.9): TLS with a client certificate, TLS
 * with only a CA (upstream ignores a lone -etcd-cafile), and
 * username/password auth, against real etcd servers.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';
import * as fs from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { createEtcdClient, type EtcdClientConfig } from '../src/lease/etcd/client';
import { Etcd3Kv } from '../src/lease/etcd/etcd3-kv';
import { SubnetRegistry } from '../src/lease/etcd/registry';
import { EtcdSubnetManager } from '../src/lease/etcd/subnet-manager';
import { RecordingLogger } from '../src/logging';
import { EtcdServer } from '../lab/etcd';
import { Lab } from '../lab/netns';
import { makeTestPki, type TestPki } from '../lab/tls';
import { eventually } from './helpers/eventually';

const CONFIG = '{"Network":"10.3.0.0/16"}';

function managerFor(cfg: EtcdClientConfig, log = new RecordingLogger()): EtcdSubnetManager {
  return new EtcdSubnetManager({ registry: new SubnetRegistry(new Etcd3Kv(createEtcdClient(cfg, log), cfg.endpoints, log), cfg.prefix, log), log, configRetryMs: 100 });
}

const base = (endpoint: string, prefix = '/coreos.com/network'): EtcdClientConfig => ({
  endpoints: [endpoint],
  prefix,
  keyFile: '',
  certFile: '',
  caFile: '',
  username: '',
  password: '',
});

describe('etcd over TLS', () => {
  let lab: Lab;
  let pki: TestPki;
  let mutual: EtcdServer;
  let serverOnly: EtcdServer;

  before(async () => {
    lab = new Lab();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${lab.prefix}-pki-`));
    lab.onCleanup(() => fs.rmSync(dir, { recursive: true, force: true }));
    pki = makeTestPki(dir);
    mutual = await EtcdServer.start(lab, { tls: { certFile: pki.serverCert, keyFile: pki.serverKey, caFile: pki.caFile, clientCertAuth: true } });
    serverOnly = await EtcdServer.start(lab, { tls: { certFile: pki.serverCert, keyFile: pki.serverKey } });
    const ctl = (ep: string, ...a: string[]) =>
      execFileSync('etcdctl', ['--endpoints', ep, '--cacert', pki.caFile, '--cert', pki.clientCert, '--key', pki.clientKey, ...a], { env: { ...process.env, ETCDCTL_API: '3' } });
    ctl(mutual.endpoint, 'put', '/coreos.com/network/config', CONFIG);
    ctl(serverOnly.endpoint, 'put', '/coreos.com/network/config', CONFIG);
  });
  after(async () => {
    await lab?.cleanup();
  });

  test('client certificate + key + CA', async () => {
    const m = managerFor({ ...base(mutual.endpoint), certFile: pki.clientCert, keyFile: pki.clientKey, caFile: pki.caFile });
    try {
      assert.equal((await m.getNetworkConfig(AbortSignal.timeout(10_000))).network!.toString(), '10.3.0.0/16');
    } finally {
      await m.close();
    }
  });

  test('CA only (upstream ignores it): the server is verified without a client certificate', async () => {
    const log = new RecordingLogger();
    const m = managerFor({ ...base(serverOnly.endpoint), caFile: pki.caFile }, log);
    try {
      assert.equal((await m.getNetworkConfig(AbortSignal.timeout(10_000))).subnetLen, 24);
      assert.ok(!log.records.some((r) => /This is insecure/.test(r.msg)));
    } finally {
      await m.close();
    }
  });

  test('without a client certificate a mutual-TLS server refuses, and the error says so', async () => {
    const log = new RecordingLogger();
    const m = managerFor({ ...base(mutual.endpoint), caFile: pki.caFile }, log);
    const ac = new AbortController();
    const p = m.getNetworkConfig(ac.signal).catch((e: unknown) => e);
    try {
      await eventually(() => log.records, (r) => r.some((x) => /Couldn't fetch network config/.test(x.msg)), 10_000, 'a logged failure');
    } finally {
      ac.abort();
      await p;
      await m.close();
    }
  });

  test('plain http warns that it is insecure', () => {
    const log = new RecordingLogger();
    createEtcdClient(base('http://127.0.0.1:1'), log).close();
    assert.ok(log.records.some((r) => r.msg === 'no certificate provided: connecting to etcd with http. This is insecure'));
  });

  test('an unreadable TLS file names the flag and the file', () => {
    assert.throws(() => createEtcdClient({ ...base(mutual.endpoint), caFile: '/nonexistent/ca.crt' }, new RecordingLogger()), /cannot read -etcd-cafile \/nonexistent\/ca\.crt/);
  });
});

describe('etcd username/password auth', () => {
  let lab: Lab;
  let etcd: EtcdServer;

  before(async () => {
    lab = new Lab();
    etcd = await EtcdServer.start(lab);
    const ctl = (...a: string[]) => execFileSync('etcdctl', ['--endpoints', etcd.endpoint, ...a], { env: { ...process.env, ETCDCTL_API: '3' } });
    ctl('put', '/flannel/network/config', CONFIG);
    ctl('user', 'add', 'root', '--new-user-password=rootpw');
    ctl('user', 'grant-role', 'root', 'root');
    ctl('role', 'add', 'flannel');
    ctl('role', 'grant-permission', 'flannel', '--prefix=true', 'readwrite', '/flannel/');
    ctl('user', 'add', 'flannel', '--new-user-password=flannelpw');
    ctl('user', 'grant-role', 'flannel', 'flannel');
    ctl('auth', 'enable');
  });
  after(async () => {
    await lab?.cleanup();
  });

  test('the right user and password read the config and acquire a lease', async () => {
    const m = managerFor({ ...base(etcd.endpoint, '/flannel/network'), username: 'flannel', password: 'flannelpw' });
    try {
      const signal = AbortSignal.timeout(10_000);
      await m.getNetworkConfig(signal);
      const lease = await m.acquireLease({ publicIp: 0x01020304, publicIpv6: undefined, backendType: '', backendData: undefined, backendV6Data: undefined }, signal);
      assert.equal(lease.subnet.prefixLen, 24);
    } finally {
      await m.close();
    }
  });

  test('a wrong password is reported with a hint, never with the password', async () => {
    const log = new RecordingLogger();
    const m = managerFor({ ...base(etcd.endpoint, '/flannel/network'), username: 'flannel', password: 'wrong-pw-123' }, log);
    const ac = new AbortController();
    const p = m.getNetworkConfig(ac.signal).catch((e: unknown) => e);
    try {
      await eventually(() => log.records, (r) => r.some((x) => /etcd-username\/-etcd-password/.test(x.msg)), 10_000, 'the auth hint');
      assert.doesNotMatch(JSON.stringify(log.records), /wrong-pw-123/);
    } finally {
      ac.abort();
      await p;
      await m.close();
    }
  });
});
