/**
 * The extension backend (upstream's pkg/backend/extension/extension.go and
 * extension_network.go): flanneld allocates and publishes; commands the
 * operator configures do the networking.
 *  - PreStartupCommand, before the lease: its output (trimmed), JSON-encoded
 *    as a string, is the lease's BackendData. PublicIP and PublicIPv6 are
 *    the interface's addresses (upstream takes IfaceAddr, not -public-ip).
 *  - PostStartupCommand, after the lease, with NETWORK, SUBNET, IPV6SUBNET,
 *    PUBLIC_IP, PUBLIC_IPV6 (upstream's texts, "::/0" and "<nil>" without IPv6).
 *  - SubnetAddCommand / SubnetRemoveCommand per other extension lease, with
 *    SUBNET and PUBLIC_IP of that lease (and, beyond upstream, IPV6SUBNET and
 *    PUBLIC_IPV6), its BackendData decoded as a string plus a newline on stdin.
 * A failing pre- or post-start command ends flanneld, as upstream. Commands
 * run as ./commands.ts runs them: no shell, `$VAR` expanded, a time limit.
 *
 * Unlike upstream, which runs the lease commands one after another in its
 * event loop (a hanging one stops every later lease), each lease has its own
 * queue (its add and remove stay in order) and up to COMMAND_CONCURRENCY
 * leases' commands run at once; and a command runs when a lease is new or
 * changed, not again on an unchanged renewal (the lease guard passes only
 * changes on).
 */
import { type Lease, type LeaseEvent, leaseKey } from '../../lease/lease';
import type { Logger } from '../../logging';
import type { LinkDetails } from '../../routing/rtnetlink';
import { NamedError } from '../../util/errors';
import { goJsonString, intField, isJsonObject, JsonFieldError, stringField } from '../../util/go-json';
import { formatIpv4 } from '../../util/ipv4';
import { formatIpv6 } from '../../util/ipv6';
import { SerialQueue } from '../../util/serial';
import { acquireBackendLease, type Backend, type BackendContext, BackendError, type BackendNetwork, type BackendNetworkStatus } from '../backend';
import { runCommandLine } from './commands';

/** Default time limit of one command (Backend option CommandTimeoutSeconds). */
export const DEFAULT_COMMAND_TIMEOUT_S = 60;
/** How many leases' commands may run at once. */
export const COMMAND_CONCURRENCY = 4;
/**
 * The largest BackendData a PreStartupCommand may produce: the lease must
 * stay under the 64 KiB other nodes read (src/lease/etcd/registry.ts,
 * MAX_LEASE_VALUE_BYTES).
 */
export const MAX_EXTENSION_BACKEND_DATA_BYTES = 48 * 1024;

export interface ExtensionConfig {
  preStartupCommand: string;
  postStartupCommand: string;
  subnetAddCommand: string;
  subnetRemoveCommand: string;
  /** Ours: seconds each command may run. */
  commandTimeoutSeconds: number;
}

export class ExtensionConfigError extends NamedError {}

export function parseExtensionConfig(raw: unknown): ExtensionConfig {
  const obj = raw === undefined || raw === null ? {} : raw;
  if (!isJsonObject(obj)) throw new ExtensionConfigError('error decoding backend config: the Backend value must be a JSON object');
  try {
    const cfg = {
      preStartupCommand: stringField(obj, 'PreStartupCommand', ''),
      postStartupCommand: stringField(obj, 'PostStartupCommand', ''),
      subnetAddCommand: stringField(obj, 'SubnetAddCommand', ''),
      subnetRemoveCommand: stringField(obj, 'SubnetRemoveCommand', ''),
      commandTimeoutSeconds: intField(obj, 'CommandTimeoutSeconds', DEFAULT_COMMAND_TIMEOUT_S),
    };
    if (cfg.commandTimeoutSeconds < 1) throw new ExtensionConfigError(`the extension backend option CommandTimeoutSeconds must be at least 1, got ${cfg.commandTimeoutSeconds}`);
    return cfg;
  } catch (e) {
    if (e instanceof JsonFieldError) throw new ExtensionConfigError(`error decoding backend config: ${e.message}`);
    throw e;
  }
}

/** upstream's log line after a command: "Ran command: <cmd>\n Output: <output>". */
function ranMessage(cmd: string, output: string): string {
  return `Ran command: ${cmd}\n Output: ${output}`;
}

/** upstream's failure text: "failed to run command: <cmd> Err: <err> Output: <output>". */
function failedMessage(cmd: string, err: string, output: string): string {
  return `failed to run command: ${cmd} Err: ${err} Output: ${output}`;
}

export class ExtensionBackend implements Backend {
  readonly type = 'extension';

  ownsDevice(_link: LinkDetails): boolean {
    return false;
  }

  async register(ctx: BackendContext): Promise<BackendNetwork> {
    const cfg = parseExtensionConfig(ctx.network.backend);
    const log = ctx.log.child({ backend: 'extension' });
    const timeoutMs = cfg.commandTimeoutSeconds * 1000;
    const ext = ctx.extIface;

    let backendData: string | undefined;
    if (cfg.preStartupCommand !== '') {
      const r = await runCommandLine(cfg.preStartupCommand, {}, '', timeoutMs);
      if (!r.ok) throw new BackendError(failedMessage(cfg.preStartupCommand, r.error!, r.output));
      log.info({ command: cfg.preStartupCommand }, ranMessage(cfg.preStartupCommand, r.output));
      backendData = goJsonString(r.output);
      if (Buffer.byteLength(backendData) > MAX_EXTENSION_BACKEND_DATA_BYTES) {
        throw new BackendError(
          `PreStartupCommand ${cfg.preStartupCommand} printed ${Buffer.byteLength(backendData)} bytes as JSON; the lease's BackendData may have at most ${MAX_EXTENSION_BACKEND_DATA_BYTES} (other nodes skip larger leases)`,
        );
      }
    } else {
      log.info({}, 'No pre startup command configured - skipping');
    }

    const attrs = { publicIp: ext.ifaceAddr ?? 0, publicIpv6: ext.ifaceAddr6, backendType: 'extension', backendData, backendV6Data: undefined };
    const lease = await acquireBackendLease(ctx, attrs);

    if (cfg.postStartupCommand !== '') {
      const vars = {
        NETWORK: (ctx.network.network ?? { toString: () => '0.0.0.0/0' }).toString(),
        SUBNET: lease.subnet.toString(),
        IPV6SUBNET: lease.ipv6Subnet?.toString() ?? '::/0',
        PUBLIC_IP: formatIpv4(attrs.publicIp),
        PUBLIC_IPV6: attrs.publicIpv6 !== undefined ? formatIpv6(attrs.publicIpv6) : '<nil>',
      };
      const r = await runCommandLine(cfg.postStartupCommand, vars, '', timeoutMs);
      if (!r.ok) throw new BackendError(failedMessage(cfg.postStartupCommand, r.error!, r.output));
      log.info({ command: cfg.postStartupCommand }, ranMessage(cfg.postStartupCommand, r.output));
    } else {
      log.info({}, 'No post startup command configured - skipping');
    }
    // upstream's MTU() is the interface's.
    return new ExtensionNetwork(lease, ext.mtu, cfg, log);
  }
}

/** At most `n` tasks at once. */
class Limiter {
  private running = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(private readonly n: number) {}

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.running >= this.n) await new Promise<void>((r) => this.waiting.push(r));
    this.running++;
    try {
      return await task();
    } finally {
      this.running--;
      this.waiting.shift()?.();
    }
  }
}

class ExtensionNetwork implements BackendNetwork {
  private synced = false;
  private stopped = false;
  /** One queue per lease while it has commands to run: they run in event order. */
  private readonly queues = new Map<string, { queue: SerialQueue; jobs: number }>();
  private readonly limiter = new Limiter(COMMAND_CONCURRENCY);
  /** Leases whose last add command succeeded (status: "routes installed"). */
  private readonly added = new Set<string>();
  private readonly wanted = new Set<string>();

  constructor(
    readonly lease: Lease,
    readonly mtu: number,
    private readonly cfg: ExtensionConfig,
    private readonly log: Logger,
  ) {}

  start(): void {}

  applyLeases(events: readonly LeaseEvent[]): void {
    this.synced = true;
    for (const ev of events) {
      const l = ev.lease;
      const key = leaseKey(l);
      if (ev.type === 'added') this.log.info({ subnet: key }, `Subnet added: ${l.subnet.toString()} via ${formatIpv4(l.attrs.publicIp)}`);
      else this.log.info({ subnet: key }, `Subnet removed: ${l.subnet.toString()}`);
      if (l.attrs.backendType !== 'extension') {
        this.log.warn({ subnet: key }, `Ignoring non-extension subnet: type=${l.attrs.backendType}`);
        continue;
      }
      if (ev.type === 'added') this.wanted.add(key);
      else this.wanted.delete(key);
      const cmd = ev.type === 'added' ? this.cfg.subnetAddCommand : this.cfg.subnetRemoveCommand;
      if (cmd === '') continue;
      const input = decodeBackendData(l.attrs.backendData);
      if (!input.ok) {
        this.log.error({ subnet: key }, `failed to unmarshal BackendData: ${input.reason}`);
        continue;
      }
      this.enqueue(key, ev.type, cmd, l, input.text);
    }
  }

  private enqueue(key: string, type: LeaseEvent['type'], cmd: string, l: Lease, stdin: string): void {
    let q = this.queues.get(key);
    if (!q) this.queues.set(key, (q = { queue: new SerialQueue(), jobs: 0 }));
    q.jobs++;
    const vars = {
      SUBNET: l.subnet.toString(),
      PUBLIC_IP: formatIpv4(l.attrs.publicIp),
      IPV6SUBNET: l.ipv6Subnet?.toString() ?? '::/0',
      PUBLIC_IPV6: l.attrs.publicIpv6 !== undefined ? formatIpv6(l.attrs.publicIpv6) : '<nil>',
    };
    const job = q.queue.run(() =>
      this.stopped
        ? Promise.resolve()
        : this.limiter.run(async () => {
            const r = await runCommandLine(cmd, vars, stdin, this.cfg.commandTimeoutSeconds * 1000);
            if (r.ok) {
              this.log.info({ subnet: key, command: cmd }, ranMessage(cmd, r.output));
              if (type === 'added') this.added.add(key);
            } else {
              this.log.error({ subnet: key, command: cmd, err: r.error }, failedMessage(cmd, r.error!, r.output));
            }
            if (type === 'removed') this.added.delete(key);
          }),
    );
    void job
      .finally(() => {
        if (--q.jobs === 0 && this.queues.get(key) === q) this.queues.delete(key);
      })
      .catch(() => undefined);
  }

  async status(): Promise<BackendNetworkStatus> {
    return { synced: this.synced, routesDesired: this.wanted.size, routesInstalled: [...this.wanted].filter((k) => this.added.has(k)).length, reconcilers: [] };
  }

  /** No new commands start; those running get to finish (each is bounded by its time limit). */
  async stop(): Promise<void> {
    this.stopped = true;
  }
}

/** The BackendData of a peer as upstream hands it to the commands: a JSON string, decoded; absent is "". */
function decodeBackendData(raw: string | undefined): { ok: true; text: string } | { ok: false; reason: string } {
  if (raw === undefined || raw === '') return { ok: true, text: '' };
  try {
    const v: unknown = JSON.parse(raw);
    if (typeof v === 'string') return { ok: true, text: v };
    if (v === null) return { ok: true, text: '' }; // Go leaves the string empty
    return { ok: false, reason: `json: cannot unmarshal ${Array.isArray(v) ? 'array' : v === null ? 'null' : typeof v} into Go value of type string` };
  } catch (e) {
    return { ok: false, reason: (e as Error).message };
  }
}
