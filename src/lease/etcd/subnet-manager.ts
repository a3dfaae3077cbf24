/**
 * The etcd v3 subnet manager (upstream's pkg/subnet/etcd/local_manager.go):
 * fetch the network config, acquire the own lease, keep it, and watch
 * everyone else's. The store is a SubnetRegistry (./registry.ts) over a
 * key-value store: etcd in production, an in-memory store in tests.
 *
 * Every etcd call has a deadline; when etcd is down nothing crashes: the
 * loops wait with backoff (jittered) and say what they are waiting for, the
 * known leases stay in force, and the watches resume.
 */
import type { Logger } from '../../logging';
import { AbortedError, sleep, throwIfAborted } from '../../util/backoff';
import { formatIpv4, type Ipv4Net } from '../../util/ipv4';
import { formatIpv6, type Ipv6Net } from '../../util/ipv6';
import { RepeatLog } from '../../util/repeat-log';
import { fitsConfig, mathRandomInt, OutOfSubnetsError, pickFreeSubnet, type RandomInt } from '../allocator';
import { describeLease, type Lease, type LeaseAttrs, type RecordBatch } from '../lease';
import { peerIdentities } from '../peer-identity';
import { checkNetworkConfig, configExample, type NetworkConfig, NetworkConfigError, parseNetworkConfig } from '../network-config';
import type { HeldLease, LeasesWatch, SubnetManager } from '../subnet-manager';
import { etcdRetryBackoff } from './backoff-policy';
import { ConfigNotFoundError, LeaseManagerError, LeaseTakenError } from './errors';
import { OwnLeaseKeeper } from './own-lease-keeper';
import { EtcdPeerLeasesWatch } from './peer-leases-watch';
import { type StoredLease, SUBNET_TTL_SECONDS, type SubnetRegistry } from './registry';

export interface EtcdSubnetManagerOptions {
  registry: SubnetRegistry;
  log: Logger;
  /** The previous FLANNEL_SUBNET / FLANNEL_IPV6_SUBNET from subnet.env (upstream's main.go, ReadCIDRFromSubnetFile). */
  previous?: { subnet: Ipv4Net | undefined; ipv6Subnet: Ipv6Net | undefined };
  /** -subnet-lease-renew-margin in ms (default 60 min). */
  renewMarginMs?: number;
  /** Test knobs: the etcd lease TTL (default 86400 s) and waits. */
  leaseTtlSeconds?: number;
  renewRetryMs?: number;
  configRetryMs?: number;
  resyncIntervalMs?: number;
  watchProgressMs?: number;
  wipeGraceMs?: number;
  random?: RandomInt;
}

/** Upstream's bound on lost creation races (local_manager.go, tryAcquireLease's retry loop). */
const MAX_ACQUIRE_RACES = 10;

/** Whether two leases share a subnet of either family (each family compared on its own). */
function sharesSubnet(a: Pick<Lease, 'subnet' | 'ipv6Subnet'>, b: Pick<Lease, 'subnet' | 'ipv6Subnet'>): boolean {
  if (a.subnet.overlaps(b.subnet)) return true;
  return a.ipv6Subnet !== undefined && b.ipv6Subnet !== undefined && a.ipv6Subnet.overlaps(b.ipv6Subnet);
}

/** An older lease that shares a subnet with `mine`: every node routes that one, and `mine` would be cut off. */
function olderClash(mine: StoredLease, leases: readonly StoredLease[]): StoredLease | undefined {
  return leases.find((l) => l.key !== mine.key && l.createRevision < mine.createRevision && sharesSubnet(l.lease, mine.lease));
}

function describeSubnets(l: Pick<Lease, 'subnet' | 'ipv6Subnet'>): string {
  return l.ipv6Subnet ? `${l.subnet.toString()} and ${l.ipv6Subnet.toString()}` : l.subnet.toString();
}

export class EtcdSubnetManager implements SubnetManager {
  readonly store = 'etcd';
  readonly registry: SubnetRegistry;
  private readonly log: Logger;
  private readonly ttl: number;
  private readonly random: RandomInt;
  private readonly held = new Set<HeldLease>();
  /** The stored form of each lease this manager acquired, by key (renewal compares its value). */
  private readonly acquired = new Map<string, StoredLease>();
  private readonly watches = new Set<LeasesWatch>();

  constructor(private readonly opts: EtcdSubnetManagerOptions) {
    this.log = opts.log;
    this.registry = opts.registry;
    this.ttl = opts.leaseTtlSeconds ?? SUBNET_TTL_SECONDS;
    this.random = opts.random ?? mathRandomInt;
  }

  /** One attempt: read, parse and validate `<prefix>/config`. */
  async fetchNetworkConfig(): Promise<NetworkConfig> {
    const text = await this.registry.getConfig();
    const key = this.registry.configKey;
    if (text === undefined) throw new ConfigNotFoundError(key, configExample(key));
    try {
      return checkNetworkConfig(parseNetworkConfig(text));
    } catch (e) {
      if (e instanceof NetworkConfigError) {
        throw new NetworkConfigError(`${e.message} (in ${key}; fix it with e.g. ${configExample(key)})`);
      }
      throw e;
    }
  }

  /** Retries every second until the config is usable (upstream's main.go, getConfig); only `signal` ends it early. */
  async getNetworkConfig(signal: AbortSignal): Promise<NetworkConfig> {
    const repeat = new RepeatLog(this.log);
    for (;;) {
      throwIfAborted(signal);
      try {
        return await this.fetchNetworkConfig();
      } catch (e) {
        if (!(e instanceof LeaseManagerError || e instanceof NetworkConfigError)) throw e;
        repeat.warn({ key: this.registry.configKey, err: e.message }, `Couldn't fetch network config: ${e.message}`);
      }
      await sleep(this.opts.configRetryMs ?? 1000, signal);
    }
  }

  /**
   * Acquires the own lease (upstream's AcquireLease): reuse a lease with our
   * PublicIP; else the previous subnet from subnet.env; else a random free
   * subnet. A lost creation race is retried (upstream's retry compares the
   * wrong error and exits 1); etcd being unreachable is waited out with
   * backoff (upstream exits 1).
   */
  async acquireLease(attrs: LeaseAttrs, signal: AbortSignal): Promise<Lease> {
    const backoff = etcdRetryBackoff();
    const repeat = new RepeatLog(this.log);
    let races = 0;
    for (;;) {
      throwIfAborted(signal);
      try {
        const stored = await this.tryAcquire(attrs, signal);
        this.acquired.set(stored.key, stored);
        return stored.lease;
      } catch (e) {
        if (e instanceof AbortedError || e instanceof OutOfSubnetsError) throw e;
        if (e instanceof LeaseTakenError) {
          if (++races >= MAX_ACQUIRE_RACES) throw new Error('max retries reached trying to acquire a subnet', { cause: e });
          this.log.info({ key: e.key }, `lost a race for ${e.key}; trying again`);
          continue;
        }
        if (!(e instanceof LeaseManagerError) || !e.recoverable) throw e;
        repeat.warn({ err: e.message }, `cannot acquire a lease yet: ${e.message}`);
        await sleep(backoff.next(), signal);
      }
    }
  }

  private async tryAcquire(attrs: LeaseAttrs, signal: AbortSignal): Promise<StoredLease> {
    const cfg = await this.getNetworkConfig(signal);
    const { leases, skipped } = await this.registry.listLeases();
    for (const s of skipped) this.log.warn({ key: s.key, reason: s.reason }, `Ignoring bad subnet node: ${s.key}: ${s.reason}`);

    // 1. Reuse the first lease (key order) with our PublicIP; 1b. else the
    // previous lease named in subnet.env when it carries this node's backend
    // identity (its PublicIP changed while its vxlan device, and so its
    // VtepMAC, stayed): taking it over leaves no older twin with our identity
    // behind (src/lease/peer-lease-guard.ts would route the twin, not us).
    const mine = leases.find((l) => l.lease.attrs.publicIp === attrs.publicIp) ?? this.previousWithOurIdentity(cfg.backendType, attrs, leases);
    if (mine) {
      const clash = fitsConfig(cfg, mine.lease) ? olderClash(mine, leases) : undefined;
      if (fitsConfig(cfg, mine.lease) && !clash) {
        const v6 = mine.lease.ipv6Subnet ? mine.lease.ipv6Subnet.toString() : '';
        if (mine.lease.attrs.publicIp === attrs.publicIp) {
          this.log.info({ key: mine.key }, `Found lease (ip: ${mine.lease.subnet.toString()} ipv6: ${v6}) for current IP (${formatIpv4(attrs.publicIp)}), reusing`);
        } else {
          this.log.info(
            { key: mine.key },
            `taking over the previous lease ${mine.key} (named in the subnet file): it carries this node's backend identity; its PublicIP ${formatIpv4(mine.lease.attrs.publicIp)} becomes ${formatIpv4(attrs.publicIp)}`,
          );
        }
        return this.registry.rewriteLease(mine, attrs, this.ttl);
      }
      const why = clash ? `shares a subnet with the older lease ${clash.key}` : 'does not fit the config any more';
      this.log.info({ key: mine.key }, `the lease ${describeLease(mine.lease)} with our PublicIP ${why}; deleting it and allocating another`);
      if (!(await this.registry.deleteLease(mine))) throw new LeaseTakenError(mine.key);
    }

    // 2. The previous subnet from subnet.env, if it fits and no lease holds
    // either of its families' subnets.
    const prev = this.opts.previous;
    if (prev?.subnet) {
      const wanted = { subnet: prev.subnet, ipv6Subnet: cfg.enableIPv6 ? prev.ipv6Subnet : undefined };
      const holder = leases.find((l) => l !== mine && sharesSubnet(l.lease, wanted));
      if (!fitsConfig(cfg, wanted)) {
        this.log.error({ subnet: prev.subnet.toString() }, `the previous subnet ${prev.subnet.toString()} from the subnet file does not fit the network config; ignoring it`);
      } else if (holder) {
        this.log.info({ subnet: prev.subnet.toString(), holder: holder.key }, `the previous subnet ${describeSubnets(wanted)} from the subnet file is held (in part) by ${holder.key}; allocating another`);
      } else if (cfg.enableIPv6 && !wanted.ipv6Subnet) {
        this.log.info({ subnet: prev.subnet.toString() }, `the subnet file names no IPv6 subnet beside ${prev.subnet.toString()}; allocating both afresh`);
      } else {
        this.log.info({ subnet: prev.subnet.toString() }, `reusing the previous subnet ${describeSubnets(wanted)} from the subnet file`);
        return this.create(wanted.subnet, wanted.ipv6Subnet, attrs);
      }
    }

    // 3. A random free subnet.
    const range = `${formatIpv4(cfg.subnetMin)} ... ${formatIpv4(cfg.subnetMax)}`;
    this.log.info({}, `Picking subnet in range ${range}${cfg.enableIPv6 ? ` and ${formatIpv6(cfg.ipv6SubnetMin)} ... ${formatIpv6(cfg.ipv6SubnetMax)}` : ''}`);
    let pick;
    try {
      pick = pickFreeSubnet(cfg, leases.map((l) => l.lease), this.random);
    } catch (e) {
      if (e instanceof OutOfSubnetsError) this.log.error({ family: e.family }, `out of subnets: every ${e.family} subnet in ${range} is taken`);
      throw e;
    }
    return this.create(pick.subnet, pick.ipv6Subnet, attrs);
  }

  /** The lease named by subnet.env, when it carries one of `attrs`' backend identities. */
  private previousWithOurIdentity(backendType: string, attrs: LeaseAttrs, leases: readonly StoredLease[]): StoredLease | undefined {
    const prev = this.opts.previous;
    if (!prev?.subnet) return undefined;
    const ours = peerIdentities(backendType, attrs);
    if (!ours.ok || ours.identities.length === 0) return undefined;
    const named = leases.find((l) => l.lease.subnet.canonical().equals(prev.subnet!.canonical()));
    if (!named) return undefined;
    const theirs = peerIdentities(backendType, named.lease.attrs);
    if (!theirs.ok) return undefined;
    const same = theirs.identities.some((t) => ours.identities.some((o) => o.name === t.name && o.family === t.family && o.value === t.value));
    return same ? named : undefined;
  }

  private async create(subnet: Ipv4Net, ipv6Subnet: Ipv6Net | undefined, attrs: LeaseAttrs): Promise<StoredLease> {
    const stored = await this.registry.createLease(subnet, ipv6Subnet, attrs, this.ttl);
    this.log.info(
      { key: stored.key },
      `Allocated lease (ip: ${subnet.toString()} ipv6: ${ipv6Subnet ? ipv6Subnet.toString() : ''}) to current node (${formatIpv4(attrs.publicIp)})`,
    );
    return stored;
  }

  holdLease(lease: Lease): HeldLease {
    const key = this.registry.keyOf(lease.subnet, lease.ipv6Subnet);
    const stored = this.acquired.get(key);
    if (!stored) throw new Error(`holdLease: ${key} was not acquired by this manager`);
    const keeper = new OwnLeaseKeeper(
      this.registry,
      stored,
      {
        ttlSeconds: this.ttl,
        renewMarginMs: this.opts.renewMarginMs ?? 60 * 60_000,
        renewRetryMs: this.opts.renewRetryMs ?? 60_000,
        ...(this.opts.watchProgressMs ? { watchProgressMs: this.opts.watchProgressMs } : {}),
      },
      this.log.child({ component: 'lease' }),
    );
    keeper.start();
    this.held.add(keeper);
    return keeper;
  }

  watchLeases(own: Lease, onBatch: (batch: RecordBatch) => void): LeasesWatch {
    const w = new EtcdPeerLeasesWatch(
      this.registry,
      this.registry.keyOf(own.subnet, own.ipv6Subnet),
      onBatch,
      {
        resyncIntervalMs: this.opts.resyncIntervalMs ?? 10 * 60_000,
        ...(this.opts.watchProgressMs ? { watchProgressMs: this.opts.watchProgressMs } : {}),
        ...(this.opts.wipeGraceMs !== undefined ? { wipeGraceMs: this.opts.wipeGraceMs } : {}),
      },
      this.log.child({ component: 'leases' }),
    );
    w.start();
    this.watches.add(w);
    return w;
  }

  requestErrors(): number {
    return this.registry.kv.requestErrors;
  }

  async close(): Promise<void> {
    await Promise.all([...this.held].map((h) => h.stop()));
    await Promise.all([...this.watches].map((w) => w.stop()));
    this.registry.close();
  }
}
