/**
 * The daemon's logger: pino, structured JSON lines on stderr (upstream logs
 * to stderr too). -v >= 1 enables debug lines. Secrets never reach it: the
 * config is logged redacted (src/cli/config.ts).
 */
import pino from 'pino';
import type { Logger } from './log';

export function createLogger(verbosity: number, destination: number = 2): Logger {
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
