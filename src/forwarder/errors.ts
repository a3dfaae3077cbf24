/**
 * Typed errors of the datapath, built from the `{syscall, errno, code}` the
 * native addon throws. Each says what failed, in upstream's words where an
 * operator may grep for them, and what to do about it.
 */

import { isNativeSystemError, type NativeSystemError } from '../addon/system-error';
import { NamedError } from '../util/errors';

/** Base of every datapath setup error. */
export class DatapathError extends NamedError {
  constructor(
    message: string,
    /** The failing operation, e.g. "ioctl TUNSETIFF". */
    readonly op: string,
    /** The errno name, e.g. "EPERM"; undefined when not a system error. */
    readonly code: string | undefined,
    /** Whether retrying later may succeed without the operator acting. */
    readonly recoverable: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The TUN device could not be created. Upstream's text: "failed to open TUN device: ...". */
export class TunOpenError extends DatapathError {}

/** The UDP socket could not be set up. Upstream's text: "failed to start listening on UDP socket: ...". */
export class UdpSocketError extends DatapathError {}

/** Any other native failure (thread start, allocation). */
export class DatapathStartError extends DatapathError {}

/** TUNSETIFF (creating the device) refused: the capability is missing. */
const CAP_NET_ADMIN_ADVICE =
  'creating a TUN device needs CAP_NET_ADMIN: run flanneld as root, or grant the capability ' +
  '(systemd: AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW; Kubernetes: securityContext privileged: true ' +
  'or capabilities.add: ["NET_ADMIN", "NET_RAW"]). Check with: grep CapEff /proc/self/status (bit 12 must be set)';

/**
 * Opening /dev/net/tun refused: the capability does not matter for the open
 * itself; a device cgroup (a container runtime's device allow-list) or the
 * file's mode does.
 */
const DEVICE_ACCESS_ADVICE =
  "opening /dev/net/tun was refused, which is the device cgroup's doing (or the file's mode), not a missing capability: " +
  'the container runtime must allow the character device c 10:200 (Kubernetes: privileged: true, or a runtime whose default ' +
  'device list has it, or a device plugin for /dev/net/tun; docker: --device /dev/net/tun). Check with: ls -l /dev/net/tun ' +
  '(mode crw-rw-rw-) and, in a container, the cgroup v1 devices.list or the runtime\'s device rules';

function strerrorPart(e: NativeSystemError): string {
  // e.message is "<op>: <strerror> (<code>)"; keep "<strerror> (<code>)".
  const i = e.message.indexOf(': ');
  return i >= 0 ? e.message.slice(i + 2) : e.message;
}

/** Maps a failure of Datapath.openTun() to a TunOpenError with advice. */
export function tunOpenError(e: unknown, nameTemplate: string): TunOpenError {
  if (!isNativeSystemError(e)) {
    return new TunOpenError(`failed to open TUN device: ${String(e)}`, 'open TUN', undefined, false, { cause: e });
  }
  const what = `failed to open TUN device: ${e.syscall}: ${strerrorPart(e)}`;
  let advice: string;
  let recoverable = false;
  switch (e.code) {
    case 'ENOENT':
      advice =
        '/dev/net/tun does not exist. In a container, mount the host\'s /dev/net/tun ' +
        '(Kubernetes: a hostPath volume with path /dev/net/tun, type CharDevice; docker: --device /dev/net/tun); ' +
        'on a host, create it with `mkdir -p /dev/net && mknod /dev/net/tun c 10 200`';
      break;
    case 'ENODEV':
    case 'ENXIO':
      advice = 'the kernel has no tun driver loaded: run `modprobe tun` (CONFIG_TUN)';
      break;
    case 'EPERM':
    case 'EACCES':
      // The open is checked by the device cgroup and the file mode; TUNSETIFF by the capability.
      advice = e.syscall?.startsWith('open') ? DEVICE_ACCESS_ADVICE : CAP_NET_ADMIN_ADVICE;
      break;
    case 'EBUSY':
    case 'EEXIST':
    case 'EINVAL':
      advice = `a device matching the name '${nameTemplate}' exists and is not a free TUN device: remove it (ip link del <name>)`;
      break;
    case 'EMFILE':
    case 'ENFILE':
    case 'ENOMEM':
      advice = 'the system is out of file descriptors or memory; retrying later may work';
      recoverable = true;
      break;
    default:
      advice = 'see the errno text above';
  }
  return new TunOpenError(`${what}. Fix: ${advice}`, e.syscall, e.code, recoverable, { cause: e });
}

/** Maps a failure of Datapath.bindUdp() to a UdpSocketError with advice. */
export function udpSocketError(e: unknown, address: string, port: number, sourcePorts = 0): UdpSocketError {
  if (!isNativeSystemError(e)) {
    return new UdpSocketError(`failed to start listening on UDP socket: ${String(e)}`, 'bind', undefined, false, {
      cause: e,
    });
  }
  if (/source port/.test(e.syscall ?? '')) {
    const range = `${port + 1}-${port + sourcePorts}`;
    // A port another socket holds is left out, never a failure (bindUdp reports it).
    const what = `failed to open the udp source ports ${address}:${range}: ${e.syscall}: ${strerrorPart(e)}`;
    const advice = 'see the errno text above, or set "SourcePorts": 0 in the udp backend config (every datagram from Port, as upstream)';
    return new UdpSocketError(`${what}. Fix: ${advice}`, e.syscall, e.code, false, { cause: e });
  }
  const what = `failed to start listening on UDP socket ${address}:${port}: ${e.syscall}: ${strerrorPart(e)}`;
  let advice: string;
  let recoverable = false;
  switch (e.code) {
    case 'EADDRINUSE':
      advice =
        `UDP port ${port} on ${address} is taken, probably by another flanneld (ours or upstream's): ` +
        'stop it, or give every node the same other Port in the udp backend config';
      recoverable = true;
      break;
    case 'EADDRNOTAVAIL':
      advice = `${address} is not an address of this host: check -iface / -public-ip`;
      break;
    case 'EACCES':
    case 'EPERM':
      advice = 'binding this port is not permitted: run flanneld as root or with CAP_NET_BIND_SERVICE';
      break;
    default:
      advice = 'see the errno text above';
  }
  return new UdpSocketError(`${what}. Fix: ${advice}`, e.syscall, e.code, recoverable, { cause: e });
}

/** Maps a failure of Datapath.start(). */
export function datapathStartError(e: unknown): DatapathStartError {
  if (!isNativeSystemError(e)) {
    return new DatapathStartError(`failed to start the udp datapath: ${String(e)}`, 'start', undefined, false, {
      cause: e,
    });
  }
  return new DatapathStartError(
    `failed to start the udp datapath: ${e.syscall}: ${strerrorPart(e)}`,
    e.syscall,
    e.code,
    e.code === 'ENOMEM' || e.code === 'EMFILE',
    { cause: e },
  );
}
