/**
 * docs/compatibility.md §0 steps 15-18: the other traffic mode's state removed, then the
 * masquerade rules (docs/compatibility.md §8.2 / docs/compatibility.md §8.3), the forward rules (docs/compatibility.md §8.1 / docs/compatibility.md §8.3) and the
 * blackhole route (docs/compatibility.md §8.6), all kept in place by one reconciler every
 * `-iptables-resync` seconds: a rule deleted by hand is back within one
 * period, and each repair is counted and logged.
 *
 * Startup failures that upstream treats as fatal (the old-rule teardown,
 * a missing tool, nftables errors) throw TrafficSetupError; a failed
 * iptables bootstrap is logged and retried by the resync, as upstream.
 */
import type { Logger } from '../logging';
import { PartialRepairError, Reconciler, type Repair } from '../routing/reconciler';
import { isNetlinkError, RT_TABLE_MAIN, RTPROT_FLANNEL_TS, type RtNetlink } from '../routing/rtnetlink';
import type { Ipv4Net } from '../util/ipv4';
import { Ipv6Net } from '../util/ipv6';
import { CommandError, type CommandRunner } from '../util/command';
import { describeRules, Iptables } from './iptables';
import { Nftables } from './nftables';
import { FORWARD_CHAIN, type Family, forwardRules, type IptRule, MASQ_CHAIN, masqRules, type NftChain, nftForwardChain, nftMasqChain } from './rules';
import { NamedError, errorText } from '../util/errors';

/** A step of the traffic setup failed in a way that stops startup (exit 1). */
export class TrafficSetupError extends NamedError {}

/** One address family's networks, as CIDR text in network form. */
export interface FamilyNetworks {
  family: Family;
  network: string;
  subnet: string;
  /** FLANNEL_NETWORK / FLANNEL_SUBNET (or the v6 ones) of the previous subnet.env. */
  previousNetwork: string | undefined;
  previousSubnet: string | undefined;
}

export interface TrafficOptions {
  nftables: boolean;
  ipMasq: boolean;
  fullyRandomDisable: boolean;
  forwardRules: boolean;
  blackholeRoute: boolean;
  resyncMs: number;
  families: FamilyNetworks[];
  /** The own subnets (IPv4, and IPv6 with EnableIPv6, as upstream's main.go adds both), for the blackhole routes. */
  blackholeSubnets: ReadonlyArray<Ipv4Net | Ipv6Net>;
}

/** Something the resync keeps in place. */
interface Guarded {
  kind: 'iptables' | 'nftables' | 'blackhole';
  what: string;
  /** Restores it when needed; returns what was done (empty when all was in place). */
  ensure(): Promise<string[]>;
}

/** The blackhole route's metric: the largest, so any real route for the subnet wins (see ensureBlackhole). */
export const BLACKHOLE_METRIC = 0xffffffff;


export class TrafficRules {
  readonly reconciler: Reconciler;
  private readonly guarded: Guarded[] = [];
  /** The last check found everything in place (or repaired it). */
  private ok = false;

  private constructor(
    private readonly opts: TrafficOptions,
    private readonly runner: CommandRunner,
    private readonly nl: RtNetlink,
    private readonly log: Logger,
  ) {
    this.reconciler = new Reconciler({ name: 'traffic rules', intervalMs: opts.resyncMs }, () => this.repair(), undefined, log);
  }

  /** Whether the rules (and blackhole route) were last seen in place. */
  get inPlace(): boolean {
    return this.ok;
  }

  /** Runs steps 15-18 and starts the resync. */
  static async start(opts: TrafficOptions, runner: CommandRunner, nl: RtNetlink, log: Logger): Promise<TrafficRules> {
    const t = new TrafficRules(opts, runner, nl, log.child({ component: 'traffic' }));
    await t.setup();
    t.reconciler.start();
    return t;
  }

  async stop(): Promise<void> {
    // Rules and the blackhole route stay after shutdown (docs/compatibility.md §8.2, §8.7).
    await this.reconciler.stop();
  }

  private async setup(): Promise<void> {
    const { opts, log } = this;
    const wantRules = opts.ipMasq || opts.forwardRules;
    // docs/compatibility.md §0 step 12: the other mode's state goes first.
    if (opts.nftables) {
      for (const family of ['ipv4', 'ipv6'] as const) {
        try {
          const removed = await new Iptables(this.runner, family).removeAll();
          if (removed.length > 0) log.info({ family, removed }, `removed ${removed.length} iptables rule(s) and chain(s) of flannel: nftables mode is on`);
        } catch (e) {
          if (e instanceof CommandError && e.code === 'ENOENT') {
            // Upstream exits 1 here; an nftables-only host has no iptables rules of ours to remove.
            log.info({ family }, `no iptables rules to remove: ${e.message}`);
            continue;
          }
          throw new TrafficSetupError(`failed to clean up iptables rules: ${errorText(e)}`, { cause: e });
        }
      }
    } else {
      const nft = new Nftables(this.runner);
      if (await nft.usable()) {
        try {
          const removed = await nft.deleteTables();
          if (removed.length > 0) log.info({ removed }, `removed the flannel nftables tables (${removed.join(', ')}): iptables mode is on`);
        } catch (e) {
          throw new TrafficSetupError(`failed to clean up nftables tables: ${errorText(e)}`, { cause: e });
        }
      }
    }

    if (opts.nftables) await this.setupNftables();
    else if (wantRules) await this.setupIptables();

    // The blackhole routes (docs/compatibility.md §8.6).
    if (opts.blackholeRoute) {
      for (const subnet of opts.blackholeSubnets) {
        this.guarded.push({ kind: 'blackhole', what: `blackhole ${subnet.toString()}`, ensure: () => this.ensureBlackhole(subnet) });
      }
    }

    // First pass now: installs what the steps above did not (the blackhole
    // route) and records whether everything is in place.
    const { done, failures } = await this.pass();
    for (const d of done) log.info({ kind: d.kind }, d.description);
    for (const f of failures) log.error({}, `traffic rules not in place yet (retried every ${opts.resyncMs / 1000} s): ${f}`);
  }

  private async setupIptables(): Promise<void> {
    const { opts, log } = this;
    for (const f of opts.families) {
      const ipt = new Iptables(this.runner, f.family);
      try {
        await ipt.probe();
      } catch (e) {
        throw new TrafficSetupError(`cannot use ${f.family === 'ipv4' ? 'iptables' : 'ip6tables'}: ${errorText(e)}`, { cause: e });
      }
      if (opts.ipMasq) {
        // Rules built from the previous subnet.env's values go first (docs/compatibility.md §8.2).
        if (f.previousNetwork && f.previousSubnet && (f.previousNetwork !== f.network || f.previousSubnet !== f.subnet)) {
          const old = masqRules({ family: f.family, cluster: f.previousNetwork, pod: f.previousSubnet, fullyRandom: ipt.hasRandomFully && !opts.fullyRandomDisable });
          const plain = masqRules({ family: f.family, cluster: f.previousNetwork, pod: f.previousSubnet, fullyRandom: false });
          try {
            // Either MASQUERADE form may be there (another version or -ip-masq-fully-random-disable).
            const gone = [...(await ipt.teardown(old)), ...(await ipt.teardown(plain))];
            if (gone.length > 0) log.info({ family: f.family, removed: describeRules(gone) }, `removed ${gone.length} masquerade rule(s) of the previous network ${f.previousNetwork} / subnet ${f.previousSubnet}`);
          } catch (e) {
            throw new TrafficSetupError(`failed to delete the old masquerade rules: ${errorText(e)}`, { cause: e });
          }
        }
        const rules = masqRules({ family: f.family, cluster: f.network, pod: f.subnet, fullyRandom: ipt.hasRandomFully && !opts.fullyRandomDisable });
        await this.bootstrapIptables(ipt, 'nat', MASQ_CHAIN, rules, 'masquerade');
      }
      if (opts.forwardRules) {
        // The forward rules (docs/compatibility.md §8.1). (Upstream logs "Changing default FORWARD chain policy to ACCEPT" but changes nothing.)
        await this.bootstrapIptables(ipt, 'filter', FORWARD_CHAIN, forwardRules(f.network), 'forward');
      }
    }
  }

  /** Create-or-flush the chain, append the rule set, keep it in the resync. */
  private async bootstrapIptables(ipt: Iptables, table: string, chain: string, rules: IptRule[], what: string): Promise<void> {
    const label = `${ipt.family} ${what} rules`;
    try {
      await ipt.clearChain(table, chain);
      await ipt.ensure(rules);
      this.log.info({ family: ipt.family, rules: describeRules(rules) }, `installed the ${label} (${rules.length})`);
    } catch (e) {
      // Logged only, as upstream; the resync retries.
      this.log.error({ family: ipt.family, err: errorText(e) }, `failed to bootstrap the ${label}: ${errorText(e)}`);
    }
    this.guarded.push({
      kind: 'iptables',
      what: label,
      ensure: async () => {
        const missing = await ipt.ensure(rules);
        return missing.length === 0 ? [] : [`re-appended the ${label} (missing: ${describeRules(missing).join('; ')})`];
      },
    });
  }

  private async setupNftables(): Promise<void> {
    const { opts, log } = this;
    const nft = new Nftables(this.runner);
    try {
      // Both tables always exist in nftables mode (docs/compatibility.md §8.3).
      for (const family of ['ipv4', 'ipv6'] as const) await nft.initTable(family);
      for (const f of opts.families) {
        if (opts.ipMasq) {
          const fullyRandom = !opts.fullyRandomDisable && (await nft.fullyRandomSupported(f.family));
          this.nftChain(nft, f.family, nftMasqChain({ family: f.family, cluster: f.network, pod: f.subnet, fullyRandom }));
        }
        if (opts.forwardRules) this.nftChain(nft, f.family, nftForwardChain(f.family, f.network));
      }
      for (const g of this.guarded) await g.ensure();
    } catch (e) {
      throw new TrafficSetupError(`failed to set up the nftables rules: ${errorText(e)}`, { cause: e });
    }
    log.info({ chains: this.guarded.map((g) => g.what) }, 'installed the nftables rules');
  }

  private nftChain(nft: Nftables, family: Family, chain: NftChain): void {
    const label = `nftables ${family} chain ${chain.name}`;
    this.guarded.push({
      kind: 'nftables',
      what: label,
      ensure: async () => ((await nft.ensureChain(family, chain)) ? [`rewrote the ${label} (its rules differed)`] : []),
    });
  }

  /**
   * docs/compatibility.md §8.6: add the blackhole route unless one for the subnet exists.
   * Deviation: it gets the largest metric (BLACKHOLE_METRIC), not 0. At
   * metric 0 a blackhole added before the pod bridge's address shadows the
   * bridge's own prefix route (the kernel appends that route after ours),
   * and every packet for the node's pods is dropped; at the largest metric
   * it only takes over when the bridge's route is gone, which is its
   * purpose. Nothing a peer sees depends on it.
   */
  private async ensureBlackhole(subnet: Ipv4Net | Ipv6Net): Promise<string[]> {
    const routes: ReadonlyArray<{ type: string; dst: Ipv4Net | Ipv6Net }> =
      subnet instanceof Ipv6Net ? await this.nl.listRoutes6(RT_TABLE_MAIN) : await this.nl.listRoutes(RT_TABLE_MAIN);
    if (routes.some((r) => r.type === 'blackhole' && r.dst.toString() === subnet.toString())) return [];
    try {
      await this.nl.addRoute({ dst: subnet, type: 'blackhole', protocol: RTPROT_FLANNEL_TS, scope: 'universe', priority: BLACKHOLE_METRIC });
    } catch (e) {
      if (isNetlinkError(e, 'EEXIST')) {
        throw new Error(`cannot add blackhole route ${subnet.toString()}: another route with the same destination and metric exists`);
      }
      throw e;
    }
    return [`added blackhole route ${subnet.toString()}`];
  }

  /** Ensures every guarded thing; one failing never stops the others. */
  private async pass(): Promise<{ done: Repair[]; failures: string[] }> {
    const done: Repair[] = [];
    const failures: string[] = [];
    for (const g of this.guarded) {
      try {
        for (const description of await g.ensure()) done.push({ kind: g.kind, description });
      } catch (e) {
        failures.push(`${g.what}: ${errorText(e)}`);
      }
    }
    this.ok = failures.length === 0;
    return { done, failures };
  }

  private async repair(): Promise<Repair[]> {
    const { done, failures } = await this.pass();
    if (failures.length > 0) throw new PartialRepairError(failures.join('; '), done);
    return done;
  }
}
