/**
 * The kube-apiserver stand-in (lab/kube-apiserver.ts) as a process, so it
 * can listen inside a test's namespace:
 *
 *   node out/lab/bin/kube-apiserver.js '{"host":"192.168.100.254","port":6443,"token":"t","tls":{...}}'
 *
 * It prints {"event":"ready","port":N}, then serves line-delimited JSON
 * requests on stdin, each answered with {"id":…,"ok":true,"result":…} or
 * {"id":…,"ok":false,"error":"…"}:
 *   {"cmd":"putNode","node":NodeFixture}   {"cmd":"editNode","name":…,"edit":{annotations?,spec?}}
 *   {"cmd":"deleteNode","name":…}          {"cmd":"getNode","name":…}
 *   {"cmd":"putPod","namespace":…,"name":…,"nodeName":…}
 *   {"cmd":"requests"}                     {"cmd":"close"}  {"cmd":"listen"}  {"cmd":"compact"}
 * SIGTERM or the end of stdin stop it.
 */
import { createInterface } from 'node:readline';
import { KubeApiStandIn, type StandInOptions } from '../kube-apiserver';
import { errorText } from '../../src/util/errors';

interface Options extends StandInOptions {
  host: string;
  port: number;
}

async function main(): Promise<void> {
  const opts = JSON.parse(process.argv[2] ?? '{}') as Options;
  const server = new KubeApiStandIn(opts);
  await server.listen(opts.host, opts.port);
  const port = server.port;
  const out = (m: object): void => void process.stdout.write(JSON.stringify(m) + '\n');
  out({ event: 'ready', port });
  const handle = async (m: Record<string, any>): Promise<unknown> => {
    switch (m['cmd']) {
      case 'putNode':
        return server.putNode(m['node']);
      case 'editNode':
        return server.editNode(m['name'], m['edit']);
      case 'deleteNode':
        return server.deleteNode(m['name']);
      case 'getNode':
        return server.getNode(m['name']) ?? null;
      case 'putPod':
        return server.putPod(m['namespace'], m['name'], m['nodeName']);
      case 'requests':
        return server.requests;
      case 'close':
        return server.close();
      case 'listen':
        return server.listen(opts.host, port);
      case 'compact':
        return server.compact();
      default:
        throw new Error(`unknown command ${String(m['cmd'])}`);
    }
  };
  const rl = createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    let m: Record<string, any>;
    try {
      m = JSON.parse(line);
    } catch {
      return;
    }
    handle(m).then(
      (result) => out({ id: m['id'], ok: true, result: result ?? null }),
      (e: unknown) => out({ id: m['id'], ok: false, error: errorText(e) }),
    );
  });
  const stop = (): void => void server.close().then(() => process.exit(0));
  rl.on('close', stop);
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((e: unknown) => {
  process.stderr.write(`kube-apiserver stand-in: ${e instanceof Error ? e.stack : String(e)}\n`);
  process.exit(1);
});
