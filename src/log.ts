/**
 * The logger interface every component takes (injected, never global). Its
 * shape is pino's: a structured object first, then the message. The daemon
 * passes a pino logger; tests pass a recorder.
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
