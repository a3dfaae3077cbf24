/**
 * Probing a running flanneld the way systemd and a kubelet do: a unix
 * datagram socket standing in for $NOTIFY_SOCKET, and HTTP GETs of the
 * health listener from inside the node's namespace.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { type Lab } from './netns';

const HTTP_GET = path.join(__dirname, 'bin', 'http-get.js');

export interface NotifyListener {
  /** The socket path to pass as NOTIFY_SOCKET. */
  path: string;
  /** Every message received so far, one per line. */
  received(): string;
}

/** Binds a notification socket (removed with the lab) and records what arrives. */
export async function notifyListener(lab: Lab): Promise<NotifyListener> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${lab.prefix}-notify-`));
  lab.onCleanup(() => fs.rmSync(dir, { recursive: true, force: true }));
  const sock = path.join(dir, 'notify.sock');
  let got = '';
  const p = lab.spawn(undefined, 'python3', ['-c', [
    'import socket,sys',
    's=socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)',
    's.bind(sys.argv[1])',
    "print('bound', flush=True)",
    'while True: print(s.recv(200).decode(), flush=True)',
  ].join('\n'), sock]);
  p.stdout!.on('data', (d: Buffer) => (got += d.toString()));
  const deadline = Date.now() + 5000;
  while (!got.includes('bound')) {
    if (Date.now() > deadline) throw new Error('the notify listener did not bind within 5 s');
    await new Promise((r) => setTimeout(r, 50));
  }
  return { path: sock, received: () => got };
}

export interface HttpAnswer {
  status: number;
  body: string;
  contentType: string;
}

/** GET http://127.0.0.1:<port><urlPath> from inside `ns`. */
export async function httpGet(lab: Lab, ns: string, port: number, urlPath: string): Promise<HttpAnswer> {
  return JSON.parse((await lab.exec(ns, process.execPath, [HTTP_GET, `http://127.0.0.1:${port}${urlPath}`])).stdout) as HttpAnswer;
}
