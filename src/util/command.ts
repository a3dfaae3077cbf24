/**
 * Running the system's tools: `iptables`, `iptables-restore` and `nft` (as
 * upstream does: rules go through the same tools the operator uses, so
 * iptables-nft and iptables-legacy hosts both work), and WireGuard's `wg`. A runner may carry a
 * prefix such as `ip netns exec <ns>`, which is how tests point the real
 * tools at a namespace of their own.
 */
import { spawn } from 'node:child_process';
import { NamedError } from './errors';

/** How long one invocation may take (iptables waits for the xtables lock). */
const COMMAND_TIMEOUT_MS = 15_000;

/** Debian's package for each tool, for the "install it" hint. */
const PACKAGE: Record<string, string> = {
  iptables: 'iptables',
  ip6tables: 'iptables',
  'iptables-restore': 'iptables',
  'ip6tables-restore': 'iptables',
  'iptables-save': 'iptables',
  'ip6tables-save': 'iptables',
  nft: 'nftables',
  wg: 'wireguard-tools',
  'wireguard-go': 'wireguard-go',
};

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** A tool failed: which command, its exit status and what it printed. */
export class CommandError extends NamedError {
  constructor(
    readonly command: string,
    readonly code: number | 'ENOENT' | 'ETIMEDOUT',
    readonly stderr: string,
  ) {
    const tool = command.split(' ')[0]!;
    const why =
      code === 'ENOENT'
        ? `${tool} not found: install it (apt-get install ${PACKAGE[tool] ?? tool}) or put it on PATH`
        : code === 'ETIMEDOUT'
          ? `timed out after ${COMMAND_TIMEOUT_MS / 1000} s`
          : `exit status ${code}: ${stderr.trim() || '(no output)'}`;
    super(`${command}: ${why}`);
  }
}

export interface CommandRunner {
  /** Runs `tool args…` with `input` on stdin; resolves with any exit status (rejects only when it cannot run). */
  run(tool: string, args: readonly string[], input?: string): Promise<CommandResult>;
}

export function describeCommand(tool: string, args: readonly string[]): string {
  return [tool, ...args.map((a) => (/[\s"]/.test(a) ? `"${a}"` : a))].join(' ');
}

/** Runs a command and rejects with CommandError unless it exits 0. */
export async function runChecked(runner: CommandRunner, tool: string, args: readonly string[], input?: string): Promise<string> {
  const r = await runner.run(tool, args, input);
  if (r.code !== 0) throw new CommandError(describeCommand(tool, args), r.code, r.stderr);
  return r.stdout;
}

export class SystemCommandRunner implements CommandRunner {
  /** `prefix` is prepended to every command line, e.g. ["ip", "netns", "exec", "ns1"]. */
  constructor(private readonly prefix: readonly string[] = []) {}

  run(tool: string, args: readonly string[], input?: string): Promise<CommandResult> {
    const argv = [...this.prefix, tool, ...args];
    return new Promise((resolve, reject) => {
      const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new CommandError(describeCommand(tool, args), 'ETIMEDOUT', stderr));
      }, COMMAND_TIMEOUT_MS);
      child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
      child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      child.on('error', (e: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        reject(e.code === 'ENOENT' ? new CommandError(describeCommand(tool, args), 'ENOENT', '') : e);
      });
      child.on('close', (code, sig) => {
        clearTimeout(timer);
        // `ip netns exec` reports a missing tool as exit 255 with execvp's text.
        if (this.prefix.length > 0 && /exec of ".*" failed: No such file/.test(stderr)) {
          reject(new CommandError(describeCommand(tool, args), 'ENOENT', stderr));
          return;
        }
        resolve({ code: code ?? (sig ? 128 : 1), stdout, stderr });
      });
      child.stdin.on('error', () => undefined);
      child.stdin.end(input ?? '');
    });
  }
}
