/**
 * Naming what went wrong in a TLS handshake, for the etcd and Kubernetes API
 * clients: Node's TLS errors (OpenSSL's verify codes, Node's hostname
 * check, the alerts a server sends) come wrapped in gRPC or HTTP client
 * errors; this finds them in the message or code and says, in plain words,
 * the cause and what to change. flanneld never retries without TLS or
 * without verification: a TLS failure stays a failure until fixed.
 */

export interface TlsProblem {
  /** What is wrong, e.g. "the server's certificate has expired". */
  cause: string;
  /** What to change. */
  fix: string;
}

/** What the operator configured, for the fix text (the flags or the kubeconfig). */
export interface TlsSettings {
  /** Where the trusted CA comes from, e.g. "-etcd-cafile /etc/ssl/etcd/ca.crt". */
  ca: string;
  /** Where the client certificate comes from, e.g. "-etcd-certfile and -etcd-keyfile". */
  clientCert: string;
}

interface Rule {
  pattern: RegExp;
  problem: (s: TlsSettings) => TlsProblem;
}

const RULES: readonly Rule[] = [
  {
    pattern: /CERT_HAS_EXPIRED|certificate has expired/i,
    problem: () => ({ cause: "the server's certificate has expired", fix: "renew the server's certificate" }),
  },
  {
    pattern: /CERT_NOT_YET_VALID|certificate is not yet valid/i,
    problem: () => ({ cause: "the server's certificate is not valid yet", fix: "check the clocks of this node and of the server" }),
  },
  {
    pattern: /ERR_TLS_CERT_ALTNAME_INVALID|does not match certificate's altnames|Hostname\/IP does not match/i,
    problem: () => ({
      cause: "the server's certificate is not issued for the address flanneld connects to",
      fix: "connect to a name or address listed in the certificate's subjectAltName, or reissue the certificate with this one",
    }),
  },
  {
    pattern: /SELF_SIGNED_CERT_IN_CHAIN|DEPTH_ZERO_SELF_SIGNED_CERT|UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT|self[- ]signed certificate|unable to verify the first certificate|unable to get (local )?issuer certificate/i,
    problem: (s) => ({ cause: "the server's certificate is not signed by a CA flanneld trusts", fix: `check ${s.ca}: it must hold the CA that signed the server's certificate` }),
  },
  {
    pattern: /certificate required|alert bad certificate|alert unknown ca|alert certificate unknown|alert decrypt error|alert access denied|alert handshake failure/i,
    problem: (s) => ({
      cause: "the server refused this client's certificate (or wanted one and got none)",
      fix: `check ${s.clientCert}: the server must trust the CA that signed them`,
    }),
  },
  {
    pattern: /wrong version number|packet length too long|http request/i,
    problem: () => ({ cause: 'the server does not speak TLS on that port (or speaks only TLS)', fix: 'use http:// or https:// as the server expects' }),
  },
];

/** The TLS problem named in `e` (its message, code and causes), or undefined when it is not one. */
export function tlsProblem(e: unknown, settings: TlsSettings): TlsProblem | undefined {
  const texts: string[] = [];
  let cur: unknown = e;
  for (let depth = 0; cur !== undefined && cur !== null && depth < 5; depth++) {
    if (typeof cur === 'object') {
      const o = cur as { message?: unknown; code?: unknown; details?: unknown; cause?: unknown; reason?: unknown };
      for (const v of [o.message, o.code, o.details, o.reason]) if (typeof v === 'string') texts.push(v);
      cur = o.cause;
    } else {
      texts.push(String(cur));
      break;
    }
  }
  const all = texts.join(' | ');
  for (const r of RULES) if (r.pattern.test(all)) return r.problem(settings);
  return undefined;
}
