/**
 * A TCP proxy on the loopback that a test can cut: sever() drops every
 * connection and refuses new ones until resume(). Used to put a client's
 * etcd watch behind a partition while the test keeps writing to etcd
 * directly.
 */
import * as net from 'node:net';

export class TcpProxy {
  private readonly sockets = new Set<net.Socket>();
  private severed = false;

  private constructor(private readonly server: net.Server, readonly port: number) {}

  static async start(targetHost: string, targetPort: number): Promise<TcpProxy> {
    let self: TcpProxy | undefined;
    const server = net.createServer((client) => {
      if (!self || self.severed) {
        client.destroy();
        return;
      }
      const upstream = net.connect({ host: targetHost, port: targetPort });
      for (const s of [client, upstream]) {
        self.sockets.add(s);
        s.once('close', () => self?.sockets.delete(s));
        s.on('error', () => {
          client.destroy();
          upstream.destroy();
        });
      }
      client.pipe(upstream);
      upstream.pipe(client);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    self = new TcpProxy(server, (server.address() as net.AddressInfo).port);
    return self;
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  sever(): void {
    this.severed = true;
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }

  resume(): void {
    this.severed = false;
  }

  async close(): Promise<void> {
    this.sever();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
