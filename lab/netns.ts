/**
 * A Lab owns network namespaces and processes for one test, demo or
 * benchmark run, and removes all of them when it ends: explicitly with
 * cleanup(), and also on process exit, SIGINT and SIGTERM, so an interrupted
 * run leaves nothing behind. Names carry a random per-lab prefix so two runs
 * never collide.
 */
import { type ChildProcess, execFile, execFileSync, spawn, type SpawnOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { NamedError } from '../src/util/errors';

export class CommandError extends NamedError {
  constructor(
    readonly command: string,
    readonly exitCode: number | null,
    readonly stdout: string,
    readonly stderr: string,
  ) {
    super(`command failed (exit ${exitCode}): ${command}\n${stderr.trim()}`);
  }
}

export interface RunResult {
  stdout: string;
  stderr: string;
}

/** Runs a command to completion; rejects with CommandError on a non-zero exit. */
export function run(cmd: string, args: readonly string[], options: { timeoutMs?: number; input?: string } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      cmd,
      args as string[],
      { timeout: options.timeoutMs ?? 60_000, maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' },
      (err, stdout, stderr) => {
        if (err) {
          const code = typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : null;
          reject(new CommandError([cmd, ...args].join(' '), code, stdout, stderr || err.message));
        } else {
          resolve({ stdout, stderr });
        }
      },
    );
    if (options.input !== undefined) child.stdin?.end(options.input);
  });
}

/** A random lab prefix: "f" + 5 base-36 characters, short enough for 15-character interface names. */
export function uniquePrefix(): string {
  const n = randomBytes(4).readUInt32BE(0);
  return 'f' + n.toString(36).padStart(5, '0').slice(-5);
}

const liveLabs = new Set<Lab>();
let hooksInstalled = false;

function installExitHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', () => {
    for (const lab of liveLabs) lab.cleanupSync();
  });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = (): void => {
      // A program that handles the signal itself (the demo) cleans up on its
      // own; otherwise the signal would end the process without cleanup.
      if (process.listeners(sig).some((l) => l !== onSignal)) return;
      for (const lab of liveLabs) lab.cleanupSync();
      process.exit(sig === 'SIGINT' ? 130 : 143);
    };
    process.on(sig, onSignal);
  }
}

export class Lab {
  readonly prefix: string;
  private readonly namespaces: string[] = [];
  /** Network namespaces with a mount namespace of their own (isolateMounts), and the pid of the process that holds it. */
  private readonly mountHolders = new Map<string, number>();
  private readonly processes = new Set<ChildProcess>();
  private readonly cleanups: Array<() => void> = [];
  private closed = false;

  constructor(prefix: string = uniquePrefix()) {
    this.prefix = prefix;
    installExitHooks();
    liveLabs.add(this);
  }

  /** A name unique to this lab: prefix + suffix (keep suffix short for interface names). */
  name(suffix: string): string {
    const n = this.prefix + suffix;
    if (n.length > 15) throw new Error(`name '${n}' is longer than an interface name may be (15)`);
    return n;
  }

  /** Creates a namespace with loopback up; returns its name. */
  async addNamespace(suffix: string): Promise<string> {
    const ns = this.name(suffix);
    await run('ip', ['netns', 'add', ns]);
    this.namespaces.push(ns);
    await this.exec(ns, 'ip', ['link', 'set', 'lo', 'up']);
    return ns;
  }

  /**
   * Gives network namespace `ns` a mount namespace of its own in which each
   * of `dirs` is a fresh tmpfs; every later exec() and spawn() in `ns` runs
   * in it. For programs that keep machine-wide state in fixed folders:
   * wireguard-go's sockets in /var/run/wireguard (one folder for every
   * network namespace of a machine), flanneld's /run/flannel. The mount
   * namespace follows the host's mounts (slave), so `ip netns exec` still
   * finds the network namespaces. A process sleeping in it holds it (killed
   * at cleanup, the namespace's tmpfs folders go with its last process), and
   * commands enter it through that process with its root and working folder
   * (`nsenter -t PID -m -r -w`): entering a mount namespace resets a
   * process's root to the namespace's own, which inside a chroot (a fresh
   * Debian root, scripts/check-fresh-debian) is the host's, not the chroot.
   */
  async isolateMounts(ns: string, dirs: readonly string[]): Promise<void> {
    const mountAndSleep = 'for d; do mkdir -p "$d" && mount -t tmpfs -o mode=0755 tmpfs "$d" || exit 1; done; cd / && echo ready && exec sleep infinity';
    const holder = this.spawn(undefined, 'unshare', ['--mount', '--propagation', 'slave', 'sh', '-c', mountAndSleep, 'sh', ...dirs]);
    await new Promise<void>((resolve, reject) => {
      let stderr = '';
      holder.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
      holder.stdout?.on('data', (d: Buffer) => {
        if (d.toString().includes('ready')) resolve();
      });
      holder.once('exit', (code) => reject(new CommandError(`unshare --mount (a mount namespace for ${ns})`, code, '', stderr)));
    });
    this.mountHolders.set(ns, holder.pid!);
  }

  /** The command prefix that runs a program in `ns` (and in its mount namespace, if it has one). */
  nsCommand(ns: string): string[] {
    const holder = this.mountHolders.get(ns);
    return [...(holder !== undefined ? ['nsenter', '-t', String(holder), '-m', '-r', '-w'] : []), 'ip', 'netns', 'exec', ns];
  }

  /** Runs a command inside a namespace to completion. */
  exec(ns: string, cmd: string, args: readonly string[], options: { timeoutMs?: number; input?: string } = {}): Promise<RunResult> {
    const [head, ...rest] = this.nsCommand(ns);
    return run(head!, [...rest, cmd, ...args], options);
  }

  /** Starts a long-running process inside a namespace (or the host when ns is undefined); it is killed at cleanup. */
  spawn(ns: string | undefined, cmd: string, args: readonly string[], options: SpawnOptions = {}): ChildProcess {
    const argv = ns === undefined ? [cmd, ...args] : [...this.nsCommand(ns), cmd, ...args];
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'], ...options });
    this.processes.add(child);
    child.once('exit', () => this.processes.delete(child));
    return child;
  }

  /** Registers an extra synchronous cleanup step (run before namespaces are deleted). */
  onCleanup(f: () => void): void {
    this.cleanups.push(f);
  }

  /** Stops every process (SIGTERM, then SIGKILL after `graceMs`) and deletes every namespace. */
  async cleanup(graceMs = 3000): Promise<void> {
    if (this.closed) return;
    const procs = [...this.processes];
    await Promise.all(
      procs.map(
        (p) =>
          new Promise<void>((resolve) => {
            if (p.exitCode !== null || p.signalCode !== null) return resolve();
            const timer = setTimeout(() => {
              p.kill('SIGKILL');
            }, graceMs);
            p.once('exit', () => {
              clearTimeout(timer);
              resolve();
            });
            p.kill('SIGTERM');
          }),
      ),
    );
    this.cleanupSync();
  }

  /** Synchronous cleanup for exit hooks: SIGKILL what is left and delete namespaces. */
  cleanupSync(): void {
    if (this.closed) return;
    this.closed = true;
    liveLabs.delete(this);
    for (const p of this.processes) {
      try {
        p.kill('SIGKILL');
      } catch {
        /* already gone */
      }
    }
    for (const f of this.cleanups.splice(0)) {
      try {
        f();
      } catch {
        /* best effort: namespaces are still deleted below */
      }
    }
    for (const ns of this.namespaces.reverse()) {
      // Kill anything still inside (e.g. a grandchild), then delete the namespace.
      try {
        execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
          .split('\n')
          .filter((s) => s.trim() !== '')
          .forEach((pid) => {
            try {
              process.kill(Number(pid), 'SIGKILL');
            } catch {
              /* gone */
            }
          });
      } catch {
        /* namespace already gone */
      }
      try {
        execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
      } catch {
        /* already deleted */
      }
    }
    // A mount namespace ends with its last process: its holder was killed above.
    this.mountHolders.clear();
  }
}

/** Resolves with the first stdout line of `child` that parses as JSON and satisfies `pred`. */
export function waitForJsonLine<T = Record<string, unknown>>(
  child: ChildProcess,
  pred: (msg: Record<string, unknown>) => boolean,
  timeoutMs: number,
  what: string,
): Promise<T> {
  return new Promise((resolve, reject) => {
    let buf = '';
    let stderr = '';
    const onData = (chunk: Buffer): void => {
      buf += chunk.toString('utf8');
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        let msg: unknown;
        try {
          msg = JSON.parse(line);
        } catch {
          continue;
        }
        if (typeof msg === 'object' && msg !== null && pred(msg as Record<string, unknown>)) {
          finish();
          resolve(msg as T);
          return;
        }
      }
    };
    const onErr = (chunk: Buffer): void => {
      stderr = (stderr + chunk.toString('utf8')).slice(-4000);
    };
    const onExit = (code: number | null): void => {
      finish();
      reject(new Error(`${what}: process exited (${code}) before it reported; stderr:\n${stderr}`));
    };
    const timer = setTimeout(() => {
      finish();
      reject(new Error(`${what}: no report within ${timeoutMs} ms; stderr:\n${stderr}`));
    }, timeoutMs);
    function finish(): void {
      clearTimeout(timer);
      child.stdout?.off('data', onData);
      child.stderr?.off('data', onErr);
      child.off('exit', onExit);
    }
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onErr);
    child.once('exit', onExit);
  });
}
