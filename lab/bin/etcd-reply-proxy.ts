/**
 * A TCP proxy in front of etcd that can lose a write's reply, for the
 * "applied, but the reply was lost" test: run it inside a node's namespace,
 *
 *   node out/lab/bin/etcd-reply-proxy.js <listen host:port> <etcd host:port>
 *
 * and point flanneld at the listen address. It prints {"event":"ready"},
 * then serves line-delimited JSON on stdin:
 *
 *   {"id":1,"cmd":"arm","minDataBytes":120,"holdMs":8000}
 *     the next request of at least `minDataBytes` (a gRPC DATA frame from
 *     the client: a transaction with a key and a lease value is one; lease
 *     grants, TTL reads and watch progress requests are much smaller) makes
 *     the proxy hold every byte etcd sends back, on every connection, for
 *     `holdMs` (past the client's deadline), then release them in order.
 *     The request itself reaches etcd at once and is applied.
 *   {"id":2,"cmd":"status"}  -> {"id":2,"armed":false,"held":1}
 *
 * It prints {"event":"holding","bytes":<request size>} when it starts
 * holding and {"event":"released"} after. HTTP/2 framing (RFC 9113 §4.1: a
 * 9-byte header with a 24-bit length and an 8-bit type; DATA is type 0) is
 * read on the client side only; nothing is changed or dropped, so the
 * connection's state (HPACK, flow control) stays consistent.
 */
import * as net from 'node:net';

const PREFACE_BYTES = 24; // "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" (RFC 9113 §3.4)
const FRAME_HEADER_BYTES = 9;
const DATA_FRAME = 0x0;

function out(msg: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify(msg) + '\n');
}

function hostPort(s: string): { host: string; port: number } {
  const i = s.lastIndexOf(':');
  return { host: s.slice(0, i), port: Number(s.slice(i + 1)) };
}

let armed: { minDataBytes: number; holdMs: number } | undefined;
let holdUntil = 0;
let held = 0;
const pending: Array<() => void> = [];

function startHolding(bytes: number): void {
  if (!armed) return;
  const { holdMs } = armed;
  armed = undefined;
  held++;
  holdUntil = Date.now() + holdMs;
  out({ event: 'holding', bytes });
  setTimeout(() => {
    holdUntil = 0;
    for (const f of pending.splice(0)) f();
    out({ event: 'released' });
  }, holdMs);
}

/** Watches the client's bytes for a large DATA frame. */
class ClientFrames {
  private buf = Buffer.alloc(0);
  private preface = PREFACE_BYTES;

  feed(chunk: Buffer): void {
    this.buf = Buffer.concat([this.buf, chunk]);
    if (this.preface > 0) {
      const skip = Math.min(this.preface, this.buf.length);
      this.buf = this.buf.subarray(skip);
      this.preface -= skip;
    }
    while (this.buf.length >= FRAME_HEADER_BYTES) {
      const length = this.buf.readUIntBE(0, 3);
      const type = this.buf[3]!;
      if (this.buf.length < FRAME_HEADER_BYTES + length) return;
      this.buf = this.buf.subarray(FRAME_HEADER_BYTES + length);
      if (type === DATA_FRAME && armed && length >= armed.minDataBytes) startHolding(length);
    }
  }
}

async function main(): Promise<void> {
  const [listen, target] = [hostPort(process.argv[2] ?? '127.0.0.1:2379'), hostPort(process.argv[3] ?? '127.0.0.1:12379')];
  const server = net.createServer((client) => {
    const upstream = net.connect(target);
    const frames = new ClientFrames();
    client.on('data', (d: Buffer) => {
      frames.feed(d);
      upstream.write(d);
    });
    upstream.on('data', (d: Buffer) => {
      if (Date.now() < holdUntil || pending.length > 0) pending.push(() => client.write(d));
      else client.write(d);
    });
    const close = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', close).on('close', close);
    upstream.on('error', close).on('close', close);
  });
  await new Promise<void>((resolve) => server.listen(listen.port, listen.host, resolve));
  out({ event: 'ready', pid: process.pid });
  let buf = '';
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (chunk: string) => {
    buf += chunk;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      let req: Record<string, unknown>;
      try {
        req = JSON.parse(line) as Record<string, unknown>;
      } catch {
        continue;
      }
      if (req['cmd'] === 'arm') {
        armed = { minDataBytes: Number(req['minDataBytes'] ?? 120), holdMs: Number(req['holdMs'] ?? 8000) };
        out({ id: req['id'], ok: true });
      } else if (req['cmd'] === 'status') {
        out({ id: req['id'], armed: armed !== undefined, held });
      } else {
        out({ id: req['id'], error: `unknown command ${String(req['cmd'])}` });
      }
    }
  });
  process.stdin.on('end', () => process.exit(0));
}

main().catch((e: unknown) => {
  out({ event: 'error', message: String(e) });
  process.exit(1);
});
