/**
 * The logger: the interface every component takes, a recorder for tests,
 * and the daemon's logger on stderr, as upstream's. Two formats (-log-format):
 *
 *  - text (default): klog's line shape, which upstream's runbooks and log
 *    pipelines grep (k8s.io/klog/v2, the header of every line):
 *      I1202 00:51:08.458123   31316 flanneld] flanneld is running subnet="10.5.72.0/24" backend="udp"
 *    severity letter (I, W, E), month and day, time with microseconds, the
 *    process id right-aligned in 7 columns, and in place of upstream's
 *    `file.go:line` the module that logged (the `component` or `backend` its
 *    logger was made for with child(), else `flanneld`), then `] `, the
 *    message, and the line's structured fields as klog's structured calls
 *    (InfoS) write them: ` key="value"`;
 *  - json: one pino JSON object per line, with the structured fields.
 *
 * -v >= 1 enables debug lines (klog's V(1) and above: written as I lines).
 * Secrets never reach the logger: the config is logged redacted
 * (src/cli/config.ts).
 */
import * as fs from 'node:fs';
import pino from 'pino';

/**
 * The logger interface every component takes (injected, never global). Its
 * shape is pino's: a structured object first, then the message. The daemon
 * passes one made by createLogger; tests pass a recorder.
 */
export interface Logger {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
  child(bindings: object): Logger;
}

export interface LogRecord {
  level: 'debug' | 'info' | 'warn' | 'error';
  obj: object;
  msg: string;
}

/** A Logger that keeps every record, for tests. */
export class RecordingLogger implements Logger {
  constructor(readonly records: LogRecord[] = [], private readonly bindings: object = {}) {}
  private add(level: LogRecord['level'], obj: object, msg: string): void {
    this.records.push({ level, obj: { ...this.bindings, ...obj }, msg });
  }
  debug(obj: object, msg: string): void {
    this.add('debug', obj, msg);
  }
  info(obj: object, msg: string): void {
    this.add('info', obj, msg);
  }
  warn(obj: object, msg: string): void {
    this.add('warn', obj, msg);
  }
  error(obj: object, msg: string): void {
    this.add('error', obj, msg);
  }
  child(bindings: object): Logger {
    return new RecordingLogger(this.records, { ...this.bindings, ...bindings });
  }
}

/** A Logger that drops everything. */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child() {
    return silentLogger;
  },
};

export const LOG_FORMATS = ['text', 'json'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

export function isLogFormat(v: string): v is LogFormat {
  return (LOG_FORMATS as readonly string[]).includes(v);
}

export function createLogger(verbosity: number, format: LogFormat = 'text', destination: number = 2): Logger {
  if (format === 'text') return new KlogTextLogger(verbosity >= 1, (line) => fs.writeSync(destination, line));
  return pino(
    {
      level: verbosity >= 1 ? 'debug' : 'info',
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    pino.destination({ fd: destination, sync: true }),
  ) as unknown as Logger;
}

const SEVERITY = { debug: 'I', info: 'I', warn: 'W', error: 'E' } as const;

/** klog's header for a line logged at `at` by process `pid` from `module`. */
export function klogLine(level: keyof typeof SEVERITY, at: Date, pid: number, module: string, msg: string): string {
  const two = (n: number) => String(n).padStart(2, '0');
  const micros = String(at.getMilliseconds() * 1000).padStart(6, '0');
  const date = `${two(at.getMonth() + 1)}${two(at.getDate())}`;
  const time = `${two(at.getHours())}:${two(at.getMinutes())}:${two(at.getSeconds())}.${micros}`;
  return `${SEVERITY[level]}${date} ${time} ${String(pid).padStart(7)} ${module}] ${msg}\n`;
}

/** The module a line names: the logger's component or backend binding. */
function moduleOf(bindings: Record<string, unknown>): string {
  const m = bindings['component'] ?? bindings['backend'];
  return typeof m === 'string' && m !== '' ? m : 'flanneld';
}

/** ` key=value` for each field of the call (strings quoted, objects as JSON), as klog's InfoS; the logger's module is in the header. */
export function structuredFields(fields: Record<string, unknown>): string {
  let out = '';
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined) continue;
    out += ` ${k}=${typeof v === 'number' || typeof v === 'boolean' ? String(v) : JSON.stringify(v, (_key, x: unknown) => (typeof x === 'bigint' ? x.toString() : x))}`;
  }
  return out;
}

export class KlogTextLogger implements Logger {
  constructor(
    private readonly debugOn: boolean,
    private readonly write: (line: string) => void,
    private readonly bindings: Record<string, unknown> = {},
    private readonly now: () => Date = () => new Date(),
  ) {}

  private line(level: keyof typeof SEVERITY, obj: object, msg: string): void {
    const fields = obj as Record<string, unknown>;
    const module = moduleOf(this.bindings);
    // Multi-line messages stay one record per line, as klog writes them.
    this.write(klogLine(level, this.now(), process.pid, module, msg.replace(/\n/g, '\n    ') + structuredFields(fields)));
  }

  debug(obj: object, msg: string): void {
    if (this.debugOn) this.line('debug', obj, msg);
  }
  info(obj: object, msg: string): void {
    this.line('info', obj, msg);
  }
  warn(obj: object, msg: string): void {
    this.line('warn', obj, msg);
  }
  error(obj: object, msg: string): void {
    this.line('error', obj, msg);
  }
  child(bindings: object): Logger {
    return new KlogTextLogger(this.debugOn, this.write, { ...this.bindings, ...bindings }, this.now);
  }
}
