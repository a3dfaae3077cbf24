/**
 * A throwaway PKI for TLS tests, made with the openssl CLI: a CA, a server
 * certificate for 127.0.0.1 and a client certificate.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface TestPki {
  caFile: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** `serverIps`: more IP SANs for the server certificate than 127.0.0.1. */
export function makeTestPki(dir: string, serverIps: readonly string[] = []): TestPki {
  fs.mkdirSync(dir, { recursive: true });
  const ext = path.join(dir, 'server.ext');
  const sans = ['IP:127.0.0.1', ...serverIps.map((ip) => `IP:${ip}`), 'DNS:localhost'].join(',');
  fs.writeFileSync(ext, `subjectAltName=${sans}\nextendedKeyUsage=serverAuth\n`);
  const cext = path.join(dir, 'client.ext');
  fs.writeFileSync(cext, 'extendedKeyUsage=clientAuth\n');
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=flannel-ts test CA'], dir);
  for (const [name, extFile, cn] of [['server', ext, '127.0.0.1'], ['client', cext, 'flannel-client']] as const) {
    openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`], dir);
    openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', extFile], dir);
  }
  return {
    caFile: path.join(dir, 'ca.crt'),
    serverCert: path.join(dir, 'server.crt'),
    serverKey: path.join(dir, 'server.key'),
    clientCert: path.join(dir, 'client.crt'),
    clientKey: path.join(dir, 'client.key'),
  };
}

/**
 * Certificates for the ways a TLS handshake fails: a second CA nobody
 * trusts, server certificates that expired yesterday and that name another
 * address, and a client certificate signed by the untrusted CA. Together
 * with makeTestPki's good ones (made in the same folder).
 */
export interface FailurePki extends TestPki {
  otherCaFile: string;
  expiredCert: string;
  wrongNameCert: string;
  untrustedClientCert: string;
  untrustedClientKey: string;
}

export function makeFailurePki(dir: string): FailurePki {
  const good = makeTestPki(dir);
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'other-ca.key', '-out', 'other-ca.crt', '-days', '2', '-subj', '/CN=an untrusted CA'], dir);
  fs.writeFileSync(path.join(dir, 'wrong.ext'), 'subjectAltName=IP:127.0.0.2\nextendedKeyUsage=serverAuth\n');
  // The server's key and request, signed again: valid until yesterday (-days -1), and for another address.
  openssl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'expired.crt', '-days', '-1', '-extfile', 'server.ext'], dir);
  openssl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'wrong-name.crt', '-days', '2', '-extfile', 'wrong.ext'], dir);
  openssl(['x509', '-req', '-in', 'client.csr', '-CA', 'other-ca.crt', '-CAkey', 'other-ca.key', '-CAcreateserial', '-out', 'untrusted-client.crt', '-days', '2', '-extfile', 'client.ext'], dir);
  return {
    ...good,
    otherCaFile: path.join(dir, 'other-ca.crt'),
    expiredCert: path.join(dir, 'expired.crt'),
    wrongNameCert: path.join(dir, 'wrong-name.crt'),
    untrustedClientCert: path.join(dir, 'untrusted-client.crt'),
    untrustedClientKey: good.clientKey,
  };
}
