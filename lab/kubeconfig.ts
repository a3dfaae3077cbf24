/** A kubeconfig file as kubeadm writes one (one cluster, one user, one context), for tests. */
import * as fs from 'node:fs';
import { stringify } from 'yaml';

export interface KubeconfigSpec {
  server: string;
  caFile?: string;
  token?: string;
  /** A client certificate and key (PEM files). */
  clientCert?: { certFile: string; keyFile: string };
}

export function writeKubeconfig(file: string, spec: KubeconfigSpec): void {
  const cluster: Record<string, string> = { server: spec.server };
  if (spec.caFile) cluster['certificate-authority-data'] = fs.readFileSync(spec.caFile).toString('base64');
  const doc = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'stand-in', cluster }],
    users: [
      {
        name: 'flannel',
        user: {
          ...(spec.token ? { token: spec.token } : {}),
          ...(spec.clientCert
            ? { 'client-certificate-data': fs.readFileSync(spec.clientCert.certFile).toString('base64'), 'client-key-data': fs.readFileSync(spec.clientCert.keyFile).toString('base64') }
            : {}),
        },
      },
    ],
    contexts: [{ name: 'flannel@stand-in', context: { cluster: 'stand-in', user: 'flannel' } }],
    'current-context': 'flannel@stand-in',
  };
  fs.writeFileSync(file, stringify(doc));
}
