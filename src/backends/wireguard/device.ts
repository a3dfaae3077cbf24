/**
 * The WireGuard devices flannel-wg and flannel-wg-v6, run by one of two
 * implementations (the way wg-quick(8) falls back to wireguard-go):
 *  - kernel: `ip link add <name> type wireguard`, the kernel's module
 *    (drivers/net/wireguard), created over rtnetlink as upstream's
 *    device.go (ensureLink) does;
 *  - userspace: wireguard-go (golang.zx2c4.com/wireguard), a process that
 *    makes a TUN device of that name and listens for configuration on
 *    /var/run/wireguard/<name>.sock.
 * `auto` keeps what is already there and otherwise tries the kernel first.
 * The choice is made once per flanneld process and logged.
 *
 * Unlike upstream, which deletes and recreates the device at every start and
 * deletes it on exit, a device that is already right is kept, and
 * wireguard-go is started detached so it outlives flanneld: a restart of
 * flanneld does not interrupt pod traffic (docs/compatibility.md §16). A
 * later flanneld takes over the running wireguard-go (its pid is in
 * /var/run/wireguard/<name>.pid, its output in <name>.log beside the socket).
 * `flanneld cleanup` deletes the devices, which ends wireguard-go.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Logger } from '../../logging';
import { isNetlinkError, type LinkDetails, type RtNetlink } from '../../routing/rtnetlink';
import { type CommandRunner, runChecked } from '../../util/command';
import { NamedError, errorText } from '../../util/errors';
import type { WireguardImplementation } from './config';
import type { WgTool } from './wg-tool';

/** wireguard-go's socket folder (wireguard-go ipc/uapi_linux.go, socketDirectory). */
export const WIREGUARD_RUN_DIR = '/var/run/wireguard';
/** How long wireguard-go may take to make its device and socket. */
const USERSPACE_START_TIMEOUT_MS = 5000;
/** The output file of wireguard-go is cut back to nothing when it has grown past this at a start. */
const MAX_USERSPACE_LOG_BYTES = 1 << 20;

export type RunningImplementation = 'kernel' | 'userspace';

export class WireguardDeviceError extends NamedError {}

/** The refusal of Implementation kernel on a kernel without the module. */
export function kernelMissingMessage(name: string, cause: string): string {
  return (
    `Implementation kernel: this kernel has no WireGuard module (creating ${name} of type wireguard: ${cause}). ` +
    'Load it (modprobe wireguard; Linux 5.6 and later have it), install it (older kernels: the wireguard-dkms package), ' +
    'or set the wireguard backend option "Implementation" to "auto" or "userspace" to use wireguard-go'
  );
}

export interface WireguardDevicesOptions {
  /** Default WIREGUARD_RUN_DIR. */
  runDir?: string;
  /** The wireguard-go program (default: found on PATH). */
  wireguardGo?: string;
  /** Told when a wireguard-go this process started exits on its own. */
  onUserspaceExit?: (device: string) => void;
}

/** What ensure() did: nothing (undefined), or a sentence for the log and the repair counters. */
export type DeviceChange = string | undefined;

export class WireguardDevices {
  private running: RunningImplementation | undefined;
  /** Why the kernel's implementation was not used (auto fell back to wireguard-go). */
  private kernelMissing: string | undefined;
  private readonly children = new Map<string, ChildProcess>();
  private readonly runDir: string;
  private readonly wireguardGo: string;

  constructor(
    private readonly nl: RtNetlink,
    private readonly wg: WgTool,
    private readonly runner: CommandRunner,
    private readonly log: Logger,
    private readonly wanted: WireguardImplementation,
    private readonly opts: WireguardDevicesOptions = {},
  ) {
    this.runDir = opts.runDir ?? WIREGUARD_RUN_DIR;
    this.wireguardGo = opts.wireguardGo ?? 'wireguard-go';
  }

  /** The implementation in use (after the first ensure()). */
  get implementation(): RunningImplementation | undefined {
    return this.running;
  }

  /** The log line that says which implementation runs and why. */
  async describe(): Promise<string> {
    if (this.running === 'kernel') return 'WireGuard: the kernel module';
    const version = await runChecked(this.runner, this.wireguardGo, ['--version']).then(
      (out) => out.split('\n')[0]!.trim(),
      () => 'wireguard-go (version unknown)',
    );
    const why = this.wanted === 'userspace' ? 'Implementation userspace' : `this kernel has no WireGuard module: ${this.kernelMissing ?? 'unknown'}`;
    return `WireGuard: ${version} in user space (${why})`;
  }

  /** Makes device `name` exist and run, choosing the implementation on the first call. */
  async ensure(name: string, mtu: number): Promise<DeviceChange> {
    const link = await this.nl.getLinkDetails(name);
    if (this.running === undefined) return this.choose(name, mtu, link);
    if (this.running === 'kernel') {
      if (link?.kind === 'wireguard') return undefined;
      return this.createKernel(name, mtu, link);
    }
    if (link?.kind === 'tun' && (await this.userspaceLive(name))) return undefined;
    return this.startUserspace(name, link);
  }

  private async choose(name: string, mtu: number, link: LinkDetails | undefined): Promise<DeviceChange> {
    if (this.wanted !== 'userspace' && link?.kind === 'wireguard') {
      this.running = 'kernel';
      return `kept the kernel's WireGuard device ${name}`;
    }
    if (this.wanted !== 'kernel' && link?.kind === 'tun' && (await this.userspaceLive(name))) {
      this.running = 'userspace';
      const pid = this.pidOf(name);
      return `took over wireguard-go${pid ? ` (pid ${pid})` : ''} running ${name}`;
    }
    if (this.wanted !== 'userspace') {
      try {
        const change = await this.createKernel(name, mtu, link);
        this.running = 'kernel';
        return change;
      } catch (e) {
        const unsupported = e instanceof WireguardDeviceError && e.cause !== undefined && isNetlinkError(e.cause, 'ENOTSUP');
        if (!unsupported) throw e;
        if (this.wanted === 'kernel') throw new WireguardDeviceError(kernelMissingMessage(name, (e.cause as Error).message), { cause: e.cause });
        this.kernelMissing = `creating ${name} of type wireguard: ${(e.cause as Error).message}`;
      }
    }
    this.running = 'userspace';
    return this.startUserspace(name, await this.nl.getLinkDetails(name));
  }

  private async createKernel(name: string, mtu: number, existing: LinkDetails | undefined): Promise<string> {
    const replaced = existing ? await this.removeExisting(existing) : '';
    try {
      await this.nl.createLinkOfKind({ name, kind: 'wireguard', mtu });
    } catch (e) {
      throw new WireguardDeviceError(`could not create wireguard interface: ${errorText(e)}`, { cause: e });
    }
    return `created the kernel's WireGuard device ${name}${replaced}`;
  }

  /** Deletes a device in the way (a leftover of the other implementation); returns the log text. */
  private async removeExisting(link: LinkDetails): Promise<string> {
    await this.nl.deleteLink(link.index);
    if (link.kind === 'tun') await this.reap(link.name);
    return ` (replacing a ${link.kind ?? 'device'} of that name)`;
  }

  /** Whether wireguard-go answers on the device's socket. */
  private async userspaceLive(name: string): Promise<boolean> {
    if (!fs.existsSync(path.join(this.runDir, `${name}.sock`))) return false;
    try {
      return (await this.wg.show(name)) !== undefined;
    } catch {
      return false;
    }
  }

  /** The pid of a live wireguard-go for this device, if any. */
  pidOf(name: string): number | undefined {
    return userspacePid(this.runDir, name);
  }

  /** Starts wireguard-go for `name` (removing what is in the way) and waits for its device and socket. */
  private async startUserspace(name: string, existing: LinkDetails | undefined): Promise<string> {
    const replaced = existing ? await this.removeExisting(existing) : '';
    await this.reap(name);
    fs.mkdirSync(this.runDir, { recursive: true, mode: 0o755 });
    const logFile = path.join(this.runDir, `${name}.log`);
    try {
      if (fs.statSync(logFile).size > MAX_USERSPACE_LOG_BYTES) fs.truncateSync(logFile, 0);
    } catch {
      /* no log yet */
    }
    const out = fs.openSync(logFile, 'a', 0o600);
    let child: ChildProcess;
    try {
      // Detached, in its own session: it outlives this flanneld (a restart takes it over).
      child = spawn(this.wireguardGo, ['-f', name], { detached: true, stdio: ['ignore', out, out] });
    } finally {
      fs.closeSync(out);
    }
    const exited = new Promise<string>((resolve) => {
      child.once('error', (e) => resolve(`could not run ${this.wireguardGo}: ${errorText(e)}${(e as NodeJS.ErrnoException).code === 'ENOENT' ? ' (install it: apt-get install wireguard-go)' : ''}`));
      child.once('exit', (code, sig) => resolve(`${this.wireguardGo} exited (${sig ?? `status ${code}`}): ${lastLines(logFile)}`));
    });
    const deadline = Date.now() + USERSPACE_START_TIMEOUT_MS;
    for (;;) {
      const failed = await Promise.race([exited, new Promise<undefined>((r) => setTimeout(() => r(undefined), 25))]);
      if (failed !== undefined) throw new WireguardDeviceError(`could not start wireguard-go for ${name}: ${failed}`);
      if ((await this.nl.getLink(name)) && (await this.userspaceLive(name))) break;
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new WireguardDeviceError(`wireguard-go made no device ${name} and socket in ${USERSPACE_START_TIMEOUT_MS / 1000} s: ${lastLines(logFile)}`);
      }
    }
    fs.writeFileSync(pidFile(this.runDir, name), `${child.pid}\n`);
    this.children.set(name, child);
    child.once('exit', (code, sig) => {
      if (this.children.get(name) !== child) return;
      this.children.delete(name);
      this.log.warn({ device: name, code, signal: sig }, `wireguard-go for ${name} exited (${sig ?? `status ${code}`}); it is restarted: ${lastLines(logFile)}`);
      this.opts.onUserspaceExit?.(name);
    });
    child.unref();
    return `started wireguard-go (pid ${child.pid}) for ${name}${replaced}`;
  }

  /** Ends a wireguard-go of `name` still running (its device is gone or being replaced); returns its pid. */
  async reap(name: string): Promise<number | undefined> {
    this.children.delete(name);
    return reapUserspace(this.runDir, name);
  }

  /** Stops following the wireguard-go processes this flanneld started (they keep running). */
  detach(): void {
    this.children.clear();
  }
}

function pidFile(runDir: string, name: string): string {
  return path.join(runDir, `${name}.pid`);
}

/** The pid in <runDir>/<name>.pid when it is a live wireguard-go for this device. */
export function userspacePid(runDir: string, name: string): number | undefined {
  let pid: number;
  try {
    pid = Number(fs.readFileSync(pidFile(runDir, name), 'utf8').trim());
    const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    if (!cmdline.some((a) => a.endsWith('wireguard-go')) || !cmdline.includes(name)) return undefined;
  } catch {
    return undefined;
  }
  return pid;
}

/**
 * Ends the wireguard-go of `name` if one still runs, and removes its pid
 * file. Deleting its device makes wireguard-go exit by itself, so it gets a
 * moment, then SIGTERM, then SIGKILL. Returns its pid.
 */
export async function reapUserspace(runDir: string, name: string, known?: number): Promise<number | undefined> {
  const pid = known ?? userspacePid(runDir, name);
  if (pid !== undefined) {
    for (const signal of [undefined, 'SIGTERM', 'SIGKILL'] as const) {
      if (signal) {
        try {
          process.kill(pid, signal);
        } catch {
          break; // gone meanwhile
        }
      }
      if (await exited(pid, REAP_WAIT_MS)) break;
    }
  }
  fs.rmSync(pidFile(runDir, name), { force: true });
  return pid;
}

/** How long each step of reapUserspace waits for the process to end. */
const REAP_WAIT_MS = 2000;

/** Whether `pid` ends within `ms`. */
async function exited(pid: number, ms: number): Promise<boolean> {
  for (const deadline = Date.now() + ms; Date.now() < deadline; ) {
    if (!alive(pid)) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return !alive(pid);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The last lines of wireguard-go's output, for an error message. */
function lastLines(file: string): string {
  try {
    const lines = fs
      .readFileSync(file, 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !/^[│┌└]/.test(l));
    return lines.slice(-3).join(' | ') || '(no output)';
  } catch {
    return '(no output)';
  }
}
