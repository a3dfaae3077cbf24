/**
 * A stand-in for kube-apiserver with exactly what flanneld's kube mode uses
 * (docs/compatibility.md §11.2, §11.3), for tests: nodes list and watch (resourceVersion,
 * history replay, 410 Expired after a compaction, bookmarks, timeoutSeconds),
 * node get, strategic-merge PATCH of nodes/status (annotations merged as a
 * map with null deleting, conditions merged by type, spec ignored), pod get,
 * bearer-token auth, and a log of every request. No kube-apiserver can be
 * installed here (no package of npm or Debian ships kube-apiserver); test/kube-apiserver.test.ts checks this server
 * against @kubernetes/client-node's informer.
 *
 * Semantics kept from the real server: monotonically increasing string RVs
 * shared by all objects; every change emits ADDED/MODIFIED/DELETED to open
 * watches; a DELETED event carries the final object; lists and events carry
 * kind and apiVersion; errors are Status objects.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';

type Json = Record<string, unknown>;

export interface NodeFixture {
  name: string;
  podCIDR?: string;
  podCIDRs?: string[];
  /** undefined: `{dummy: "value"}` as upstream's fixtures; null: no annotations map at all. */
  annotations?: Record<string, string> | null;
  labels?: Record<string, string>;
}

export interface RecordedRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  contentType: string | undefined;
  authorization: string | undefined;
  body: string;
}

interface WatchEvent {
  rv: number;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  object: Json;
}

export interface StandInOptions {
  /** Required bearer token; undefined accepts anonymous requests. */
  token?: string;
  /** Bookmark period for watches that allow them (default 1000 ms). */
  bookmarkIntervalMs?: number;
  /**
   * Serve HTTPS with this certificate and key (PEM files); plain HTTP
   * otherwise. With `clientCaFile`, a client certificate signed by that CA is
   * required (as kube-apiserver's --client-ca-file).
   */
  tls?: { certFile: string; keyFile: string; clientCaFile?: string };
}

function status(code: number, reason: string, message: string, details?: Json): Json {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, ...(details ? { details } : {}), code };
}

function clone<T>(v: T): T {
  return JSON.parse(JSON.stringify(v)) as T;
}

export class KubeApiStandIn {
  private rv = 1000;
  private readonly nodes = new Map<string, Json>();
  private readonly pods = new Map<string, Json>();
  private history: WatchEvent[] = [];
  /** Watches and non-zero list RVs older than this get 410 Expired. */
  private compactedRv = 0;
  private server: http.Server | https.Server | undefined;
  private readonly watches = new Set<{ send: (e: WatchEvent) => void; end: () => void }>();
  readonly requests: RecordedRequest[] = [];
  /** Fail the next n PATCHes with this status (tests of the retry). */
  failPatches = { count: 0, code: 500 };

  constructor(private readonly options: StandInOptions = {}) {}

  get resourceVersion(): string {
    return String(this.rv);
  }

  get port(): number {
    return (this.server?.address() as AddressInfo | undefined)?.port ?? 0;
  }

  async listen(host: string, port: number): Promise<void> {
    const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => void this.handle(req, res);
    const tls = this.options.tls;
    const server = tls
      ? https.createServer(
          {
            cert: fs.readFileSync(tls.certFile),
            key: fs.readFileSync(tls.keyFile),
            ...(tls.clientCaFile ? { ca: fs.readFileSync(tls.clientCaFile), requestCert: true, rejectUnauthorized: true } : {}),
          },
          handler,
        )
      : http.createServer(handler);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    this.server = server;
  }

  /** Stops listening and breaks every open watch (an API server going away). */
  async close(): Promise<void> {
    for (const w of [...this.watches]) w.end();
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  /** Forgets the event history: watches and lists from an older RV now get 410 (etcd compaction, or a restarted server). */
  compact(): void {
    this.compactedRv = this.rv;
    this.history = [];
  }

  private bump(type: WatchEvent['type'], object: Json): void {
    this.rv++;
    (object['metadata'] as Json)['resourceVersion'] = String(this.rv);
    const ev: WatchEvent = { rv: this.rv, type, object: clone(object) };
    this.history.push(ev);
    if (this.history.length > 10_000) this.history.shift();
    for (const w of this.watches) w.send(ev);
  }

  putNode(f: NodeFixture): Json {
    const existing = this.nodes.get(f.name);
    const meta: Json = {
      name: f.name,
      uid: existing ? (existing['metadata'] as Json)['uid'] : randomUUID(),
      resourceVersion: '',
      creationTimestamp: existing ? (existing['metadata'] as Json)['creationTimestamp'] : new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
      ...(f.labels ? { labels: f.labels } : {}),
    };
    if (f.annotations !== null) meta['annotations'] = f.annotations ?? { dummy: 'value' };
    const spec: Json = {};
    if (f.podCIDR !== undefined) spec['podCIDR'] = f.podCIDR;
    if (f.podCIDRs !== undefined) spec['podCIDRs'] = f.podCIDRs;
    else if (f.podCIDR) spec['podCIDRs'] = [f.podCIDR];
    const node: Json = { kind: 'Node', apiVersion: 'v1', metadata: meta, spec, status: existing ? existing['status'] : { conditions: [] } };
    this.nodes.set(f.name, node);
    this.bump(existing ? 'MODIFIED' : 'ADDED', node);
    return clone(node);
  }

  /** An operator's edit: annotations merged (null deletes), spec fields replaced. */
  /** Changes a node as another client would; `manager` records who (metadata.managedFields). */
  editNode(name: string, edit: { annotations?: Record<string, string | null>; spec?: Json; manager?: string }): Json {
    const node = this.nodes.get(name);
    if (!node) throw new Error(`no node ${name}`);
    if (edit.annotations) mergeAnnotations(node, edit.annotations);
    if (edit.annotations && edit.manager) recordManagedAnnotations(node, edit.manager, Object.keys(edit.annotations));
    if (edit.spec) node['spec'] = { ...(node['spec'] as Json), ...edit.spec };
    this.bump('MODIFIED', node);
    return clone(node);
  }

  deleteNode(name: string): void {
    const node = this.nodes.get(name);
    if (!node) throw new Error(`no node ${name}`);
    this.nodes.delete(name);
    this.bump('DELETED', node);
  }

  getNode(name: string): Json | undefined {
    const n = this.nodes.get(name);
    return n ? clone(n) : undefined;
  }

  putPod(namespace: string, name: string, nodeName: string): void {
    this.pods.set(`${namespace}/${name}`, { kind: 'Pod', apiVersion: 'v1', metadata: { name, namespace, resourceVersion: String(this.rv) }, spec: { nodeName } });
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const url = new URL(req.url ?? '/', 'http://stand-in');
    const query = Object.fromEntries(url.searchParams.entries());
    const body = Buffer.concat(chunks).toString();
    this.requests.push({ method: req.method ?? '', path: url.pathname, query, contentType: req.headers['content-type'], authorization: req.headers['authorization'], body });
    const send = (code: number, obj: Json): void => {
      res.writeHead(code, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(obj));
    };
    if (this.options.token !== undefined && req.headers['authorization'] !== `Bearer ${this.options.token}`) {
      return send(401, status(401, 'Unauthorized', 'Unauthorized'));
    }
    const p = url.pathname.split('/').filter((x) => x !== '');
    // /api/v1/nodes[/name[/status]], /api/v1/namespaces/ns/pods/name
    if (p[0] !== 'api' || p[1] !== 'v1') return send(404, status(404, 'NotFound', 'the server could not find the requested resource'));
    if (p[2] === 'nodes' && p.length === 3 && req.method === 'GET') {
      if (query['watch'] === 'true' || query['watch'] === '1') return this.watch(query, res);
      const rv = query['resourceVersion'];
      if (rv && rv !== '0' && Number(rv) < this.compactedRv) {
        return send(410, status(410, 'Expired', `The provided resourceVersion ${rv} is too old (current ${this.rv})`));
      }
      return send(200, { kind: 'NodeList', apiVersion: 'v1', metadata: { resourceVersion: String(this.rv) }, items: [...this.nodes.values()].map(clone) });
    }
    if (p[2] === 'nodes' && p.length >= 4) {
      const name = decodeURIComponent(p[3]!);
      const node = this.nodes.get(name);
      const notFound = (): void => send(404, status(404, 'NotFound', `nodes "${name}" not found`, { name, kind: 'nodes' }));
      if (p.length === 4 && req.method === 'GET') return node ? send(200, clone(node)) : notFound();
      if (req.method === 'PATCH' && p.length === 4) {
        return send(403, status(403, 'Forbidden', `nodes "${name}" is forbidden: User "system:serviceaccount:kube-flannel:flannel" cannot patch resource "nodes" in API group "" at the cluster scope`));
      }
      if (req.method === 'PATCH' && p.length === 5 && p[4] === 'status') {
        if (!node) return notFound();
        const ct = (req.headers['content-type'] ?? '').split(';')[0]!.trim();
        if (ct !== 'application/strategic-merge-patch+json' && ct !== 'application/merge-patch+json') {
          return send(415, status(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got ${ct})`));
        }
        if (this.failPatches.count > 0) {
          this.failPatches.count--;
          return send(this.failPatches.code, status(this.failPatches.code, 'InternalError', 'injected failure'));
        }
        let patch: Json;
        try {
          patch = JSON.parse(body) as Json;
        } catch {
          return send(400, status(400, 'BadRequest', 'the patch body is not JSON'));
        }
        const annotations = (patch['metadata'] as Json | undefined)?.['annotations'] as Record<string, string | null> | undefined;
        if (annotations) {
          mergeAnnotations(node, annotations);
          // Field management as the API server keeps it: the patch's fieldManager (else the
          // client's user agent up to the first "/") now owns these annotations.
          const manager = query['fieldManager'] ?? (req.headers['user-agent'] ?? 'unknown').split('/')[0]!;
          recordManagedAnnotations(node, manager, Object.keys(annotations));
        }
        const conditions = (patch['status'] as Json | undefined)?.['conditions'] as Json[] | undefined;
        if (conditions) {
          const st = (node['status'] ??= { conditions: [] }) as Json;
          const list = ((st['conditions'] as Json[] | undefined) ?? []).slice();
          for (const c of conditions) {
            const i = list.findIndex((x) => x['type'] === c['type']);
            if (i >= 0) list[i] = { ...list[i], ...c };
            else list.push(c);
          }
          st['conditions'] = list;
        }
        // spec changes through /status are ignored (the node status strategy resets spec).
        this.bump('MODIFIED', node);
        return send(200, clone(node));
      }
    }
    if (p[2] === 'namespaces' && p[4] === 'pods' && p.length === 6 && req.method === 'GET') {
      const pod = this.pods.get(`${p[3]}/${p[5]}`);
      return pod ? send(200, clone(pod)) : send(404, status(404, 'NotFound', `pods "${p[5]}" not found`, { name: p[5]!, kind: 'pods' }));
    }
    return send(405, status(405, 'MethodNotAllowed', `${req.method} ${url.pathname} is not supported by the stand-in`));
  }

  private watch(query: Record<string, string>, res: http.ServerResponse): void {
    const from = query['resourceVersion'];
    res.writeHead(200, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' });
    res.flushHeaders(); // the real server answers at once; clients wait for the headers
    const write = (type: string, object: Json): void => void res.write(JSON.stringify({ type, object }) + '\n');
    const startRv = from === undefined || from === '' || from === '0' ? undefined : Number(from);
    if (startRv !== undefined && (!Number.isFinite(startRv) || startRv < this.compactedRv)) {
      write('ERROR', status(410, 'Expired', `too old resource version: ${from} (${this.rv})`));
      res.end();
      return;
    }
    if (startRv === undefined) {
      for (const n of this.nodes.values()) write('ADDED', n);
    } else {
      for (const e of this.history) if (e.rv > startRv) write(e.type, e.object);
    }
    let bookmark: NodeJS.Timeout | undefined;
    if (query['allowWatchBookmarks'] === 'true') {
      bookmark = setInterval(() => write('BOOKMARK', { kind: 'Node', apiVersion: 'v1', metadata: { resourceVersion: String(this.rv) } }), this.options.bookmarkIntervalMs ?? 1000);
    }
    const timeout = query['timeoutSeconds'] ? setTimeout(() => w.end(), Number(query['timeoutSeconds']) * 1000) : undefined;
    const w = {
      send: (e: WatchEvent) => write(e.type, e.object),
      end: () => {
        clearInterval(bookmark);
        clearTimeout(timeout);
        this.watches.delete(w);
        res.end();
      },
    };
    this.watches.add(w);
    res.on('close', () => {
      clearInterval(bookmark);
      clearTimeout(timeout);
      this.watches.delete(w);
    });
  }
}

function mergeAnnotations(node: Json, patch: Record<string, string | null>): void {
  const meta = node['metadata'] as Json;
  const cur = { ...((meta['annotations'] as Record<string, string> | undefined) ?? {}) };
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete cur[k];
    else cur[k] = v;
  }
  meta['annotations'] = cur;
}

/** metadata.managedFields after `manager` set `keys` of the annotations (ownership moves to it). */
function recordManagedAnnotations(node: Json, manager: string, keys: string[]): void {
  const meta = node['metadata'] as Json;
  const entries = ((meta['managedFields'] as Json[] | undefined) ?? []).map((e) => structuredClone(e));
  const annotationsOf = (e: Json): Json => (((e['fieldsV1'] ??= {}) as Json)['f:metadata'] ??= {}) as Json;
  for (const e of entries) {
    const a = (annotationsOf(e)['f:annotations'] ?? {}) as Json;
    for (const k of keys) delete a[`f:${k}`];
  }
  let mine = entries.find((e) => e['manager'] === manager && e['subresource'] === 'status');
  if (!mine) {
    mine = { manager, operation: 'Update', apiVersion: 'v1', subresource: 'status', fieldsType: 'FieldsV1', fieldsV1: {} };
    entries.push(mine);
  }
  const a = ((annotationsOf(mine)['f:annotations'] ??= {}) as Json);
  for (const k of keys) a[`f:${k}`] = {};
  meta['managedFields'] = entries;
}
