/**
 * The kube subnet manager (docs/compatibility.md §11): the own subnet is the Node's
 * podCIDR, the node is published through annotations on the Node object,
 * and the other nodes come from a node informer as lease events. Same
 * interface as the etcd manager, so every backend runs unchanged.
 *
 * Lifecycle (docs/compatibility.md §11.7): no renewal, no own-lease loss (deleting the own Node
 * changes nothing here), NetworkUnavailable=False patched once running,
 * annotations and condition left in place at shutdown.
 *
 * Our annotations are ours: when someone else changes them (a patch of
 * public-ip would redirect our pods' traffic on every peer; removing the
 * backend annotations withdraws us), they are restored as soon as the node
 * event arrives (retried every retry interval until it works), and what
 * changed is logged with the managers that changed it (managedFields).
 */
import * as fs from 'node:fs';
import type { Logger } from '../../logging';
import { isAborted, sleep, throwIfAborted } from '../../util/backoff';
import { formatIpv4, Ipv4Net } from '../../util/ipv4';
import { LogOnce } from '../../util/repeat-log';
import { formatIpv6 } from '../../util/ipv6';
import type { Lease, LeaseAttrs, RecordBatch, RecordChange } from '../lease';
import { kubeNetworkConfig, type NetworkConfig, NetworkConfigError, parseNetworkConfig } from '../network-config';
import type { HeldLease, LeasesWatch, LeasesWatchStats, SubnetManager } from '../subnet-manager';
import { type AnnotationKeys, annotationKeys } from './annotations';
import { FIELD_MANAGER, KubeApiError, KubeClient, loadKubeConfig, type NodeInformer } from './kube-client';
import {
  annotationManagers,
  checkOwnSubnets,
  type Families,
  type KubeNode,
  networkAvailableConditionPatch,
  ownAnnotationPatch,
  ownNodeSubnets,
  type OwnPublication,
  patchedAnnotationKeys,
  publicIpHints,
  storedVtepMac,
} from './node-lease';
import { NodeLeaseTracker, type SkippedNode } from './node-tracker';
import { NamedError, errorText } from '../../util/errors';

/** A kube-mode startup failure; the daemon prints `Failed to create SubnetManager: <message>` (or the lease wrapper). */
export class KubeSubnetManagerError extends NamedError {}

export interface KubeModeConfig {
  kubeconfigFile: string;
  kubeApiUrl: string;
  kubeAnnotationPrefix: string;
  netConfigPath: string;
  setNodeNetworkUnavailable: boolean;
}

export interface KubeTimings {
  /** How long startup waits for the first node list (docs/compatibility.md §11.1: 10 min). */
  syncTimeoutMs: number;
  /** How long acquireLease waits for the own node in the cache, and retries the PATCH (docs/compatibility.md §11.2: 30 s, every 3 s). */
  ownNodeTimeoutMs: number;
  retryMs: number;
}

export const UPSTREAM_TIMINGS: KubeTimings = { syncTimeoutMs: 10 * 60_000, ownNodeTimeoutMs: 30_000, retryMs: 3000 };

/** Where kube mode's timings may be shortened for tests (never set in production). */
export const TEST_TIMINGS_ENV = 'FLANNEL_TS_TEST_KUBE_TIMINGS';


/** docs/compatibility.md §11.1: NODE_NAME, else the pod's spec.nodeName. */
async function resolveNodeName(client: KubeClient, env: NodeJS.ProcessEnv): Promise<string> {
  const fromEnv = env['NODE_NAME'];
  if (fromEnv) return fromEnv;
  const pod = env['POD_NAME'];
  const ns = env['POD_NAMESPACE'];
  if (!pod || !ns) {
    throw new KubeSubnetManagerError('env variables POD_NAME and POD_NAMESPACE must be set (or set NODE_NAME to the name of this Node)');
  }
  let found;
  try {
    found = await client.getPod(ns, pod);
  } catch (e) {
    throw new KubeSubnetManagerError(`error retrieving pod spec for '${ns}/${pod}': ${errorText(e)}`, { cause: e });
  }
  const name = found.spec?.nodeName;
  if (!name) throw new KubeSubnetManagerError(`node name not present in pod spec '${ns}/${pod}'`);
  return name;
}

/** docs/compatibility.md §11.1: the network config is read once, parsed only; fatal at once when bad. */
export function readNetConf(file: string): NetworkConfig {
  let raw: string;
  try {
    raw = fs.readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file or directory' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a directory' : errorText(e);
    throw new KubeSubnetManagerError(
      `failed to read net conf: open ${file}: ${why} (mount the kube-flannel-cfg ConfigMap at ${file.replace(/\/[^/]*$/, '/')} or pass -net-config-path)`,
    );
  }
  try {
    return kubeNetworkConfig(parseNetworkConfig(raw));
  } catch (e) {
    if (e instanceof NetworkConfigError) throw new KubeSubnetManagerError(`error parsing subnet config: ${e.message} (in ${file})`);
    throw e;
  }
}

export class KubeSubnetManager implements SubnetManager {
  readonly store = 'kubernetes';
  private readonly tracker: NodeLeaseTracker;
  private informer: NodeInformer | undefined;
  private ownNode: KubeNode | undefined;
  private readonly watchers = new Set<(batch: RecordBatch) => void>();
  private readonly loggedSkips = new LogOnce();
  private readonly stats: LeasesWatchStats = { reconnects: 0, resyncs: 0, skippedKeys: 0, connected: false, snapshotApplied: false, resets: 0 };
  private closed = false;
  /** The last failure of the node list/watch, for the sync-timeout error. */
  private lastListError: string | undefined;
  /** What this node published (acquireLease): kept in place afterwards. */
  private published: OwnPublication | undefined;
  private restoring = false;
  private restoreTimer: NodeJS.Timeout | undefined;

  private constructor(
    readonly client: KubeClient,
    readonly nodeName: string,
    readonly network: NetworkConfig,
    readonly keys: AnnotationKeys,
    private readonly cfg: KubeModeConfig,
    private readonly timings: KubeTimings,
    private readonly log: Logger,
    private readonly now: () => Date = () => new Date(),
  ) {
    const families: Families = { ipv4: network.enableIPv4, ipv6: network.enableIPv6 };
    this.tracker = new NodeLeaseTracker(nodeName, families, keys, (s) => this.skipped(s));
  }

  /**
   * docs/compatibility.md §11.1 steps 1-5: client config, node name, net-conf.json, annotation
   * keys, then the node informer and the wait for its first list. Errors are
   * KubeSubnetManagerError with upstream's text and what to do.
   */
  static async create(cfg: KubeModeConfig, env: NodeJS.ProcessEnv, log: Logger, signal: AbortSignal): Promise<KubeSubnetManager> {
    const timings = parseTestTimings(env[TEST_TIMINGS_ENV]);
    let client: KubeClient;
    try {
      client = new KubeClient(loadKubeConfig({ kubeconfigFile: cfg.kubeconfigFile, apiUrl: cfg.kubeApiUrl, env, log }), log);
    } catch (e) {
      throw new KubeSubnetManagerError(errorText(e), { cause: e });
    }
    const name = await resolveNodeName(client, env);
    const network = readNetConf(cfg.netConfigPath);
    let keys: AnnotationKeys;
    try {
      keys = annotationKeys(cfg.kubeAnnotationPrefix);
    } catch (e) {
      throw new KubeSubnetManagerError(`error creating network manager: ${errorText(e)}`, { cause: e });
    }
    const depth = env['EVENT_QUEUE_DEPTH'];
    if (depth !== undefined && depth !== '' && !/^[+-]?\d+$/.test(depth)) {
      throw new KubeSubnetManagerError(`env EVENT_QUEUE_DEPTH=${depth} format error: strconv.Atoi: parsing ${JSON.stringify(depth)}: invalid syntax (a decimal integer; it has no effect in flannel-ts, which applies node events without a queue)`);
    }
    const m = new KubeSubnetManager(client, name, network, keys, cfg, timings, log);
    await m.startInformer(env['CONT_WHEN_CACHE_NOT_READY'] === 'true', signal);
    log.info({ node: name, server: client.server }, `Created subnet manager: Kubernetes Subnet Manager - ${name}`);
    return m;
  }

  private async startInformer(continueWhenNotReady: boolean, signal: AbortSignal): Promise<void> {
    this.informer = this.client.nodeInformer({
      upsert: (n) => this.onNode(n, false),
      delete: (n) => this.onNode(n, true),
      state: (connected, err) => {
        this.stats.connected = connected;
        this.stats.reconnects = this.informer?.restarts ?? 0;
        if (err) this.lastListError = err.message;
      },
    });
    const minutes = this.timings.syncTimeoutMs / 60_000;
    this.log.info({}, `Waiting ${minutes >= 1 ? `${minutes}m0s` : `${this.timings.syncTimeoutMs / 1000}s`} for node controller to sync`);
    this.log.info({}, 'Starting kube subnet manager');
    this.informer.start();
    let timer: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([
      this.informer.whenSynced().then(() => 'synced' as const),
      new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), this.timings.syncTimeoutMs))),
      new Promise<'aborted'>((resolve) => signal.addEventListener('abort', () => resolve('aborted'), { once: true })),
    ]);
    clearTimeout(timer);
    if (outcome === 'aborted') {
      await this.close();
      throwIfAborted(signal);
    }
    if (outcome === 'synced') {
      this.log.info({}, 'Node controller sync successful');
      return;
    }
    if (continueWhenNotReady) {
      this.log.warn({}, 'Timed out waiting for node controller sync. Continuing anyway.');
      return;
    }
    await this.close();
    throw new KubeSubnetManagerError(
      `error waiting for nodeController to sync state: context deadline exceeded (no node list from ${this.client.server} within ${this.timings.syncTimeoutMs / 1000} s${
        this.lastListError ? `; the last attempt: ${this.lastListError}` : ': check the API server address, the credentials, and that the ClusterRole grants nodes list and watch'
      })`,
    );
  }

  private onNode(node: KubeNode, deleted: boolean): void {
    if (node.metadata?.name === this.nodeName) {
      this.ownNode = deleted ? undefined : node;
      if (!deleted) this.checkOwnAnnotations();
    }
    const changes: RecordChange[] = deleted ? this.tracker.delete(node) : this.tracker.upsert(node);
    if (changes.length === 0 || this.closed) return;
    for (const w of this.watchers) w({ kind: 'changes', changes });
  }

  private skipped(s: SkippedNode): void {
    this.stats.skippedKeys++;
    const id = `${s.node}@${s.resourceVersion}:${s.reason}`;
    if (!this.loggedSkips.first(id)) return;
    this.log.warn({ node: s.node, reason: s.reason }, `Error turning node "${s.node}" to lease: ${s.reason} (node skipped; the other nodes' routes are unaffected)`);
  }

  async getNetworkConfig(): Promise<NetworkConfig> {
    return this.network;
  }

  /** docs/compatibility.md §11.1: the own node's node-public-ip(v6) annotations replace -public-ip(v6). */
  async publicIpHints(): Promise<{ publicIp: string | undefined; publicIpv6: string | undefined }> {
    try {
      const node = await this.client.getNode(this.nodeName);
      this.log.info({ node: this.nodeName, annotations: node.metadata?.annotations ?? {} }, `List of node(${this.nodeName}) annotations`);
      return publicIpHints(node, this.keys);
    } catch (e) {
      this.log.warn({ err: errorText(e) }, `Failed to get node for backend data: ${errorText(e)}`);
      return { publicIp: undefined, publicIpv6: undefined };
    }
  }

  requestErrors(): number {
    return this.client.requestErrors;
  }

  /** vxlan: the VtepMAC published earlier (of flannel-v6.<VNI> for `family` 6), read from the own node, so a restart keeps the MAC peers know (docs/compatibility.md §11.8). */
  async storedVtepMac(family: 4 | 6 = 4): Promise<string | undefined> {
    let node: KubeNode;
    try {
      node = await this.client.getNode(this.nodeName);
    } catch (e) {
      this.log.warn({ err: errorText(e) }, `Failed to get node for backend data: ${errorText(e)}; a new VtepMAC is chosen`);
      return undefined;
    }
    const annotation = family === 6 ? this.keys.backendV6Data : this.keys.backendData;
    const raw = node.metadata?.annotations?.[annotation];
    const mac = storedVtepMac(raw);
    if (raw !== undefined && raw !== 'null' && mac === undefined) this.log.warn({ annotation, value: raw }, `Failed to parse mac addr(${raw}): no VtepMAC; a new one is chosen`);
    return mac;
  }

  private async waitOwnNode(signal: AbortSignal): Promise<KubeNode> {
    const deadline = Date.now() + this.timings.ownNodeTimeoutMs;
    for (;;) {
      throwIfAborted(signal);
      if (this.ownNode) return this.ownNode;
      if (Date.now() >= deadline) {
        throw new KubeSubnetManagerError(
          `timeout contacting kube-api, failed to patch node "${this.nodeName}". Error: context deadline exceeded (no Node named "${this.nodeName}" in the node list: check NODE_NAME / the pod's spec.nodeName)`,
        );
      }
      await sleep(Math.min(this.timings.retryMs, Math.max(1, deadline - Date.now())), signal);
    }
  }

  /**
   * docs/compatibility.md §11.5: the own lease is the node's podCIDR; it is checked against
   * Network first, then the annotations are patched (retried for 30 s).
   */
  async acquireLease(attrs: LeaseAttrs, signal: AbortSignal): Promise<Lease> {
    const node = await this.waitOwnNode(signal);
    const families: Families = { ipv4: this.network.enableIPv4, ipv6: this.network.enableIPv6 };
    let own;
    try {
      own = ownNodeSubnets(node);
      checkOwnSubnets(this.nodeName, own, families, this.network.network, this.network.ipv6Network, this.cfg.netConfigPath);
    } catch (e) {
      throw new KubeSubnetManagerError(errorText(e), { cause: e });
    }
    if (families.ipv4 && !own.subnet) {
      throw new KubeSubnetManagerError(`IPv4 is enabled but the lease has no IPv4 (node "${this.nodeName}" has no IPv4 pod CIDR)`);
    }
    const publication: OwnPublication = {
      backendType: attrs.backendType,
      backendData: attrs.backendData,
      backendV6Data: attrs.backendV6Data,
      publicIp: formatIpv4(attrs.publicIp),
      publicIpv6: attrs.publicIpv6 === undefined ? undefined : formatIpv6(attrs.publicIpv6),
    };
    const patch = ownAnnotationPatch(node, publication, this.keys);
    for (const o of patch.overrides) this.log.info({ key: o.key, value: o.value }, `Overriding public ip with '${o.value}' from node annotation '${o.key}'`);
    if (patch.needed) await this.patchAnnotations(patch.body, signal);
    else this.log.info({ node: this.nodeName }, `the annotations of node "${this.nodeName}" are up to date`);
    this.published = publication;
    return {
      // IPv6 only: 0.0.0.0/0, as upstream's zero IP4Net.
      subnet: families.ipv4 && own.subnet ? own.subnet : new Ipv4Net(0, 0),
      ipv6Subnet: families.ipv6 ? own.ipv6Subnet : undefined,
      attrs,
      // Kube mode leases do not expire (upstream fills in 24 h that nothing reads).
      expiration: undefined,
    };
  }

  /** Restores our annotations when someone else changed them (at most one restore at a time; retried). */
  private checkOwnAnnotations(): void {
    const node = this.ownNode;
    if (!node || !this.published || this.restoring || this.closed) return;
    const patch = ownAnnotationPatch(node, this.published, this.keys);
    if (!patch.needed) return;
    const keys = patchedAnnotationKeys(patch.body);
    const current = node.metadata?.annotations ?? {};
    const managers = annotationManagers(node, keys, FIELD_MANAGER);
    const changes = keys.map((k) => `${k}: ${current[k] === undefined ? '(removed)' : JSON.stringify(current[k])}`);
    this.log.warn(
      { node: this.nodeName, changed: keys, by: managers },
      `the flannel annotations of node "${this.nodeName}" were changed by ${managers.length > 0 ? managers.join(', ') : 'another client'} (${changes.join('; ')}); restoring them`,
    );
    this.restoring = true;
    this.client.patchNodeStatus(this.nodeName, patch.body).then(
      () => {
        this.restoring = false;
        this.log.info({ node: this.nodeName, patch: patch.body }, `restored node "${this.nodeName}"'s flannel annotations`);
      },
      (e: unknown) => {
        this.restoring = false;
        this.log.warn({ err: errorText(e) }, `could not restore node "${this.nodeName}"'s annotations: ${errorText(e)}; trying again in ${this.timings.retryMs / 1000} s`);
        if (this.restoreTimer) clearTimeout(this.restoreTimer);
        this.restoreTimer = setTimeout(() => this.checkOwnAnnotations(), this.timings.retryMs);
        this.restoreTimer.unref();
      },
    );
  }

  private async patchAnnotations(body: string, signal: AbortSignal): Promise<void> {
    const deadline = Date.now() + this.timings.ownNodeTimeoutMs;
    let last: unknown;
    for (;;) {
      throwIfAborted(signal);
      try {
        await this.client.patchNodeStatus(this.nodeName, body);
        this.log.info({ node: this.nodeName, patch: body }, `published node "${this.nodeName}"'s flannel annotations`);
        return;
      } catch (e) {
        if (isAborted(e)) throw e;
        last = e;
        this.log.debug({ err: errorText(e) }, `Failed to patch node "${this.nodeName}": ${errorText(e)}`);
      }
      if (Date.now() + this.timings.retryMs > deadline) break;
      await sleep(this.timings.retryMs, signal);
    }
    const hint = last instanceof KubeApiError && last.status === 403 ? ' (the ClusterRole must grant patch on nodes/status)' : '';
    throw new KubeSubnetManagerError(`timeout contacting kube-api, failed to patch node "${this.nodeName}". Error: ${errorText(last)}${hint}`, { cause: last });
  }

  /** docs/compatibility.md §11.7: no renewal and no loss in kube mode. */
  holdLease(lease: Lease): HeldLease {
    return { lease, lost: new Promise(() => undefined), expiresAt: undefined, stop: async () => undefined };
  }

  /** The NetworkUnavailable=False patch after start (docs/compatibility.md §11.2; unless -set-node-network-unavailable=false); one attempt, failure logged. */
  async completeLease(): Promise<void> {
    if (!this.cfg.setNodeNetworkUnavailable) return;
    try {
      await this.client.patchNodeStatus(this.nodeName, networkAvailableConditionPatch(this.now()));
      this.log.info({ node: this.nodeName }, `node "${this.nodeName}": condition NetworkUnavailable=False (FlannelIsUp)`);
    } catch (e) {
      this.log.error({ err: errorText(e) }, `CompleteLease execute error err: ${errorText(e)}`);
    }
  }

  /** Every gated peer node's record now, then each change; the own node never appears. */
  watchLeases(_own: Lease, onBatch: (batch: RecordBatch) => void): LeasesWatch {
    const stats = this.stats;
    let active = true;
    const deliver = (batch: RecordBatch): void => {
      if (active) onBatch(batch);
    };
    queueMicrotask(() => {
      if (!active) return;
      this.watchers.add(deliver);
      stats.snapshotApplied = this.informer?.synced ?? false;
      onBatch({ kind: 'snapshot', records: this.tracker.snapshot() });
      if (!stats.snapshotApplied) void this.informer?.whenSynced().then(() => (stats.snapshotApplied = true));
    });
    return {
      stats,
      resync: () => {
        if (active && this.watchers.has(deliver)) deliver({ kind: 'snapshot', records: this.tracker.snapshot() });
      },
      stop: async () => {
        active = false;
        this.watchers.delete(deliver);
      },
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.restoreTimer) clearTimeout(this.restoreTimer);
    this.watchers.clear();
    await this.informer?.stop();
  }
}

/** `syncTimeoutMs,ownNodeTimeoutMs,retryMs` for tests; upstream's values otherwise. */
function parseTestTimings(v: string | undefined): KubeTimings {
  if (!v) return UPSTREAM_TIMINGS;
  const [a, b, c] = v.split(',').map(Number);
  if (![a, b, c].every((x) => Number.isInteger(x) && x! > 0)) {
    throw new KubeSubnetManagerError(`${TEST_TIMINGS_ENV}=${v}: expected three positive integers (ms): sync timeout, own-node timeout, retry interval`);
  }
  return { syncTimeoutMs: a!, ownNodeTimeoutMs: b!, retryMs: c! };
}
