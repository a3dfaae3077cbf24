/**
 * The `flanneld` command line (docs/compatibility.md §0 steps 1-5, docs/compatibility.md §1): Go-style flags,
 * -version before the environment is read, FLANNELD_* variables for flags
 * not given, one frozen config, then the daemon.
 *
 * Deliberate deviations (docs/compatibility.md §12): an unknown or malformed flag prints usage
 * and exits 2 (upstream exits 0); the etcd password is never logged.
 */
import { createLogger, isLogFormat, type LogFormat } from '../logging';
import type { Logger } from '../logging';
import { VERSION } from '../version';
import { buildConfig, ConfigError, type FlannelConfig, redactedConfig } from './config';
import { applyEnvironment, FLANNEL_FLAGS } from './flags';
import { FlagParseError, formatDefaults, HelpRequested, parseGoFlags } from './go-flags';

export interface MainIo {
  stderr: (s: string) => void;
  env: NodeJS.ProcessEnv;
  argv0: string;
  /** Runs the daemon with the validated config; resolves with the exit code. */
  runDaemon: (cfg: FlannelConfig, log: Logger) => Promise<number>;
  createLogger: (verbosity: number, format: LogFormat) => Logger;
  stdout: (s: string) => void;
  /** `flanneld cleanup`; resolves with the exit code. */
  runCleanup: (stdout: (s: string) => void, stderr: (s: string) => void) => Promise<number>;
}

export function usage(argv0: string): string {
  return (
    `Usage: ${argv0} [OPTION]...\n` +
    `       ${argv0} cleanup    remove every device, route, rule and table flannel-ts created on this node\n` +
    formatDefaults(FLANNEL_FLAGS)
  );
}

/**
 * `flanneld cleanup`: prints one line per thing removed on stdout, problems
 * on stderr; exit 0 when everything could be cleaned, 1 otherwise.
 */
async function defaultRunCleanup(stdout: (s: string) => void, stderr: (s: string) => void): Promise<number> {
  const [{ cleanupNode }, { RtNetlink }, { SystemCommandRunner }] = await Promise.all([
    import('../daemon/cleanup'),
    import('../routing/rtnetlink'),
    import('../util/command'),
  ]);
  const nl = RtNetlink.open();
  try {
    const { removed, problems } = await cleanupNode(nl, new SystemCommandRunner());
    for (const r of removed) stdout(`removed ${r}\n`);
    for (const p of problems) stderr(`could not clean up ${p}\n`);
    stderr(removed.length === 0 ? 'flanneld cleanup: nothing of flannel-ts was left on this node\n' : `flanneld cleanup: removed ${removed.length} item(s)\n`);
    return problems.length === 0 ? 0 : 1;
  } finally {
    nl.close();
  }
}

async function defaultRunDaemon(cfg: FlannelConfig, log: Logger): Promise<number> {
  // Loaded lazily: -version and -h need none of the daemon's dependencies.
  const { runDaemon } = await import('../daemon/daemon');
  return runDaemon(cfg, log);
}

export async function run(argv: readonly string[], io: Partial<MainIo> = {}): Promise<number> {
  const stderr = io.stderr ?? ((s: string) => void process.stderr.write(s));
  const env = io.env ?? process.env;
  const argv0 = io.argv0 ?? 'flanneld';
  let parsed;
  try {
    parsed = parseGoFlags(argv, FLANNEL_FLAGS);
  } catch (e) {
    if (e instanceof HelpRequested) {
      stderr(usage(argv0));
      return 0;
    }
    if (e instanceof FlagParseError) {
      stderr(`${e.message}\n${usage(argv0)}`);
      return 2;
    }
    throw e;
  }
  if (parsed.rest[0] === 'cleanup' && parsed.rest.length === 1) {
    return (io.runCleanup ?? defaultRunCleanup)(io.stdout ?? ((s: string) => void process.stdout.write(s)), stderr);
  }
  if (parsed.rest.length > 0) {
    stderr(`unexpected argument: ${parsed.rest[0]} (flanneld takes only flags, or the one command \`cleanup\`)\n${usage(argv0)}`);
    return 2;
  }
  // docs/compatibility.md §0 step 2: decided on the command line alone, before the environment.
  if (parsed.values.get('version') === true) {
    stderr(`${VERSION}\n`);
    return 0;
  }
  const envProblems = applyEnvironment(parsed, FLANNEL_FLAGS, env);
  let cfg: FlannelConfig;
  const format = String(parsed.values.get('log-format') ?? 'text');
  if (!isLogFormat(format)) {
    stderr(`invalid value "${format}" for flag -log-format: use text or json\n${usage(argv0)}`);
    return 2;
  }
  const log = (io.createLogger ?? createLogger)(Number(parsed.values.get('v') ?? 0), format);
  for (const p of envProblems) {
    log.error({ variable: p.variable, value: p.value, err: p.error }, `Failed to set flag FLANNELD from env ${p.variable}=${JSON.stringify(p.value)}: ${p.error}; keeping the default`);
  }
  try {
    cfg = buildConfig(parsed);
  } catch (e) {
    if (e instanceof ConfigError) {
      log.error({}, e.message);
      return 1;
    }
    throw e;
  }
  log.info({ config: redactedConfig(cfg) }, 'CLI flags config');
  return (io.runDaemon ?? defaultRunDaemon)(cfg, log);
}

/** bin/flanneld's entry point. */
export function main(argv: readonly string[]): void {
  run(argv, { argv0: process.argv[1] ?? 'flanneld' }).then(
    (code) => {
      process.exitCode = code;
      // Everything is stopped; a handle a library still holds (a gRPC
      // channel closing) must not delay the exit past the 3 s of SIGTERM.
      setTimeout(() => process.exit(code), 200).unref();
    },
    (e: unknown) => {
      process.stderr.write(`flanneld: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
