/**
 * The health endpoints (compat §8.5), with -healthz-port > 0:
 *   /healthz  200 "flanneld is running"
 *   /readyz   200 "flanneld is ready" once ready, else 503 "flanneld is not ready yet"
 *   others    404
 * Any method; Content-Type text/plain; charset=utf-8. Started before the
 * config is known; closed gracefully (3 s at most) on shutdown.
 */
import * as http from 'node:http';
import type { Logger } from '../log';

export interface HealthState {
  ready(): boolean;
}

export class HealthServer {
  private constructor(private readonly server: http.Server, readonly address: string, readonly port: number) {}

  /** Listens on ip:port; rejects (with the reason) when it cannot. */
  static async start(ip: string, port: number, state: HealthState, log: Logger): Promise<HealthServer> {
    const server = http.createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      let code = 404;
      let body = '404 page not found\n';
      if (path === '/healthz') {
        code = 200;
        body = 'flanneld is running';
      } else if (path === '/readyz') {
        const ok = state.ready();
        code = ok ? 200 : 503;
        body = ok ? 'flanneld is ready' : 'flanneld is not ready yet';
      }
      res.writeHead(code, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(body) });
      res.end(body);
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
