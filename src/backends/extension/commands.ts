/**
 * Running the extension backend's commands as upstream's runCmd does
 * (pkg/backend/extension/extension.go): the command line split on white
 * space, `$VAR` and `${VAR}` expanded from flanneld's environment plus the
 * command's own variables, run without a shell with that environment, the
 * input and a newline on stdin, and stdout and stderr together, trimmed, as
 * the output. Failures read as Go's: "exit status 1", "signal: killed",
 * `exec: "x": executable file not found in $PATH`.
 *
 * Beyond upstream, every command has a time limit: at the limit its whole
 * process group gets SIGTERM, and SIGKILL 2 s later (the failure says "timed
 * out after N s"), and the output kept is bounded.
 */
import { spawn } from 'node:child_process';
import { goExpand, goFields } from '../../util/go-expand';

/** Output beyond this many bytes is dropped (and said to be). */
export const MAX_COMMAND_OUTPUT_BYTES = 64 * 1024;
/** After SIGTERM at the time limit, how long before SIGKILL. */
const KILL_GRACE_MS = 2000;

export interface CommandOutcome {
  ok: boolean;
  /** stdout and stderr as they came, trimmed. */
  output: string;
  /** Why it failed, in Go's words where Go has them. */
  error?: string;
}

/** Runs `commandLine` with `vars` added to `baseEnv`, `stdin` + "\n" on its input, for at most `timeoutMs`. */
export function runCommandLine(commandLine: string, vars: Readonly<Record<string, string>>, stdin: string, timeoutMs: number, baseEnv: NodeJS.ProcessEnv = process.env): Promise<CommandOutcome> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(baseEnv)) if (v !== undefined) env[k] = v;
  Object.assign(env, vars);
  const argv = goFields(commandLine).map((f) => goExpand(f, (name) => env[name] ?? ''));
  if (argv.length === 0) return Promise.resolve({ ok: false, output: '', error: 'the command is empty' });
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let kept = 0;
    let dropped = 0;
    const take = (b: Buffer): void => {
      const room = MAX_COMMAND_OUTPUT_BYTES - kept;
      if (room > 0) chunks.push(b.subarray(0, room));
      kept += Math.min(room, b.length);
      dropped += Math.max(0, b.length - Math.max(room, 0));
    };
    // Its own process group, so that the time limit reaches what it started too.
    const child = spawn(argv[0]!, argv.slice(1), { env, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    let timedOut = false;
    let killTimer: NodeJS.Timeout | undefined;
    const signalGroup = (sig: NodeJS.Signals): void => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, sig);
      } catch {
        /* already gone */
      }
    };
    const limit = setTimeout(() => {
      timedOut = true;
      signalGroup('SIGTERM');
      killTimer = setTimeout(() => signalGroup('SIGKILL'), KILL_GRACE_MS);
    }, timeoutMs);
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    child.stdin.on('error', () => undefined);
    child.stdin.end(`${stdin}\n`);
    const output = (): string => Buffer.concat(chunks).toString('utf8').trim() + (dropped > 0 ? ` [${dropped} more bytes of output dropped]` : '');
    child.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(limit);
      clearTimeout(killTimer);
      const error = e.code === 'ENOENT' ? `exec: "${argv[0]}": executable file not found in $PATH` : e.message;
      resolve({ ok: false, output: output(), error });
    });
    child.once('close', (code, signal) => {
      clearTimeout(limit);
      clearTimeout(killTimer);
      if (timedOut) resolve({ ok: false, output: output(), error: `timed out after ${timeoutMs / 1000} s (killed)` });
      else if (signal) resolve({ ok: false, output: output(), error: `signal: ${signal === 'SIGKILL' ? 'killed' : signal === 'SIGTERM' ? 'terminated' : signal}` });
      else if (code !== 0) resolve({ ok: false, output: output(), error: `exit status ${code}` });
      else resolve({ ok: true, output: output() });
    });
  });
}
