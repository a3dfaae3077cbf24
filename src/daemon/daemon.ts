/**
 * flanneld: the startup order of docs/compatibility.md §0 (steps 5-16; kube
 * mode §11.1), then running until a signal or the loss of the own lease
 * (etcd mode only), then a clean stop. Each step is one method of
 * DaemonRun, named for what it does.
 *
 * Exit codes (docs/compatibility.md §0): 0 on SIGINT/SIGTERM and on lease loss (logged
 * loudly: `Restart=on-failure` units do not restart on 0, as upstream);
 * 1 on any startup failure, with a message that says what to do.
 *
 * Under systemd (Type=notify), until READY=1 the start timeout is extended
 * every 20 s and STATUS= says what flanneld is waiting for (etcd, the
 * network config, the lease), so a slow etcd does not get flanneld killed
 * and restarted in a loop.
 *
 * Stopping is bounded: STOPPING=1 to systemd, then every part is stopped
 * within STOP_BUDGET_MS in total, so SIGTERM ends the process within 3 s.
 * vxlan/host-gw kernel state, traffic rules and the blackhole route stay
 * (docs/compatibility.md §8.7); the udp TUN goes with the process (non-persistent).
 */
import * as fs from 'node:fs';
import type { FlannelConfig } from './config';
import type { BackendNetwork } from '../backends/backend';
import { lookupBackend } from '../backends/index';
import { createEtcdClient } from '../lease/etcd/client';
import { Etcd3Kv } from '../lease/etcd/etcd3-kv';
import { SubnetRegistry } from '../lease/etcd/registry';
import { leaseKey } from '../lease/lease';
import { PeerLeaseGuard } from '../lease/peer-lease-guard';
import { EtcdSubnetManager } from '../lease/etcd/subnet-manager';
import type { NetworkConfig } from '../lease/network-config';
import { readPreviousSubnets, writeSubnetEnv } from '../lease/subnet-file';
import type { HeldLease, LeaseLoss, SubnetManager } from '../lease/subnet-manager';
import type { Logger } from '../logging';
import { readNetworkView, selectExternalInterface, type ExternalInterface } from '../routing/ext-iface';
import { LocalAddresses, localAddressSet } from '../routing/local-addresses';
import { NetlinkEvents } from '../routing/netlink-events';
import { RtNetlink } from '../routing/rtnetlink';
import { isAborted } from '../util/backoff';
import { SystemCommandRunner } from '../util/command';
import { type FamilyNetworks, TrafficRules, TrafficSetupError } from '../traffic/traffic-manager';
import { HealthServer } from './health';
import { NodeMetrics } from './metrics';
import { NodeStatus, readinessProblems } from './node-status';
import { StartTimeoutExtender, SystemdNotifier, Watchdog, watchdogPeriodMs } from './sd-notify';
import { errorText } from '../util/errors';

/** The whole stop (every part together) finishes within this; SIGTERM must end the process within 3 s. */
export const STOP_BUDGET_MS = 2500;

/** How often the count of refused lease records is logged while there are any. */
export const REFUSED_SUMMARY_INTERVAL_MS = 10 * 60_000;

/** A startup step failed: log `message`, exit 1. */
class StartupError extends Error {}

type Cleanup = [what: string, stop: () => Promise<void> | void];

export async function runDaemon(cfg: FlannelConfig, log: Logger): Promise<number> {
  return new DaemonRun(cfg, log).execute();
}

/** One run of flanneld: the startup steps, the wait, the stop. */
class DaemonRun {
  private readonly ac = new AbortController();
  private readonly signal = this.ac.signal;
  private stopReason = '';
  /** Run in order at the stop: the parts started last stop first (unshift), the manager last (push). */
  private readonly cleanups: Cleanup[] = [];
  private readonly status = new NodeStatus();
  private readonly notifier: SystemdNotifier;
  private readonly starting: StartTimeoutExtender;
  private readonly aborted: Promise<void>;
  private readonly onSignal = (sig: NodeJS.Signals): void => {
    this.stopReason = `received ${sig}`;
    this.log.info({ signal: sig }, 'shutdownHandler sent cancel signal...');
    this.removeSignalHandlers();
    this.ac.abort();
  };

  constructor(
    private readonly cfg: FlannelConfig,
    private readonly log: Logger,
  ) {
    this.notifier = new SystemdNotifier(process.env['NOTIFY_SOCKET'], log);
    this.starting = new StartTimeoutExtender(this.notifier);
    this.aborted = new Promise<void>((resolve) => this.signal.addEventListener('abort', () => resolve(), { once: true }));
  }

  async execute(): Promise<number> {
    // docs/compatibility.md §0 step 6: SIGINT/SIGTERM cancel everything; the
    // handler goes away after the first signal, so a second one kills the
    // process (§8.7).
    process.on('SIGINT', this.onSignal);
    process.on('SIGTERM', this.onSignal);
    this.starting.start('starting');
    let exitCode = 0;
    try {
      const { manager, previous } = await this.createSubnetManager();
      await this.startHealthServer();
      const network = await this.fetchNetworkConfig(manager);
      const { extIface, local } = await this.selectExternalInterface(manager, network);
      const bn = await this.registerNetwork(manager, network, extIface, local);
      const held = this.holdLease(manager, bn);
      await this.startTrafficRules(network, bn, previous);
      this.writeSubnetFile(network, bn);
      this.followPeerLeases(manager, network, bn, local);
      await this.announceReady(manager, bn);
      await this.runUntilStopped(held);
    } catch (e) {
      exitCode = this.startupFailure(e);
    } finally {
      this.removeSignalHandlers();
      this.starting.stop();
      await this.stopEverything().then((failed) => {
        if (failed && exitCode === 0) exitCode = 1;
      });
    }
    if (exitCode === 0) this.log.info({ reason: this.stopReason || 'stopped' }, 'Exiting cleanly...');
    return exitCode;
  }

  private removeSignalHandlers(): void {
    process.off('SIGINT', this.onSignal);
    process.off('SIGTERM', this.onSignal);
  }

  /**
   * §0 step 5: the subnet manager: etcd (the previous subnet from subnet.env
   * as a hint) or kube (§11.1; subnet.env is then read only to recycle rules).
   */
  private async createSubnetManager(): Promise<{ manager: SubnetManager; previous: ReturnType<typeof readPreviousSubnets> }> {
    const { cfg, log } = this;
    this.starting.status(cfg.kubeSubnetMgr ? 'waiting for the Kubernetes API server' : 'connecting to etcd');
    let manager: SubnetManager;
    let previous: ReturnType<typeof readPreviousSubnets>;
    try {
      previous = readPreviousSubnets(cfg.subnetFile);
      for (const bad of previous.invalid) log.error({ key: bad.key, value: bad.value }, `invalid CIDR in ${cfg.subnetFile}: ${bad.key}=${bad.value}; skipped`);
      manager = cfg.kubeSubnetMgr
        ? // Loaded only in kube mode: @kubernetes/client-node adds ~0.6 s to every start.
          await (await import('../lease/kube/kube-subnet-manager')).KubeSubnetManager.create(cfg, process.env, log.child({ component: 'kube' }), this.signal)
        : new EtcdSubnetManager({
            registry: new SubnetRegistry(new Etcd3Kv(createEtcdClient(cfg.etcd, log), cfg.etcd.endpoints, log), cfg.etcd.prefix, log.child({ component: 'etcd' })),
            log: log.child({ component: 'etcd' }),
            previous: { subnet: previous.subnet, ipv6Subnet: previous.ipv6Subnet },
            renewMarginMs: cfg.subnetLeaseRenewMarginMinutes * 60_000,
          });
    } catch (e) {
      if (isAborted(e)) throw e;
      throw new StartupError(`Failed to create SubnetManager: ${errorText(e)}`);
    }
    this.cleanups.push(['subnet manager', () => manager.close()]);
    this.status.manager = manager;
    return { manager, previous };
  }

  /** §0 step 6: the health server, before any config is known. */
  private async startHealthServer(): Promise<void> {
    const { cfg, log, status } = this;
    if (cfg.healthzPort <= 0) return;
    let health: HealthServer;
    try {
      const metrics = new NodeMetrics(() => status.snapshot());
      metrics.extraReconcilers = () => (status.traffic ? [status.traffic.reconciler] : []);
      health = await HealthServer.start(
        cfg.healthzIp,
        cfg.healthzPort,
        {
          live: async () => status.live(),
          ready: async () => readinessProblems(await status.snapshot()),
          metrics: () => metrics.render(),
        },
        log,
      );
    } catch (e) {
      throw new StartupError(`failed to start the health server on ${cfg.healthzIp}:${cfg.healthzPort}: ${errorText(e)} (choose another -healthz-port or -healthz-ip)`);
    }
    this.cleanups.push(['health server', () => health.close()]);
  }

  /** §0 steps 7-8: the network config (retried every second until usable), the IP stack, br_netfilter. */
  private async fetchNetworkConfig(manager: SubnetManager): Promise<NetworkConfig> {
    this.starting.status(this.cfg.kubeSubnetMgr ? 'reading the network config' : `waiting for the network config in etcd (${this.cfg.etcd.prefix}/config)`);
    const network = await manager.getNetworkConfig(this.signal);
    if (!network.enableIPv4 && !network.enableIPv6) throw new StartupError('none defined stack');
    if (!this.cfg.kubeSubnetMgr && !network.enableIPv4) {
      // upstream's etcd manager then writes keys like 0.0.0.0-0&fd00::-64 for
      // every node, and the second node fails with "out of subnets".
      throw new StartupError(
        'an IPv6-only network (EnableIPv4 false) is not supported in etcd mode: every lease would get the IPv4 ' +
          'subnet 0.0.0.0/0 and the second node would find no free subnet. Use kube mode (-kube-subnet-mgr) for ' +
          'an IPv6-only cluster, or enable IPv4 too (dual stack: "Network" and "IPv6Network").',
      );
    }
    checkBrNetfilter(network);
    return network;
  }

  /**
   * §0 step 9: the external interface (kube mode: the node's node-public-ip
   * annotations replace -public-ip, §11.1), and this node's addresses, kept
   * current from here on.
   */
  private async selectExternalInterface(manager: SubnetManager, network: NetworkConfig): Promise<{ extIface: ExternalInterface; local: LocalAddresses }> {
    const { cfg, log } = this;
    const hints = (await manager.publicIpHints?.()) ?? { publicIp: undefined, publicIpv6: undefined };
    const nl = RtNetlink.open();
    try {
      const view = await readNetworkView(nl);
      const extIface = await selectExternalInterface(
        view,
        {
          iface: cfg.iface,
          ifaceRegex: cfg.ifaceRegex,
          ifaceCanReach: cfg.ifaceCanReach,
          publicIp: hints.publicIp ?? cfg.publicIp,
          publicIpv6: hints.publicIpv6 ?? cfg.publicIpv6,
          ipv4: network.enableIPv4,
          ipv6: network.enableIPv6,
        },
        log,
      );
      const addressEvents = new NetlinkEvents(log);
      const local = new LocalAddresses(localAddressSet(view.addresses, extIface.index), extIface.index, () => nl.listDetailedAddresses(), addressEvents, log.child({ component: 'addresses' }));
      this.cleanups.push([
        'address monitor',
        () => {
          local.close();
          addressEvents.close();
          nl.close();
        },
      ]);
      return { extIface, local };
    } catch (e) {
      nl.close();
      throw new StartupError(errorText(e));
    }
  }

  /** §0 steps 10-11: the backend, its preconditions, and the network it registers: lease, devices, datapath. */
  private async registerNetwork(manager: SubnetManager, network: NetworkConfig, extIface: ExternalInterface, local: LocalAddresses): Promise<BackendNetwork> {
    const backend = lookupBackend(network.backendType);
    if (!backend) throw new StartupError(`unknown backend type: ${network.backendType}`);
    try {
      backend.check?.(extIface);
    } catch (e) {
      throw new StartupError(`Error fetching backend: ${errorText(e)}`);
    }
    this.starting.status(`acquiring a subnet lease (${manager.store})`);
    let bn: BackendNetwork;
    try {
      bn = await backend.register({ network, extIface, localAddresses: local, subnets: manager, log: this.log, signal: this.signal });
    } catch (e) {
      if (isAborted(e)) throw e;
      throw new StartupError(`Error registering network: ${errorText(e)}`);
    }
    this.cleanups.unshift(['backend', () => bn.stop()]);
    this.status.backend = bn;
    this.status.backendType = backend.type;
    return bn;
  }

  /** The own lease kept (renewed and watched) from here on. */
  private holdLease(manager: SubnetManager, bn: BackendNetwork): HeldLease {
    const held = manager.holdLease(bn.lease);
    this.status.held = held;
    this.cleanups.unshift(['lease keeper', () => held.stop()]);
    return held;
  }

  /**
   * §0 step 12: the other traffic mode's state removed, masquerade and
   * forward rules, the blackhole routes; kept in place every -iptables-resync s.
   */
  private async startTrafficRules(network: NetworkConfig, bn: BackendNetwork, previous: ReturnType<typeof readPreviousSubnets>): Promise<void> {
    const { cfg, log } = this;
    const families: FamilyNetworks[] = [];
    if (network.enableIPv4 && network.network) {
      families.push({
        family: 'ipv4',
        network: network.network.canonical().toString(),
        subnet: bn.lease.subnet.canonical().toString(),
        previousNetwork: previous.network?.canonical().toString(),
        previousSubnet: previous.subnet?.canonical().toString(),
      });
    }
    if (network.enableIPv6 && network.ipv6Network && bn.lease.ipv6Subnet) {
      families.push({
        family: 'ipv6',
        network: network.ipv6Network.toString(),
        subnet: bn.lease.ipv6Subnet.toString(),
        previousNetwork: previous.ipv6Network?.toString(),
        previousSubnet: previous.ipv6Subnet?.toString(),
      });
    }
    const trafficNl = RtNetlink.open();
    let traffic: TrafficRules;
    try {
      traffic = await TrafficRules.start(
        {
          nftables: network.enableNFTables,
          ipMasq: cfg.ipMasq,
          fullyRandomDisable: cfg.ipMasqFullyRandomDisable,
          forwardRules: cfg.iptablesForwardRules,
          blackholeRoute: cfg.ipBlackholeRoute,
          resyncMs: cfg.iptablesResyncSeconds * 1000,
          families,
          blackholeSubnets: [
            ...(network.enableIPv4 ? [bn.lease.subnet.canonical()] : []),
            ...(network.enableIPv6 && bn.lease.ipv6Subnet ? [bn.lease.ipv6Subnet.canonical()] : []),
          ],
        },
        new SystemCommandRunner(),
        trafficNl,
        log,
      );
    } catch (e) {
      trafficNl.close();
      if (e instanceof TrafficSetupError) throw new StartupError(e.message);
      throw e;
    }
    this.status.traffic = traffic;
    this.cleanups.unshift([
      'traffic rules',
      async () => {
        await traffic.stop();
        trafficNl.close();
      },
    ]);
  }

  /** §0 step 13: subnet.env; ready once written. */
  private writeSubnetFile(network: NetworkConfig, bn: BackendNetwork): void {
    const { cfg, log } = this;
    try {
      writeSubnetEnv(cfg.subnetFile, {
        network: network.enableIPv4 ? network.network : undefined,
        subnet: network.enableIPv4 ? bn.lease.subnet : undefined,
        ipv6Network: network.enableIPv6 ? network.ipv6Network : undefined,
        ipv6Subnet: network.enableIPv6 ? bn.lease.ipv6Subnet : undefined,
        mtu: bn.mtu,
        ipMasq: cfg.ipMasq,
      });
      this.status.subnetEnvWritten = true;
      log.info({ file: cfg.subnetFile }, `wrote ${cfg.subnetFile}`);
    } catch (e) {
      log.warn({ file: cfg.subnetFile, err: errorText(e) }, `Failed to write subnet file: ${errorText(e)}`);
    }
  }

  /**
   * §0 step 14: the backend runs and follows the other nodes' leases. Every
   * record the store reports passes the guard's checks before a backend
   * routes it (src/lease/peer-lease-guard.ts).
   */
  private followPeerLeases(manager: SubnetManager, network: NetworkConfig, bn: BackendNetwork, local: LocalAddresses): void {
    const { log } = this;
    bn.start();
    const guard = new PeerLeaseGuard({ network, own: bn.lease, local: local.current() }, (events) => bn.applyLeases(events), log.child({ component: 'leases' }));
    local.on('change', (set) => guard.setLocalAddresses(set));
    this.status.guard = guard;
    const leasesWatch = manager.watchLeases(bn.lease, (batch) => guard.apply(batch));
    guard.onResyncNeeded = (reason) => leasesWatch.resync(reason);
    this.status.leasesWatch = leasesWatch;
    this.cleanups.unshift(['lease watch', () => leasesWatch.stop()]);
    const refusedReport = setInterval(() => {
      const summary = guard.refusedSummary();
      if (summary) log.warn({ refused: guard.stats.refused }, `lease records not routed: ${summary} (each was logged when it arrived)`);
    }, REFUSED_SUMMARY_INTERVAL_MS);
    refusedReport.unref();
    this.cleanups.unshift(['refused-record report', () => clearInterval(refusedReport)]);
  }

  /** §0 step 15: READY=1 to systemd, its watchdog fed while live; kube mode: NetworkUnavailable=False (§11.5). */
  private async announceReady(manager: SubnetManager, bn: BackendNetwork): Promise<void> {
    const { log, notifier } = this;
    this.starting.stop();
    notifier.notify('READY=1');
    notifier.notify(`STATUS=running: ${leaseKey(bn.lease)} (${this.status.backendType})`);
    const period = watchdogPeriodMs(process.env);
    if (period !== undefined && notifier.enabled) {
      const watchdog = new Watchdog(notifier, period, async () => this.status.live(), log);
      watchdog.start();
      this.cleanups.unshift(['watchdog', () => watchdog.stop()]);
      log.info({ periodMs: period }, `systemd watchdog: WATCHDOG=1 every ${period / 2000} s while healthy`);
    }
    log.info({ subnet: leaseKey(bn.lease), backend: this.status.backendType }, 'flanneld is running');
    await manager.completeLease?.();
  }

  /** §0 step 16: until a signal or the loss of the lease. */
  private async runUntilStopped(held: HeldLease): Promise<void> {
    const loss = await Promise.race([held.lost, this.aborted.then(() => undefined)]);
    if (!loss) return;
    this.status.leaseLost = true;
    this.stopReason = `lease lost: ${(loss as LeaseLoss).reason}`;
    this.log.error({ key: loss.key, reason: loss.reason }, `LEASE LOST (${loss.reason}): ${loss.key} no longer belongs to this node. Shutting down; exit status 0, as upstream.`);
  }

  /** The exit code for what ended the startup. */
  private startupFailure(e: unknown): number {
    if (isAborted(e) || this.signal.aborted) return 0; // a signal during startup: a clean exit, as upstream
    if (e instanceof StartupError) {
      this.log.error({}, e.message);
      return 1;
    }
    this.log.error({ err: e instanceof Error ? e.stack : String(e) }, `unexpected error: ${errorText(e)}`);
    return 1;
  }

  /** STOPPING=1, then every part stopped within STOP_BUDGET_MS; returns whether one failed. */
  private async stopEverything(): Promise<boolean> {
    this.status.stopping = true;
    this.notifier.notify('STOPPING=1');
    const deadline = Date.now() + STOP_BUDGET_MS;
    let failed = false;
    for (const [what, f] of this.cleanups) {
      const left = Math.max(100, deadline - Date.now());
      let timer: NodeJS.Timeout | undefined;
      try {
        const timedOut = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), left)));
        if ((await Promise.race([Promise.resolve().then(f), timedOut])) === 'timeout') {
          this.log.warn({ component: what, waitedMs: left }, `the ${what} did not stop within ${left} ms; not waiting for it`);
        }
      } catch (e) {
        this.log.warn({ component: what, err: errorText(e) }, `error while stopping the ${what}`);
        failed = true;
      } finally {
        clearTimeout(timer);
      }
    }
    return failed;
  }
}

/** docs/compatibility.md §0 step 8: iptables mode needs br_netfilter's sysctls. */
function checkBrNetfilter(network: NetworkConfig): void {
  if (network.enableNFTables) return;
  const files = [
    ...(network.enableIPv4 ? ['/proc/sys/net/bridge/bridge-nf-call-iptables'] : []),
    ...(network.enableIPv6 ? ['/proc/sys/net/bridge/bridge-nf-call-ip6tables'] : []),
  ];
  for (const f of files) {
    if (!fs.existsSync(f)) {
      throw new StartupError(`Failed to check br_netfilter: stat ${f}: no such file or directory (load the br_netfilter module: modprobe br_netfilter)`);
    }
  }
}
