/**
 * flanneld: the startup order of docs/compatibility.md §0 (steps 6-22; kube mode docs/compatibility.md §11.1),
 * then running until a signal or the loss of the own lease (etcd mode
 * only), then a clean stop.
 *
 * Exit codes (docs/compatibility.md §0): 0 on SIGINT/SIGTERM and on lease loss (logged
 * loudly: `Restart=on-failure` units do not restart on 0, as upstream);
 * 1 on any startup failure, with a message that says what to do.
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
import type { Logger } from '../log';
import { readNetworkView, selectExternalInterface, type ExternalInterface } from '../routing/ext-iface';
import { LocalAddresses, localAddressSet } from '../routing/local-addresses';
import { NetlinkEvents } from '../routing/netlink-events';
import { RtNetlink } from '../routing/rtnetlink';
import { isAborted } from '../util/backoff';
import { SystemCommandRunner } from '../traffic/command';
import { type FamilyNetworks, TrafficRules, TrafficSetupError } from '../traffic/traffic-manager';
import { HealthServer } from './health';
import { NodeMetrics } from './metrics';
import { NodeStatus, readinessProblems } from './node-status';
import { SystemdNotifier, Watchdog, watchdogPeriodMs } from './sd-notify';
import { errorText } from '../util/errors';

/** How often the count of refused lease records is logged while there are any. */
export const REFUSED_SUMMARY_INTERVAL_MS = 10 * 60_000;

/** The whole stop (every part together) finishes within this; SIGTERM must end the process within 3 s. */
export const STOP_BUDGET_MS = 2500;

/** A startup step failed: log `message`, exit 1. */
class StartupError extends Error {}


/** docs/compatibility.md §0 step 11: iptables mode needs br_netfilter's sysctls. */
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

export async function runDaemon(cfg: FlannelConfig, log: Logger): Promise<number> {
  const ac = new AbortController();
  const signal = ac.signal;
  let stopReason = '';
  const cleanups: Array<[string, () => Promise<void> | void]> = [];
  const status = new NodeStatus();
  let health: HealthServer | undefined;
  const notifier = new SystemdNotifier(process.env['NOTIFY_SOCKET'], log);

  // Step 7: SIGINT/SIGTERM cancel everything; the handler goes away after the
  // first signal, so a second one kills the process (docs/compatibility.md §8.7).
  const onSignal = (sig: NodeJS.Signals): void => {
    stopReason = `received ${sig}`;
    log.info({ signal: sig }, 'shutdownHandler sent cancel signal...');
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    ac.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const aborted = new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));

  let exitCode = 0;
  try {
    // Step 6: the subnet manager: etcd (the previous subnet as a hint) or
    // kube (docs/compatibility.md §11.1; subnet.env is then read only to recycle rules).
    let manager: SubnetManager;
    let previous: ReturnType<typeof readPreviousSubnets>;
    try {
      previous = readPreviousSubnets(cfg.subnetFile);
      for (const bad of previous.invalid) log.error({ key: bad.key, value: bad.value }, `invalid CIDR in ${cfg.subnetFile}: ${bad.key}=${bad.value}; skipped`);
      manager = cfg.kubeSubnetMgr
        ? // Loaded only in kube mode: @kubernetes/client-node adds ~0.6 s to every start.
          await (await import('../lease/kube/kube-subnet-manager')).KubeSubnetManager.create(cfg, process.env, log.child({ component: 'kube' }), signal)
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
    cleanups.push(['subnet manager', () => manager.close()]);
    status.manager = manager;

    // Step 8: the health server, before any config is known.
    if (cfg.healthzPort > 0) {
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
      cleanups.push(['health server', () => health!.close()]);
    }

    // Step 9: the network config (retried every second until usable).
    const network = await manager.getNetworkConfig(signal);

    // Step 10: the IP stack.
    if (!network.enableIPv4 && !network.enableIPv6) throw new StartupError('none defined stack');
    if (!cfg.kubeSubnetMgr && !network.enableIPv4) {
      // upstream's etcd manager then writes keys like 0.0.0.0-0&fd00::-64 for
      // every node, and the second node fails with "out of subnets".
      throw new StartupError(
        'an IPv6-only network (EnableIPv4 false) is not supported in etcd mode: every lease would get the IPv4 ' +
          'subnet 0.0.0.0/0 and the second node would find no free subnet. Use kube mode (-kube-subnet-mgr) for ' +
          'an IPv6-only cluster, or enable IPv4 too (dual stack: "Network" and "IPv6Network").',
      );
    }

    // Step 11.
    checkBrNetfilter(network);

    // Step 12: the external interface (kube mode: the node's node-public-ip
    // annotations replace -public-ip, docs/compatibility.md §11.1 step 7).
    const hints = (await manager.publicIpHints?.()) ?? { publicIp: undefined, publicIpv6: undefined };
    let extIface: ExternalInterface;
    let local: LocalAddresses;
    const nl = RtNetlink.open();
    try {
      const view = await readNetworkView(nl);
      extIface = await selectExternalInterface(
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
      // This node's addresses, kept current from address notifications.
      const addressEvents = new NetlinkEvents(log);
      const extIndex = extIface.index;
      local = new LocalAddresses(localAddressSet(view.addresses, extIndex), extIndex, () => nl.listDetailedAddresses(), addressEvents, log.child({ component: 'addresses' }));
      cleanups.push([
        'address monitor',
        () => {
          local.close();
          addressEvents.close();
          nl.close();
        },
      ]);
    } catch (e) {
      nl.close();
      throw new StartupError(errorText(e));
    }

    // Step 13: the backend.
    const backend = lookupBackend(network.backendType);
    if (!backend) throw new StartupError(`unknown backend type: ${network.backendType}`);
    try {
      backend.check?.(extIface);
    } catch (e) {
      throw new StartupError(`Error fetching backend: ${errorText(e)}`);
    }

    // Step 14: register the network: lease, devices, datapath.
    let bn: BackendNetwork;
    try {
      bn = await backend.register({ network, extIface, localAddresses: local, subnets: manager, log, signal });
    } catch (e) {
      if (isAborted(e)) throw e;
      throw new StartupError(`Error registering network: ${errorText(e)}`);
    }
    cleanups.unshift(['backend', () => bn.stop()]);
    status.backend = bn;
    status.backendType = backend.type;
    const held: HeldLease = manager.holdLease(bn.lease);
    status.held = held;
    cleanups.unshift(['lease keeper', () => held.stop()]);

    // Steps 15-18: the other traffic mode's state removed, masquerade and
    // forward rules, the blackhole route; kept in place every -iptables-resync s.
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
    try {
      status.traffic = await TrafficRules.start(
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
    const traffic = status.traffic;
    cleanups.unshift([
      'traffic rules',
      async () => {
        await traffic.stop();
        trafficNl.close();
      },
    ]);

    // Step 19: subnet.env; ready once written.
    try {
      writeSubnetEnv(cfg.subnetFile, {
        network: network.enableIPv4 ? network.network : undefined,
        subnet: network.enableIPv4 ? bn.lease.subnet : undefined,
        ipv6Network: network.enableIPv6 ? network.ipv6Network : undefined,
        ipv6Subnet: network.enableIPv6 ? bn.lease.ipv6Subnet : undefined,
        mtu: bn.mtu,
        ipMasq: cfg.ipMasq,
      });
      status.subnetEnvWritten = true;
      log.info({ file: cfg.subnetFile }, `wrote ${cfg.subnetFile}`);
    } catch (e) {
      log.warn({ file: cfg.subnetFile, err: errorText(e) }, `Failed to write subnet file: ${errorText(e)}`);
    }

    // Step 20: the backend runs and follows the other nodes' leases.
    // Every record the store reports passes the guard's checks before a
    // backend routes it (src/lease/peer-lease-guard.ts).
    bn.start();
    const guard = new PeerLeaseGuard({ network, own: bn.lease, local: local.current() }, (events) => bn.applyLeases(events), log.child({ component: 'leases' }));
    local.on('change', (set) => guard.setLocalAddresses(set));
    status.guard = guard;
    const leasesWatch = manager.watchLeases(bn.lease, (batch) => guard.apply(batch));
    guard.onResyncNeeded = (reason) => leasesWatch.resync(reason);
    status.leasesWatch = leasesWatch;
    cleanups.unshift(['lease watch', () => leasesWatch.stop()]);
    const refusedReport = setInterval(() => {
      const summary = guard.refusedSummary();
      if (summary) log.warn({ refused: guard.stats.refused }, `lease records not routed: ${summary} (each was logged when it arrived)`);
    }, REFUSED_SUMMARY_INTERVAL_MS);
    refusedReport.unref();
    cleanups.unshift(['refused-record report', () => clearInterval(refusedReport)]);

    // Step 21: tell systemd; keep its watchdog fed while live.
    notifier.notify('READY=1');
    const period = watchdogPeriodMs(process.env);
    if (period !== undefined && notifier.enabled) {
      const watchdog = new Watchdog(notifier, period, async () => status.live(), log);
      watchdog.start();
      cleanups.unshift(['watchdog', () => watchdog.stop()]);
      log.info({ periodMs: period }, `systemd watchdog: WATCHDOG=1 every ${period / 2000} s while healthy`);
    }
    log.info({ subnet: leaseKey(bn.lease), backend: backend.type }, 'flanneld is running');
    // Kube mode: NetworkUnavailable=False on the Node (docs/compatibility.md §11.2 call G).
    await manager.completeLease?.();

    // Step 22: until a signal or the loss of the lease.
    const loss = await Promise.race([held.lost, aborted.then(() => undefined)]);
    if (loss) {
      status.leaseLost = true;
      stopReason = `lease lost: ${(loss as LeaseLoss).reason}`;
      log.error({ key: loss.key, reason: loss.reason }, `LEASE LOST (${loss.reason}): ${loss.key} no longer belongs to this node. Shutting down; exit status 0, as upstream.`);
    }
  } catch (e) {
    if (isAborted(e) || signal.aborted) {
      // A signal during startup: a clean exit, as upstream.
    } else if (e instanceof StartupError) {
      log.error({}, e.message);
      exitCode = 1;
    } else {
      log.error({ err: e instanceof Error ? e.stack : String(e) }, `unexpected error: ${errorText(e)}`);
      exitCode = 1;
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    status.stopping = true;
    notifier.notify('STOPPING=1');
    const deadline = Date.now() + STOP_BUDGET_MS;
    for (const [what, f] of cleanups) {
      const left = Math.max(100, deadline - Date.now());
      let timer: NodeJS.Timeout | undefined;
      try {
        const timedOut = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), left)));
        if ((await Promise.race([Promise.resolve().then(f), timedOut])) === 'timeout') {
          log.warn({ component: what, waitedMs: left }, `the ${what} did not stop within ${left} ms; not waiting for it`);
        }
      } catch (e) {
        log.warn({ component: what, err: errorText(e) }, `error while stopping the ${what}`);
        if (exitCode === 0) exitCode = 1;
      } finally {
        clearTimeout(timer);
      }
    }
  }
  if (exitCode === 0) log.info({ reason: stopReason || 'stopped' }, 'Exiting cleanly...');
  return exitCode;
}
