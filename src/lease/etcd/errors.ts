/**
 * Typed errors of the etcd subnet manager. `recoverable` says whether
 * waiting and retrying can help without an operator acting.
 */
import { isRecoverableError } from 'etcd3';
import { errorText, NamedError } from '../../util/errors';
import { type TlsProblem, tlsProblem } from '../../util/tls-errors';

export abstract class LeaseManagerError extends NamedError {
  abstract readonly recoverable: boolean;
}

/** etcd could not be reached or did not answer in time. */
export class EtcdUnavailableError extends LeaseManagerError {
  readonly recoverable = true;
  constructor(readonly op: string, readonly endpoints: readonly string[], cause: unknown) {
    super(`etcd is unreachable (${op}; endpoints ${endpoints.join(', ')}): ${errorText(cause)}`, { cause });
  }
}

/**
 * The TLS handshake with etcd failed: the message names the cause and the
 * fix. Retried like an unreachable etcd (a certificate may be renewed or a
 * CA file replaced while flanneld waits), never without TLS or verification.
 */
export class EtcdTlsError extends LeaseManagerError {
  readonly recoverable = true;
  constructor(readonly op: string, readonly endpoints: readonly string[], readonly problem: TlsProblem, cause: unknown) {
    super(`TLS with etcd failed (${op}; endpoints ${endpoints.join(', ')}): ${problem.cause}. Fix: ${problem.fix}`, { cause });
  }
}

/** Where flanneld's etcd TLS settings come from, for the fix texts. */
const ETCD_TLS_SETTINGS = { ca: '-etcd-cafile (without it, the system CAs)', clientCert: '-etcd-certfile and -etcd-keyfile' };

/**
 * etcd's answer was larger than flanneld accepts (MAX_ETCD_RESPONSE_BYTES):
 * the store holds something far larger than lease records are. Not an
 * unreachable etcd: listings page around it, and the request is not counted
 * against etcd's health (the client's circuit breaker ignores it).
 */
export class EtcdResponseTooLargeError extends LeaseManagerError {
  readonly recoverable = false;
  constructor(readonly op: string, readonly limitBytes: number, cause: unknown) {
    super(`etcd's answer to ${op} is larger than flanneld accepts (${limitBytes} bytes): ${errorText(cause)}`, { cause });
  }
}

/** What flanneld accepts of one etcd response (gRPC's receive limit; its default is 4 MiB). */
export const MAX_ETCD_RESPONSE_BYTES = 16 * 1024 * 1024;

/** The error of a response over the receive limit (gRPC RESOURCE_EXHAUSTED). */
export function isResponseTooLarge(e: unknown): boolean {
  return e instanceof Error && (e.constructor.name === 'GRPCResourceExhastedError' || /RESOURCE_EXHAUSTED|larger than max/i.test(e.message));
}

/** etcd answered with an error retrying will not fix (permission denied, bad request, ...). */
export class EtcdRequestError extends LeaseManagerError {
  readonly recoverable = false;
  constructor(readonly op: string, cause: unknown, hint?: string) {
    super(`etcd rejected ${op}: ${errorText(cause)}${hint ? `. ${hint}` : ''}`, { cause });
  }
}

/** `<prefix>/config` does not exist (upstream's text, plus the key and an example). */
export class ConfigNotFoundError extends LeaseManagerError {
  readonly recoverable = true;
  constructor(readonly key: string, readonly example: string) {
    super(`flannel config not found in etcd store. Did you create your config using etcdv3 API? Write ${key}, e.g.: ${example}`);
  }
}

/** The key we tried to create (or rewrite) changed under us: another node won the race. */
export class LeaseTakenError extends LeaseManagerError {
  readonly recoverable = true;
  constructor(readonly key: string) {
    super(`subnet already exists: ${key}`);
  }
}

/** Our own lease is gone or belongs to someone else now. */
export class LeaseLostError extends LeaseManagerError {
  readonly recoverable = false;
  constructor(readonly key: string, readonly reason: string) {
    super(`lease ${key} lost: ${reason}`);
  }
}

const AUTH_HINT =
  'Check -etcd-username/-etcd-password (and that the user may read and write the flannel prefix), or the TLS files';

/** Classifies an error from the etcd3 client. */
export function classifyEtcdError(e: unknown, op: string, endpoints: readonly string[]): LeaseManagerError {
  if (e instanceof LeaseManagerError) return e;
  if (isResponseTooLarge(e)) return new EtcdResponseTooLargeError(op, MAX_ETCD_RESPONSE_BYTES, e);
  const tls = tlsProblem(e, ETCD_TLS_SETTINGS);
  if (tls) return new EtcdTlsError(op, endpoints, tls, e);
  const name = e instanceof Error ? e.constructor.name : '';
  if (/PermissionDenied|AuthenticationFailed|Unauthenticated|InvalidAuthToken|UserNotFound/.test(name)) {
    return new EtcdRequestError(op, e, AUTH_HINT);
  }
  if (e instanceof Error && (isRecoverableError(e) || /BrokenCircuit|ClientClosed|Unavailable|ECONNREFUSED|deadline/i.test(`${name} ${e.message}`))) {
    return new EtcdUnavailableError(op, endpoints, e);
  }
  if (/InvalidArgument|FailedPrecondition|OutOfRange|NotImplemented/.test(name)) return new EtcdRequestError(op, e);
  // Anything else (including unknown client errors) is treated as transient:
  // the control loops retry with backoff rather than give up on the network.
  return new EtcdUnavailableError(op, endpoints, e);
}
