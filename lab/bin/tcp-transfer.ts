/**
 * Moves a deterministic byte stream over TCP and reports its SHA-256, so a
 * test can check that every byte arrived intact.
 *
 *   node tcp-transfer.js serve <bind-address> <port>
 *       prints {"event":"listening"}, accepts one connection, reads to EOF,
 *       prints {"event":"received","bytes":N,"sha256":"..."}
 *   node tcp-transfer.js send <address> <port> <bytes> <seed>
 *       prints {"event":"sent","bytes":N,"sha256":"..."}
 */
import { createHash } from 'node:crypto';
import * as net from 'node:net';

function out(msg: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify(msg) + '\n');
}

/** xorshift32 stream: fast, deterministic, not compressible by accident. */
function* chunks(total: number, seed: number, chunkSize = 256 * 1024): Generator<Buffer> {
  let x = seed >>> 0 || 0x9e3779b9;
  let left = total;
  while (left > 0) {
    const n = Math.min(chunkSize, left);
    const words = new Uint32Array(Math.ceil(n / 4));
    for (let i = 0; i < words.length; i++) {
      x ^= x << 13;
      x >>>= 0;
      x ^= x >>> 17;
      x ^= x << 5;
      x >>>= 0;
      words[i] = x;
    }
    yield Buffer.from(words.buffer, 0, n);
    left -= n;
  }
}

function serve(address: string, port: number): void {
  const server = net.createServer((sock) => {
    const hash = createHash('sha256');
    let bytes = 0;
    sock.on('data', (d: Buffer) => {
      hash.update(d);
      bytes += d.length;
    });
    sock.on('end', () => {
      out({ event: 'received', bytes, sha256: hash.digest('hex') });
      sock.end();
      server.close();
    });
    sock.on('error', (e) => {
      out({ event: 'error', message: e.message });
      process.exit(1);
    });
  });
  server.listen(port, address, () => out({ event: 'listening' }));
}

function send(address: string, port: number, total: number, seed: number): void {
  const hash = createHash('sha256');
  const sock = net.connect({ host: address, port }, () => {
    const it = chunks(total, seed);
    const pump = (): void => {
      for (;;) {
        const next = it.next();
        if (next.done) {
          sock.end();
          return;
        }
        hash.update(next.value);
        if (!sock.write(next.value)) {
          sock.once('drain', pump);
          return;
        }
      }
    };
    pump();
  });
  sock.on('close', (hadError) => {
    if (!hadError) out({ event: 'sent', bytes: total, sha256: hash.digest('hex') });
  });
  sock.on('error', (e) => {
    out({ event: 'error', message: e.message });
    process.exit(1);
  });
  sock.resume();
}

const [mode, a, b, c, d] = process.argv.slice(2);
if (mode === 'serve' && a && b) serve(a, Number(b));
else if (mode === 'send' && a && b && c) send(a, Number(b), Number(c), Number(d ?? 1));
else {
  process.stderr.write('usage: tcp-transfer serve <addr> <port> | send <addr> <port> <bytes> <seed>\n');
  process.exit(2);
}
