/**
 * Line-delimited JSON over a child process's stdin/stdout: every stdout line
 * that parses as a JSON object is offered to the waiting predicates in order.
 */
import { type ChildProcess } from 'node:child_process';

type Json = Record<string, unknown>;

interface Waiter {
  pred: (m: Json) => boolean;
  resolve: (m: Json) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

export class JsonChannel {
  private buf = '';
  private stderrTail = '';
  private readonly waiters: Waiter[] = [];
  private exited: string | undefined;
  /** Every message received, for diagnostics. */
  readonly received: Json[] = [];

  constructor(private readonly child: ChildProcess, private readonly what: string) {
    child.stdout?.setEncoding('utf8');
    child.stdout?.on('data', (chunk: string) => this.onData(chunk));
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => {
      this.stderrTail = (this.stderrTail + chunk).slice(-6000);
    });
    child.once('exit', (code, signal) => {
      this.exited = `exited (code ${code}, signal ${signal})`;
      for (const w of this.waiters.splice(0)) {
        clearTimeout(w.timer);
        w.reject(new Error(`${this.what} ${this.exited}; stderr:\n${this.stderrTail}`));
      }
    });
  }

  get stderr(): string {
    return this.stderrTail;
  }

  private onData(chunk: string): void {
    this.buf += chunk;
    let nl: number;
    while ((nl = this.buf.indexOf('\n')) >= 0) {
      const line = this.buf.slice(0, nl).trim();
      this.buf = this.buf.slice(nl + 1);
      if (!line.startsWith('{')) continue;
      let msg: unknown;
      try {
        msg = JSON.parse(line);
      } catch {
        continue;
      }
      if (typeof msg !== 'object' || msg === null) continue;
      this.received.push(msg as Json);
      const i = this.waiters.findIndex((w) => w.pred(msg as Json));
      if (i >= 0) {
        const [w] = this.waiters.splice(i, 1);
        clearTimeout(w!.timer);
        w!.resolve(msg as Json);
      }
    }
  }

  /** Resolves with the next message satisfying `pred`. */
  wait<T = Json>(pred: (m: Json) => boolean, timeoutMs: number, label = 'a message'): Promise<T> {
    if (this.exited) return Promise.reject(new Error(`${this.what} ${this.exited}; stderr:\n${this.stderrTail}`));
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        const i = this.waiters.findIndex((w) => w.timer === timer);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(new Error(`${this.what}: no ${label} within ${timeoutMs} ms; stderr:\n${this.stderrTail}`));
      }, timeoutMs);
      this.waiters.push({ pred, resolve: resolve as (m: Json) => void, reject, timer });
    });
  }

  send(msg: Json): void {
    this.sendLine(JSON.stringify(msg));
  }

  sendLine(line: string): void {
    this.child.stdin?.write(line + '\n');
  }

  /** Sends a request with a fresh id and waits for the reply carrying it. */
  private nextId = 1;
  async request<T = Json>(msg: Json, timeoutMs = 10_000): Promise<T> {
    const id = this.nextId++;
    const reply = this.wait<T>((m) => m['id'] === id, timeoutMs, `reply to ${JSON.stringify(msg)}`);
    this.send({ ...msg, id });
    return reply;
  }
}
