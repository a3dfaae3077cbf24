/**
 * The Kubernetes API as kube mode uses it (docs/compatibility.md §11.2): the client config
 * of docs/compatibility.md §11.1 step 1, node/pod GETs, the two status-subresource PATCHes, and a
 * node informer. Built on @kubernetes/client-node; this file is the only
 * place that imports it, so the subnet manager sees a small typed surface.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import { CoreV1Api, KubeConfig, type Informer, type ListPromise, ListWatch, PatchStrategy, setHeaderOptions, type V1Node, Watch } from '@kubernetes/client-node';
import type { Logger } from '../../logging';
import { Backoff } from '../../util/backoff';
import type { KubeNode } from './node-lease';
import { NamedError, errorText } from '../../util/errors';
import { tlsProblem } from '../../util/tls-errors';

export const SERVICEACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** The API client cannot be configured (docs/compatibility.md §11.1 step 1); `Failed to create SubnetManager: fail to create kubernetes config: …`. */
export class KubeConfigError extends NamedError {}

/** An API call failed: the HTTP status (0 when there was no answer) and the server's Status message. */
export class KubeApiError extends NamedError {
  constructor(
    readonly operation: string,
    readonly status: number,
    detail: string,
  ) {
    super(`${operation}: ${status === 0 ? detail : `${status} ${detail}`}`);
  }
}

export interface KubeClientOptions {
  kubeconfigFile: string;
  apiUrl: string;
  /** The process environment (KUBERNETES_SERVICE_HOST/PORT). */
  env: NodeJS.ProcessEnv;
  /** The service-account directory (tests point it elsewhere). */
  serviceAccountDir?: string;
  log: Logger;
}

/**
 * The client config, as client-go's BuildConfigFromFlags decides it
 * (docs/compatibility.md §11.1 step 1): kubeconfig file (server replaced by -kube-api-url when both
 * are given), the URL alone (anonymous), or the in-cluster service account.
 * KUBECONFIG and ~/.kube/config are never consulted.
 */
export function loadKubeConfig(o: KubeClientOptions): KubeConfig {
  return allowPlainHttp(loadKubeConfigAsGiven(o));
}

/**
 * client-node refuses an http:// server unless TLS verification is off;
 * client-go talks plain HTTP to such a server (there is no TLS to verify),
 * so an http:// server is marked that way.
 */
function allowPlainHttp(kc: KubeConfig): KubeConfig {
  if (!kc.clusters.some((c) => c.server.startsWith('http://') && !c.skipTLSVerify)) return kc;
  kc.loadFromOptions({
    clusters: kc.clusters.map((c) => (c.server.startsWith('http://') ? { ...c, skipTLSVerify: true } : c)),
    users: kc.users,
    contexts: kc.contexts,
    currentContext: kc.currentContext,
  });
  return kc;
}

function loadKubeConfigAsGiven(o: KubeClientOptions): KubeConfig {
  const kc = new KubeConfig();
  if (o.kubeconfigFile !== '') {
    if (!fs.existsSync(o.kubeconfigFile)) throw new KubeConfigError(`fail to create kubernetes config: stat ${o.kubeconfigFile}: no such file or directory`);
    try {
      kc.loadFromFile(o.kubeconfigFile);
    } catch (e) {
      throw new KubeConfigError(`fail to create kubernetes config: ${o.kubeconfigFile}: ${errorText(e)}`);
    }
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new KubeConfigError(`fail to create kubernetes config: ${o.kubeconfigFile} has no current-context with a cluster`);
    if (o.apiUrl !== '') {
      kc.loadFromOptions({
        clusters: kc.clusters.map((c) => (c.name === cluster.name ? { ...c, server: o.apiUrl } : c)),
        users: kc.users,
        contexts: kc.contexts,
        currentContext: kc.currentContext,
      });
    }
    return kc;
  }
  if (o.apiUrl !== '') {
    kc.loadFromClusterAndUser({ name: 'kube-api-url', server: o.apiUrl, skipTLSVerify: false }, { name: 'anonymous' });
    return kc;
  }
  o.log.warn({}, 'Neither --kubeconfig nor --master was specified.  Using the inClusterConfig.  This might not work.');
  const host = o.env['KUBERNETES_SERVICE_HOST'];
  const port = o.env['KUBERNETES_SERVICE_PORT'];
  const dir = o.serviceAccountDir ?? SERVICEACCOUNT_DIR;
  let problem: string | undefined;
  if (!host || !port) problem = 'unable to load in-cluster configuration, KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be defined';
  else if (!readable(`${dir}/token`)) problem = `open ${dir}/token: no such file or directory`;
  if (problem) {
    o.log.warn({}, `error creating inClusterConfig, falling back to default config: ${problem}`);
    throw new KubeConfigError(
      'fail to create kubernetes config: invalid configuration: no configuration has been provided, try setting KUBERNETES_MASTER environment variable (run flanneld in a pod with a service account, or pass -kubeconfig-file or -kube-api-url)',
    );
  }
  const caFile = `${dir}/ca.crt`;
  if (!readable(caFile)) o.log.error({ file: caFile }, `cannot read ${caFile}; the system's root CAs are used`);
  // client-go's InClusterConfig: https://host:port (IPv6 bracketed), the token re-read from its file.
  kc.loadFromOptions({
    clusters: [{ name: 'inCluster', server: `https://${net.isIPv6(host!) ? `[${host}]` : host}:${port}`, ...(readable(caFile) ? { caFile } : {}), skipTLSVerify: false }],
    users: [{ name: 'inClusterUser', authProvider: { name: 'tokenFile', config: { tokenFile: `${dir}/token` } } }],
    contexts: [{ name: 'inClusterContext', cluster: 'inCluster', user: 'inClusterUser' }],
    currentContext: 'inClusterContext',
  });
  return kc;
}

function readable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.R_OK);
    return true;
  } catch {
    return false;
  }
}

/** Where the kube client's TLS settings come from, for the fix texts. */
const KUBE_TLS_SETTINGS = {
  ca: "the kubeconfig cluster's certificate-authority (in a pod: the service account's ca.crt)",
  clientCert: "the kubeconfig user's client-certificate and client-key",
};

/** Every call but the watch gives up after this (client-go has no default; a hung server must not hang startup). */
export const KUBE_REQUEST_TIMEOUT_MS = 15_000;

function statusDetail(e: unknown): { status: number; detail: string } {
  const err = e as { code?: unknown; body?: unknown; message?: unknown };
  if (typeof err.code === 'number' && err.code >= 100) {
    let detail = '';
    const body = typeof err.body === 'string' ? safeJson(err.body) : err.body;
    if (body && typeof body === 'object' && typeof (body as { message?: unknown }).message === 'string') detail = (body as { message: string }).message;
    return { status: err.code, detail: detail || 'no Status message' };
  }
  const tls = tlsProblem(e, KUBE_TLS_SETTINGS);
  if (tls) return { status: 0, detail: `TLS with the API server failed: ${tls.cause}. Fix: ${tls.fix} (${errorText(e)})` };
  const cause = (e as { cause?: { code?: string } }).cause?.code;
  return { status: 0, detail: `${errorText(e)}${cause ? ` (${cause})` : ''}` };
}

function safeJson(s: string): unknown {
  try {
    return JSON.parse(s);
  } catch {
    return undefined;
  }
}

async function call<T>(operation: string, f: () => Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new KubeApiError(operation, 0, `no answer within ${KUBE_REQUEST_TIMEOUT_MS} ms`)), KUBE_REQUEST_TIMEOUT_MS);
  });
  try {
    return await Promise.race([f(), timeout]);
  } catch (e) {
    if (e instanceof KubeApiError) throw e;
    const { status, detail } = statusDetail(e);
    throw new KubeApiError(operation, status, detail);
  } finally {
    clearTimeout(timer);
  }
}

export interface NodeWatchHandlers {
  upsert(node: KubeNode): void;
  delete(node: KubeNode): void;
  /** The informer's connection state (listing/watching or waiting to retry). */
  state(connected: boolean, error?: KubeApiError): void;
}

/**
 * Watches as client-go's reflector makes them (docs/compatibility.md §11.2):
 * bookmarks allowed and a random server-side timeout of 300-599 s, after
 * which the informer re-watches from its resourceVersion. A client-side
 * deadline 30 s later aborts a stream whose connection died silently
 * (client-node sets neither), so a dead API connection is noticed in
 * minutes, not when TCP keepalive gives up.
 */
export class RecyclingWatch extends Watch {
  override async watch(
    path: string,
    queryParams: Record<string, string | number | boolean | undefined>,
    callback: (phase: string, apiObj: any, watchObj?: any) => void,
    done: (err: any) => void,
  ): Promise<AbortController> {
    const timeoutSeconds = WATCH_TIMEOUT_MIN_S + Math.floor(Math.random() * (WATCH_TIMEOUT_MAX_S - WATCH_TIMEOUT_MIN_S + 1));
    let timer: NodeJS.Timeout | undefined;
    let finished = false;
    const controller = await super.watch(path, { ...queryParams, allowWatchBookmarks: true, timeoutSeconds }, callback, (err: unknown) => {
      finished = true;
      clearTimeout(timer);
      done(err);
    });
    if (!finished) {
      timer = setTimeout(() => controller.abort(), (timeoutSeconds + 30) * 1000);
      timer.unref();
    }
    return controller;
  }
}

export const WATCH_TIMEOUT_MIN_S = 300;
export const WATCH_TIMEOUT_MAX_S = 599;

/** The informer's backoff on list/watch failures: client-go's reflector values (docs/compatibility.md §11.2). */
export const WATCH_BACKOFF_INITIAL_MS = 800;
export const WATCH_BACKOFF_MAX_MS = 30_000;

/**
 * A node informer: list, then watch from the list's resourceVersion; a 410
 * relists (client-node's ListWatch, which also reports nodes a relist no
 * longer has as deleted); any other failure is retried with backoff forever.
 */
export class NodeInformer {
  private informer: Informer<V1Node> | undefined;
  private stopped = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private readonly backoff = new Backoff(WATCH_BACKOFF_INITIAL_MS, WATCH_BACKOFF_MAX_MS);
  private healthySince = 0;
  private syncedFlag = false;
  private syncWaiters: Array<() => void> = [];
  restarts = 0;

  constructor(
    private readonly kc: KubeConfig,
    private readonly api: CoreV1Api,
    private readonly handlers: NodeWatchHandlers,
    private readonly log: Logger,
    private readonly noteError: () => void = () => undefined,
  ) {}

  /** The first list has been delivered. */
  get synced(): boolean {
    return this.syncedFlag;
  }

  /** Resolves once the first list has been delivered. */
  whenSynced(): Promise<void> {
    if (this.syncedFlag) return Promise.resolve();
    return new Promise((resolve) => this.syncWaiters.push(resolve));
  }

  start(): void {
    const list: ListPromise<V1Node> = () => this.api.listNode();
    const inf = new ListWatch<V1Node>('/api/v1/nodes', new RecyclingWatch(this.kc), list, false);
    inf.on('add', (n) => this.handlers.upsert(n as KubeNode));
    inf.on('update', (n) => this.handlers.upsert(n as KubeNode));
    inf.on('delete', (n) => this.handlers.delete(n as KubeNode));
    inf.on('error', (e) => this.failed(e));
    this.informer = inf;
    void this.run();
  }

  private async run(): Promise<void> {
    if (this.stopped || !this.informer) return;
    let failed = false;
    const onError = (): void => {
      failed = true;
    };
    this.informer.on('error', onError);
    try {
      await this.informer.start();
    } catch (e) {
      failed = true;
      this.failed(e);
    } finally {
      this.informer.off('error', onError);
    }
    if (failed || this.stopped) return;
    this.healthySince = Date.now();
    this.handlers.state(true);
    if (!this.syncedFlag) {
      this.syncedFlag = true;
      for (const w of this.syncWaiters.splice(0)) w();
    }
  }

  private failed(e: unknown): void {
    if (this.stopped) return;
    this.noteError();
    const { status, detail } = statusDetail(e);
    const err = new KubeApiError('list/watch nodes', status, detail);
    // A healthy stretch of 2 min resets the backoff, as client-go's reflector does.
    if (this.healthySince > 0 && Date.now() - this.healthySince > 120_000) this.backoff.reset();
    this.healthySince = 0;
    const delay = this.backoff.next();
    this.handlers.state(false, err);
    this.log.warn({ err: err.message, retryInMs: delay }, `node list/watch failed: ${err.message}; retrying in ${delay} ms (the routes known so far stay)`);
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      this.restarts++;
      void this.run();
    }, delay);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    for (const w of this.syncWaiters.splice(0)) w();
    await this.informer?.stop();
  }
}

/** The calls of docs/compatibility.md §11.2 (A, D/E, F/G) and the informer (B, C). */
/** The field manager our patches are recorded under (what client-go derives from upstream's binary name). */
export const FIELD_MANAGER = 'flanneld';

export class KubeClient {
  private readonly api: CoreV1Api;
  /** API requests that failed (calls, and node list/watch failures): flanneld_store_request_errors_total. */
  requestErrors = 0;

  constructor(
    readonly config: KubeConfig,
    private readonly log: Logger,
  ) {
    try {
      this.api = config.makeApiClient(CoreV1Api);
    } catch (e) {
      throw new KubeConfigError(`unable to initialize client: ${errorText(e)}`);
    }
  }

  get server(): string {
    return this.config.getCurrentCluster()?.server ?? '';
  }

  private async counted<T>(operation: string, f: () => Promise<T>): Promise<T> {
    try {
      return await call(operation, f);
    } catch (e) {
      this.requestErrors++;
      throw e;
    }
  }

  /** The own pod, for its spec.nodeName when NODE_NAME is not set. */
  async getPod(namespace: string, name: string): Promise<{ spec?: { nodeName?: string } }> {
    return this.counted(`get pod ${namespace}/${name}`, () => this.api.readNamespacedPod({ name, namespace }));
  }

  /** The own node (its annotations at startup). */
  async getNode(name: string): Promise<KubeNode> {
    return this.counted(`get node ${name}`, () => this.api.readNode({ name }));
  }

  /** The annotations and the condition: a strategic-merge patch of the node's status subresource. */
  async patchNodeStatus(name: string, body: string): Promise<void> {
    await this.counted(`patch node ${name} status`, () =>
      this.api.patchNodeStatus({ name, body: JSON.parse(body) as object, fieldManager: FIELD_MANAGER }, setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch)),
    );
  }

  nodeInformer(handlers: NodeWatchHandlers): NodeInformer {
    return new NodeInformer(this.config, this.api, handlers, this.log, () => this.requestErrors++);
  }
}
