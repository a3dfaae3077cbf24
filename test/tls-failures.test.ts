/**
 * TLS failing both ways, with etcd (real etcd servers) and with the
 * Kubernetes API (the stand-in over HTTPS): a server certificate signed by
 * a CA flanneld does not trust, one issued for another address, one that
 * expired, and a client certificate the server refuses. Each attempt fails
 * with a message that names the cause and the fix, and flanneld never falls
 * back to plain or unverified connections: every server here holds a valid
 * network config / node list, so any fallback would succeed.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { EtcdServer } from '../lab/etcd';
import { KubeApiStandIn } from '../lab/kube-apiserver';
import { writeKubeconfig } from '../lab/kubeconfig';
import { Lab } from '../lab/netns';
import { type FailurePki, makeFailurePki } from '../lab/tls';
import { createEtcdClient, type EtcdClientConfig } from '../src/lease/etcd/client';
import { Etcd3Kv } from '../src/lease/etcd/etcd3-kv';
import { SubnetRegistry } from '../src/lease/etcd/registry';
import { EtcdSubnetManager } from '../src/lease/etcd/subnet-manager';
import { KubeSubnetManager, TEST_TIMINGS_ENV } from '../src/lease/kube/kube-subnet-manager';
import { RecordingLogger } from '../src/logging';
import { eventually } from './helpers/eventually';

const CAUSES = {
  wrongCa: /the server's certificate is not signed by a CA flanneld trusts\. Fix: check /,
  wrongName: /the server's certificate is not issued for the address flanneld connects to\. Fix: /,
  expired: /the server's certificate has expired\. Fix: renew the server's certificate/,
  clientRefused: /the server refused this client's certificate \(or wanted one and got none\)\. Fix: check /,
};

describe('TLS failures are named, and never fall back', () => {
  let lab: Lab;
  let pki: FailurePki;
  let dir: string;

  before(() => {
    lab = new Lab();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), `${lab.prefix}-tls-`));
    lab.onCleanup(() => fs.rmSync(dir, { recursive: true, force: true }));
    pki = makeFailurePki(dir);
  });
  after(async () => {
    await lab?.cleanup();
  });

  const etcds: Record<'expired' | 'wrongName' | 'mutual', EtcdServer> = {} as never;

  describe('etcd', () => {
    const servers = etcds;

    before(async () => {
      servers.expired = await EtcdServer.start(lab, { tls: { certFile: pki.expiredCert, keyFile: pki.serverKey } });
      servers.wrongName = await EtcdServer.start(lab, { tls: { certFile: pki.wrongNameCert, keyFile: pki.serverKey } });
      servers.mutual = await EtcdServer.start(lab, { tls: { certFile: pki.serverCert, keyFile: pki.serverKey, caFile: pki.caFile, clientCertAuth: true } });
      for (const s of Object.values(servers)) {
        // Written with a client that skips verification, so every server holds a config a fallback could read.
        execFileSync('etcdctl', ['--endpoints', s.endpoint, '--insecure-skip-tls-verify', '--insecure-transport=false', '--cert', pki.clientCert, '--key', pki.clientKey, 'put', '/coreos.com/network/config', '{"Network":"10.3.0.0/16"}'], {
          env: { ...process.env, ETCDCTL_API: '3' },
        });
      }
    });

    async function fails(server: EtcdServer, tls: Partial<EtcdClientConfig>, cause: RegExp): Promise<void> {
      const log = new RecordingLogger();
      const cfg: EtcdClientConfig = { endpoints: [server.endpoint], prefix: '/coreos.com/network', keyFile: '', certFile: '', caFile: '', username: '', password: '', ...tls };
      const m = new EtcdSubnetManager({ registry: new SubnetRegistry(new Etcd3Kv(createEtcdClient(cfg, log, { requestTimeoutMs: 2000 }), cfg.endpoints, log), cfg.prefix, log), log, configRetryMs: 100 });
      const ac = new AbortController();
      let got: unknown = 'pending';
      const p = m.getNetworkConfig(ac.signal).then(
        (c) => (got = c),
        (e: unknown) => (got = e),
      );
      try {
        const lines = await eventually(() => log.records.filter((r) => /^Couldn't fetch network config: TLS with etcd failed/.test(r.msg)), (l) => l.length > 0, 15_000, 'the TLS failure logged');
        assert.match(lines[0]!.msg, cause);
        assert.equal(got, 'pending', 'it never got the config (no fallback)');
      } finally {
        ac.abort();
        await p;
        await m.close();
      }
    }

    test('a server certificate signed by a CA flanneld does not trust', () => fails(servers.mutual, { caFile: pki.otherCaFile, certFile: pki.clientCert, keyFile: pki.clientKey }, CAUSES.wrongCa));
    test('a server certificate issued for another address', () => fails(servers.wrongName, { caFile: pki.caFile }, CAUSES.wrongName));
    test('an expired server certificate', () => fails(servers.expired, { caFile: pki.caFile }, CAUSES.expired));
    test('a client certificate the server does not trust', () => fails(servers.mutual, { caFile: pki.caFile, certFile: pki.untrustedClientCert, keyFile: pki.untrustedClientKey }, CAUSES.clientRefused));
    test('no client certificate where the server wants one', () => fails(servers.mutual, { caFile: pki.caFile }, CAUSES.clientRefused));
  });

  describe('the Kubernetes API', () => {
    const TOKEN = 'flannel-sa-token';
    const netConf = () => path.join(dir, 'net-conf.json');
    const servers: Record<'expired' | 'wrongName' | 'mutual', KubeApiStandIn> = {} as never;

    before(async () => {
      fs.writeFileSync(netConf(), JSON.stringify({ Network: '10.244.0.0/16', Backend: { Type: 'udp' } }));
      servers.expired = new KubeApiStandIn({ token: TOKEN, tls: { certFile: pki.expiredCert, keyFile: pki.serverKey } });
      servers.wrongName = new KubeApiStandIn({ token: TOKEN, tls: { certFile: pki.wrongNameCert, keyFile: pki.serverKey } });
      servers.mutual = new KubeApiStandIn({ token: TOKEN, tls: { certFile: pki.serverCert, keyFile: pki.serverKey, clientCaFile: pki.caFile } });
      for (const s of Object.values(servers)) {
        await s.listen('127.0.0.1', 0);
        s.putNode({ name: 'node-a', podCIDR: '10.244.1.0/24' });
      }
    });
    after(async () => {
      for (const s of Object.values(servers)) await s.close();
    });

    async function fails(server: KubeApiStandIn, kube: { caFile: string; clientCert?: { certFile: string; keyFile: string } }, cause: RegExp): Promise<void> {
      const kubeconfig = path.join(dir, `kubeconfig-${Math.random().toString(36).slice(2)}`);
      writeKubeconfig(kubeconfig, { server: `https://127.0.0.1:${server.port}`, token: TOKEN, ...kube });
      const log = new RecordingLogger();
      const cfg = { kubeconfigFile: kubeconfig, kubeApiUrl: '', kubeAnnotationPrefix: 'flannel.alpha.coreos.com', netConfigPath: netConf(), setNodeNetworkUnavailable: true };
      await assert.rejects(KubeSubnetManager.create(cfg, { NODE_NAME: 'node-a', [TEST_TIMINGS_ENV]: '2500,1000,100' }, log, new AbortController().signal), (e: unknown) => {
        const msg = e instanceof Error ? e.message : String(e);
        assert.match(msg, /error waiting for nodeController to sync state: .*TLS with the API server failed: /);
        assert.match(msg, cause);
        return true;
      });
      assert.ok(log.records.some((r) => /^node list\/watch failed: .*TLS with the API server failed/.test(r.msg)), 'each failed attempt is logged with the cause');
    }

    test('a server certificate signed by a CA flanneld does not trust', () => fails(servers.mutual, { caFile: pki.otherCaFile, clientCert: { certFile: pki.clientCert, keyFile: pki.clientKey } }, CAUSES.wrongCa));
    test('a server certificate issued for another address', () => fails(servers.wrongName, { caFile: pki.caFile }, CAUSES.wrongName));
    test('an expired server certificate', () => fails(servers.expired, { caFile: pki.caFile }, CAUSES.expired));
    test('a client certificate the server does not trust', async () => {
      // Node's TLS server hangs up without a TLS alert where Go's (kube-apiserver's)
      // sends "bad certificate": the client side is checked against a Go server,
      // etcd requiring client certificates, which answers the handshake the same way.
      const goServer = { port: Number(new URL(etcds.mutual.endpoint).port) } as KubeApiStandIn;
      await fails(goServer, { caFile: pki.caFile, clientCert: { certFile: pki.untrustedClientCert, keyFile: pki.untrustedClientKey } }, CAUSES.clientRefused);
    });
  });
});
