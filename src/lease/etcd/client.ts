/**
 * Building the etcd v3 client (etcd3, pinned 1.1.2) from the -etcd-* flags
 * (upstream's pkg/subnet/etcd/registry.go, newEtcdClient and newTlsConfig):
 *  - TLS with a client certificate when both -etcd-certfile and
 *    -etcd-keyfile are given (CA from -etcd-cafile, else the system roots);
 *  - -etcd-cafile alone is honoured (server verification without a
 *    client certificate); upstream ignores it;
 *  - otherwise https:// endpoints use the system roots and http:// ones
 *    are plain (with upstream's warning);
 *  - -etcd-username/-etcd-password for etcd's simple auth;
 *  - every unary request has a deadline (upstream has none), and the gRPC
 *    channel sends keepalive pings so a dead connection is noticed.
 */
import * as fs from 'node:fs';
import { circuitBreaker, ConsecutiveBreaker, handleWhen, retry } from 'cockatiel';
import { Etcd3, type IOptions, isRecoverableError } from 'etcd3';
import type { Logger } from '../../logging';
import { errorText, NamedError } from '../../util/errors';
import { ETCD_RETRY_INITIAL_MS, ETCD_RETRY_MAX_MS } from './backoff-policy';
import { isResponseTooLarge, MAX_ETCD_RESPONSE_BYTES } from './errors';

/** The -etcd-* flags. */
export interface EtcdClientConfig {
  /** -etcd-endpoints split on ',' verbatim (upstream does not trim). */
  endpoints: readonly string[];
  prefix: string;
  keyFile: string;
  certFile: string;
  caFile: string;
  username: string;
  password: string;
}

/** Default deadline of one unary etcd request. */
export const ETCD_REQUEST_TIMEOUT_MS = 5000;

export class EtcdTlsFileError extends NamedError {
  constructor(readonly flag: string, readonly file: string, cause: unknown) {
    super(`cannot read ${flag} ${file}: ${errorText(cause)}`, { cause });
  }
}

function readTlsFile(flag: string, file: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (e) {
    throw new EtcdTlsFileError(flag, file, e);
  }
}

export interface EtcdClientOptions {
  requestTimeoutMs?: number;
}

/** The etcd3 options for `cfg` (exported for tests). */
export function etcdClientOptions(cfg: EtcdClientConfig, log: Logger, opts: EtcdClientOptions = {}): IOptions {
  const timeout = opts.requestTimeoutMs ?? ETCD_REQUEST_TIMEOUT_MS;
  const options: IOptions = {
    hosts: [...cfg.endpoints],
    dialTimeout: timeout,
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + timeout }),
    grpcOptions: {
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_timeout_ms': 5_000,
      'grpc.keepalive_permit_without_calls': 1,
      // grpc-js waits up to 120 s between reconnects by default; after an
      // etcd outage we want to be back within seconds: the etcd retry schedule.
      'grpc.initial_reconnect_backoff_ms': ETCD_RETRY_INITIAL_MS,
      'grpc.max_reconnect_backoff_ms': ETCD_RETRY_MAX_MS,
      // grpc-js refuses responses over 4 MiB by default, while one etcd value
      // may be 1.5 MiB: listings are paged (./etcd3-kv.ts) and watch
      // responses fragmented (./watch-stream.ts) so that one answer stays
      // well under this.
      'grpc.max_receive_message_length': MAX_ETCD_RESPONSE_BYTES,
    },
    // etcd3's default fault handling counts every "recoverable" error against
    // the endpoint and opens its circuit breaker after three, failing every
    // request for 5 s; an answer too large says nothing about etcd's health.
    faultHandling: {
      host: () => circuitBreaker(handleWhen(countsAgainstEtcd), { halfOpenAfter: 5_000, breaker: new ConsecutiveBreaker(3) }),
      global: retry(handleWhen(countsAgainstEtcd), { maxAttempts: 3 }),
    },
  };
  if (cfg.certFile !== '' && cfg.keyFile !== '') {
    options.credentials = {
      // With no CA file the system roots verify the server (rootCertificate undefined).
      rootCertificate: cfg.caFile !== '' ? readTlsFile('-etcd-cafile', cfg.caFile) : (undefined as unknown as Buffer),
      privateKey: readTlsFile('-etcd-keyfile', cfg.keyFile),
      certChain: readTlsFile('-etcd-certfile', cfg.certFile),
    };
  } else if (cfg.caFile !== '') {
    options.credentials = { rootCertificate: readTlsFile('-etcd-cafile', cfg.caFile) };
  } else if (cfg.certFile !== '' || cfg.keyFile !== '') {
    log.warn({}, 'only one of -etcd-certfile and -etcd-keyfile is set: both are needed for a client certificate; connecting without one');
  }
  if (!options.credentials && cfg.endpoints.some((e) => e.startsWith('http://'))) {
    log.warn({}, 'no certificate provided: connecting to etcd with http. This is insecure');
  }
  if (cfg.username !== '' || cfg.password !== '') {
    options.auth = { username: cfg.username, password: cfg.password };
  }
  return options;
}

/** Whether an error says etcd (or the way to it) is unwell: etcd3's rule, without an answer that was merely too large. */
function countsAgainstEtcd(e: Error): boolean {
  return isRecoverableError(e) && !isResponseTooLarge(e);
}

export function createEtcdClient(cfg: EtcdClientConfig, log: Logger, opts: EtcdClientOptions = {}): Etcd3 {
  return new Etcd3(etcdClientOptions(cfg, log, opts));
}
