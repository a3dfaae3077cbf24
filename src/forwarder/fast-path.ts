/**
 * KernelFastPath: the typed face of the udp backend's kernel fast path
 * (native/bpf/udp_fastpath.bpf.c, loaded by native/linux/bpf_fastpath_linux.cc).
 * Two tc programs forward the common case in the kernel (flannel0 egress:
 * wrap and redirect to the underlay; the external interface's ingress:
 * check, unwrap and receive on flannel0); everything else reaches the
 * user-space datapath unchanged. This class loads and attaches them and
 * pushes declarative state (the routes, the source check's inputs) in one
 * update() per publication; it decides nothing.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadAddon } from '../addon/loader';
import { isNativeSystemError } from '../addon/system-error';
import { NamedError } from '../util/errors';
import { formatIpv4, type Ipv4Net } from '../util/ipv4';

/** The compiled programs, beside the addon (built by `npm run build:bpf`). */
export const FAST_PATH_OBJECT = 'udp_fastpath.bpf.o';

/** A failure to load or attach the fast path: the operation, the errno name and (load) libbpf's log. */
export class FastPathError extends NamedError {
  constructor(
    message: string,
    readonly op: string,
    readonly code: string | undefined,
    readonly log: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A route the fast path knows: a remote IPv4 subnet, its peer, and whether that peer takes the fast path's datagrams. */
export interface FastRoute {
  subnet: Ipv4Net;
  peer: string;
  port: number;
  fast: boolean;
}

export interface FastPathConfig {
  /** The IPv4 underlay address: the outer source, and where datagrams arrive. */
  localAddress: string;
  /** This node's subnet: inner destinations on ingress must lie here. */
  ownSubnet: Ipv4Net;
  tunIfindex: number;
  extIfindex: number;
  port: number;
  /** The per-flow source ports the user-space path sends from, in its order (empty: Port). */
  sourcePorts: readonly number[];
}

export interface FastPathUpdate {
  config?: FastPathConfig & { enabled: boolean };
  setRoutes?: readonly FastRoute[];
  removeRoutes?: readonly Ipv4Net[];
  /** This node's addresses (IPv6 ones are ignored: the fast path carries IPv4). */
  localAddresses?: readonly string[];
}

/** The fast path's counters by name (native/bpf/udp_fastpath.h, fp_counter). */
export type FastPathCounters = Readonly<Record<string, number>>;

interface NativeFastPath {
  attach(tunIfindex: number, extIfindex: number): void;
  update(u: Record<string, unknown>): void;
  counters(): Record<string, number>;
  testRun(which: 'egress' | 'ingress', frame: Buffer, ifindex: number): { retval: number; data: Buffer };
  close(): void;
}

interface NativeFastPathClass {
  new (objectPath: string): NativeFastPath;
  removeFilter(ifindex: number, where: 'egress' | 'ingress'): boolean;
}

function nativeClass(): NativeFastPathClass {
  return loadAddon().module['FastPath'] as NativeFastPathClass;
}

/** Where the compiled programs are: beside the addon that is loaded. */
export function fastPathObjectPath(): string {
  return path.join(path.dirname(loadAddon().file), FAST_PATH_OBJECT);
}

function wrap(e: unknown, what: string): FastPathError {
  if (isNativeSystemError(e)) {
    const log = (e as { log?: unknown }).log;
    return new FastPathError(`${what}: ${e.message}`, e.syscall, e.code, typeof log === 'string' ? log : '', { cause: e });
  }
  return new FastPathError(`${what}: ${e instanceof Error ? e.message : String(e)}`, what, undefined, '', { cause: e });
}

const prefix = (n: Ipv4Net) => ({ network: formatIpv4(n.network), prefixLen: n.prefixLen });

export class KernelFastPath {
  private constructor(private readonly native: NativeFastPath) {}

  /** Loads the programs (the kernel's verifier checks them here). */
  static load(objectPath: string = fastPathObjectPath()): KernelFastPath {
    if (!fs.existsSync(objectPath)) {
      throw new FastPathError(`the fast path's programs are missing (${objectPath}): build them with \`npm run build:bpf\` (needs clang)`, 'open', 'ENOENT', '');
    }
    const Native = nativeClass();
    try {
      return new KernelFastPath(new Native(objectPath));
    } catch (e) {
      throw wrap(e, 'loading the fast path');
    }
  }

  /** Removes a filter of ours from an interface (`flanneld cleanup`, or one left by a crash); true when there was one. */
  static removeFilter(ifindex: number, where: 'egress' | 'ingress'): boolean {
    return nativeClass().removeFilter(ifindex, where);
  }

  /** Attaches egress to flannel0 and ingress to the external interface (replacing filters of ours left there). */
  attach(tunIfindex: number, extIfindex: number): void {
    try {
      this.native.attach(tunIfindex, extIfindex);
    } catch (e) {
      throw wrap(e, 'attaching the fast path');
    }
  }

  /** One publication: config, then routes set (a replaced route is overwritten), then routes removed, then local addresses. */
  update(u: FastPathUpdate): void {
    this.native.update({
      ...(u.config ? { config: { ...u.config, ownSubnet: prefix(u.config.ownSubnet), sourcePorts: [...u.config.sourcePorts] } } : {}),
      ...(u.setRoutes ? { setRoutes: u.setRoutes.map((r) => ({ ...prefix(r.subnet), peer: r.peer, port: r.port, fast: r.fast })) } : {}),
      ...(u.removeRoutes ? { removeRoutes: u.removeRoutes.map(prefix) } : {}),
      ...(u.localAddresses ? { localAddresses: [...u.localAddresses] } : {}),
    });
  }

  counters(): FastPathCounters {
    return this.native.counters();
  }

  /** BPF_PROG_TEST_RUN on an Ethernet frame (tests). */
  testRun(which: 'egress' | 'ingress', frame: Buffer, ifindex: number): { retval: number; data: Buffer } {
    return this.native.testRun(which, frame, ifindex);
  }

  /** Detaches the filters and releases the programs and maps. Idempotent. */
  close(): void {
    this.native.close();
  }
}

/** tc action codes (linux/pkt_cls.h) the programs return. */
export const TC_ACT_OK = 0;
export const TC_ACT_SHOT = 2;
export const TC_ACT_REDIRECT = 7;
