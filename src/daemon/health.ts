/**
 * The health listener (docs/compatibility.md §8.5), with -healthz-port > 0:
 *   /healthz  200 "flanneld is running"; 500 with the reason when the event
 *             loop or a datapath thread stopped making progress (./node-status.ts)
 *   /readyz   200 "flanneld is ready" once ready, else 503 "flanneld is not ready
 *             yet" (upstream's bodies; the reasons go in X-Flanneld-Not-Ready)
 *   /metrics  Prometheus text format (beyond upstream)
 *   others    404
 * Any method; Content-Type text/plain; charset=utf-8. Started before the
 * config is known; closed gracefully (3 s at most) on shutdown.
 */
import * as http from 'node:http';
import type { Logger } from '../logging';
import { errorText } from '../util/errors';

export interface HealthState {
  /** Why the node is not live, or undefined. */
  live(): Promise<string | undefined>;
  /** Why the node is not ready (empty when ready). */
  ready(): Promise<string[]>;
  metrics?(): Promise<{ contentType: string; body: string }>;
}

const TEXT = 'text/plain; charset=utf-8';

async function answer(path: string, state: HealthState): Promise<{ code: number; body: string; type: string; headers?: Record<string, string> }> {
  if (path === '/healthz') {
    const problem = await state.live();
    return problem === undefined ? { code: 200, body: 'flanneld is running', type: TEXT } : { code: 500, body: `flanneld is not healthy: ${problem}`, type: TEXT };
  }
  if (path === '/readyz') {
    const problems = await state.ready();
    if (problems.length === 0) return { code: 200, body: 'flanneld is ready', type: TEXT };
    return { code: 503, body: 'flanneld is not ready yet', type: TEXT, headers: { 'X-Flanneld-Not-Ready': problems.join('; ').replace(/[^\x20-\x7e]/g, '?') } };
  }
  if (path === '/metrics' && state.metrics) {
    const m = await state.metrics();
    return { code: 200, body: m.body, type: m.contentType };
  }
  return { code: 404, body: '404 page not found\n', type: TEXT };
}

export class HealthServer {
  private constructor(private readonly server: http.Server, readonly address: string, readonly port: number) {}

  /** Listens on ip:port; rejects (with the reason) when it cannot. */
  static async start(ip: string, port: number, state: HealthState, log: Logger): Promise<HealthServer> {
    const server = http.createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0]!;
      answer(path, state).then(
        (a) => {
          res.writeHead(a.code, { 'Content-Type': a.type, 'Content-Length': Buffer.byteLength(a.body), ...a.headers });
          res.end(a.body);
        },
        (e: unknown) => {
          const body = `internal error: ${errorText(e)}\n`;
          log.warn({ path, err: body.trim() }, `health endpoint ${path} failed`);
          res.writeHead(500, { 'Content-Type': TEXT, 'Content-Length': Buffer.byteLength(body) });
          res.end(body);
        },
      );
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, ip, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const bound = server.address() as { port: number };
    log.info({ ip, port: bound.port }, `health server listening on ${ip}:${bound.port}`);
    return new HealthServer(server, ip, bound.port);
  }

  /** Stops accepting, lets requests in flight finish for up to 3 s, then cuts them. */
  async close(): Promise<void> {
    const done = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    const timer = setTimeout(() => this.server.closeAllConnections(), 3000);
    await done;
    clearTimeout(timer);
  }
}
