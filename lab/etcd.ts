/**
 * A real etcd (Debian's etcd-server) for tests and the demo: started on its
 * own loopback ports (or inside a namespace) with fast elections
 * (--heartbeat-interval=10 --election-timeout=50), in a temporary data
 * directory, owned by a Lab so it is stopped and removed even on failure.
 */
import { type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { Etcd3 } from 'etcd3';
import { type Lab } from './netns';

export interface EtcdTls {
  certFile: string;
  keyFile: string;
  /** With clientCertAuth, clients must present a certificate signed by this CA. */
  caFile?: string;
  clientCertAuth?: boolean;
}

export interface EtcdServerOptions {
  /** Run inside this namespace, listening on `host`. */
  ns?: string;
  host?: string;
  clientPort?: number;
  peerPort?: number;
  tls?: EtcdTls;
}

/** A free TCP port on the loopback (probed by binding port 0). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

export class EtcdServer {
  private proc: ChildProcess | undefined;
  private log = '';

  private constructor(
    private readonly lab: Lab,
    readonly dataDir: string,
    readonly host: string,
    readonly clientPort: number,
    readonly peerPort: number,
    private readonly opts: EtcdServerOptions,
  ) {}

  static async start(lab: Lab, opts: EtcdServerOptions = {}): Promise<EtcdServer> {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), `${lab.prefix}-etcd-`));
    lab.onCleanup(() => fs.rmSync(dataDir, { recursive: true, force: true }));
    const host = opts.host ?? '127.0.0.1';
    const clientPort = opts.clientPort ?? (await freePort());
    const peerPort = opts.peerPort ?? (await freePort());
    const server = new EtcdServer(lab, dataDir, host, clientPort, peerPort, opts);
    await server.launch();
    return server;
  }

  get scheme(): string {
    return this.opts.tls ? 'https' : 'http';
  }

  get endpoint(): string {
    return `${this.scheme}://${this.host}:${this.clientPort}`;
  }

  get output(): string {
    return this.log;
  }

  /** (Re)starts the process on the same ports and data directory and waits until it serves. */
  async launch(): Promise<void> {
    const name = 'lab';
    const peer = `http://${this.host}:${this.peerPort}`;
    const args = [
      '--name', name,
      '--data-dir', this.dataDir,
      '--listen-client-urls', this.endpoint,
      '--advertise-client-urls', this.endpoint,
      '--listen-peer-urls', peer,
      '--initial-advertise-peer-urls', peer,
      '--initial-cluster', `${name}=${peer}`,
      '--heartbeat-interval=10',
      '--election-timeout=50',
      '--log-level=warn',
    ];
    const tls = this.opts.tls;
    if (tls) {
      args.push('--cert-file', tls.certFile, '--key-file', tls.keyFile);
      if (tls.clientCertAuth) args.push('--client-cert-auth', '--trusted-ca-file', tls.caFile ?? '');
    }
    this.proc = this.lab.spawn(this.opts.ns, 'etcd', args);
    this.proc.stderr?.on('data', (d: Buffer) => {
      this.log = (this.log + d.toString()).slice(-8000);
    });
    const exited = new Promise<never>((_, reject) =>
      this.proc!.once('exit', (code) => reject(new Error(`etcd exited (${code}) while starting:\n${this.log}`))),
    );
    exited.catch(() => undefined);
    await Promise.race([this.waitReady(), exited]);
  }

  private async waitReady(): Promise<void> {
    const deadline = Date.now() + 20_000;
    for (;;) {
      const ok = await new Promise<boolean>((resolve) => {
        const s = net.connect({ host: this.host, port: this.clientPort });
        s.once('connect', () => {
          s.destroy();
          resolve(true);
        });
        s.once('error', () => resolve(false));
      }).catch(() => false);
      if (ok && (this.opts.ns !== undefined || this.opts.tls || (await this.probe()))) return;
      if (Date.now() > deadline) throw new Error(`etcd at ${this.endpoint} did not become ready:\n${this.log}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  private async probe(): Promise<boolean> {
    const c = this.client();
    try {
      await c.get('/lab-probe').options({ deadline: Date.now() + 1000 }).string();
      return true;
    } catch {
      return false;
    } finally {
      c.close();
    }
  }

  /** A plain client (no auth, no TLS), for tests to read and write directly. */
  client(): Etcd3 {
    return new Etcd3({ hosts: this.endpoint, dialTimeout: 2000 });
  }

  /** SIGTERM and wait. */
  async stop(): Promise<void> {
    await this.signal('SIGTERM');
  }

  /** SIGKILL and wait: etcd dies without a goodbye. */
  async kill(): Promise<void> {
    await this.signal('SIGKILL');
  }

  /** SIGSTOP: etcd hangs (connections stay open, nothing is answered) until resume(). */
  pause(): void {
    this.proc?.kill('SIGSTOP');
  }

  resume(): void {
    this.proc?.kill('SIGCONT');
  }

  /**
   * A wiped etcd: killed, its data directory emptied, started again on the
   * same address with the same flags (so even its cluster id is the same;
   * its revision starts again from 1).
   */
  async wipe(): Promise<void> {
    await this.kill();
    fs.rmSync(this.dataDir, { recursive: true, force: true });
    fs.mkdirSync(this.dataDir, { mode: 0o700 });
    await this.launch();
  }

  private async signal(sig: NodeJS.Signals): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      p.once('exit', () => resolve());
      p.kill(sig);
    });
  }
}
