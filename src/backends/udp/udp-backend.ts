/**
 * The udp backend (compat §5.1): lease with `{PublicIP}` only (no
 * BackendType, no BackendData, so its bytes are upstream's), flannel0 with
 * the own subnet's address /32 and the Network route, the UDP socket bound
 * to the interface address and Port, and the native datapath following the
 * lease events.
 */
import {
  combineOffloads,
  needsVnetHeader,
  OFFLOAD_ENV,
  OffloadEnvError,
  parseOffloadEnv,
  parseTestFaults,
  TEST_FAULTS_ENV,
} from '../../forwarder/offload';
import { UdpForwarder } from '../../forwarder/udp-forwarder';
import type { LeaseEvent } from '../../lease/lease-watcher';
import type { LeasesWatch } from '../../lease/subnet-manager';
import type { Logger } from '../../log';
import { RtNetlink } from '../../routing/rtnetlink';
import { NetlinkEvents } from '../../routing/netlink-events';
import { Reconciler } from '../../routing/reconciler';
import { configureTunDevice, type TunDeviceConfig, tunChangeKind } from '../../routing/tun-device';
import { formatIpv4 } from '../../util/ipv4';
import { type Backend, type BackendContext, BackendError, type BackendNetwork, type BackendStatus } from '../backend';
import { parseUdpBackendConfig, tunMtu, type UdpBackendConfig } from './config';
import { OffloadReporter } from './offload-log';
import { UdpRouteSync } from './route-sync';
import { UnknownSourceReporter } from './source-check';

/** upstream's TUN name template (compat §5.2): the kernel picks flannel0 normally. */
export const TUN_NAME_TEMPLATE = 'flannel%d';

/** How often flannel0's address, MTU and route are checked without a notification. */
export const UDP_CHECK_INTERVAL_MS = 10_000;

export class UdpBackend implements Backend {
  readonly type = 'udp';

  /** `env` supplies FLANNEL_TS_OFFLOAD (and, in tests, FLANNEL_TS_TEST_FAULTS). */
  constructor(private readonly env: NodeJS.ProcessEnv = process.env) {}

  async register(ctx: BackendContext): Promise<BackendNetwork> {
    const cfg = parseUdpBackendConfig(ctx.network.backend);
    let offload;
    try {
      offload = combineOffloads(cfg.offload, parseOffloadEnv(this.env[OFFLOAD_ENV]));
    } catch (e) {
      if (e instanceof OffloadEnvError) throw new BackendError(e.message, { cause: e });
      throw e;
    }
    const testFaults = parseTestFaults(this.env[TEST_FAULTS_ENV]);
    const network = ctx.network.network;
    if (!ctx.network.enableIPv4 || !network) {
      throw new BackendError('the udp backend carries IPv4 only: the network config must enable IPv4 and define Network');
    }
    const { extAddr, ifaceAddr } = ctx.extIface;
    if (extAddr === undefined || ifaceAddr === undefined) {
      throw new BackendError(`the udp backend needs an IPv4 address on ${ctx.extIface.name}`);
    }
    let lease;
    try {
      lease = await ctx.subnets.acquireLease(
        { publicIp: extAddr, publicIpv6: undefined, backendType: '', backendData: undefined, backendV6Data: undefined },
        ctx.signal,
      );
    } catch (e) {
      throw new BackendError(`failed to acquire lease: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
    }
    const log = ctx.log.child({ backend: 'udp' });
    const mtu = tunMtu(cfg, ctx.extIface.mtu);
    log.info({ mtu, underlayMtu: cfg.mtu ?? ctx.extIface.mtu, source: cfg.mtu ? 'the udp backend option MTU' : `the MTU of ${ctx.extIface.name}` }, `flannel0 MTU ${mtu}`);
    const forwarder = new UdpForwarder();
    const nl = RtNetlink.open();
    let tunCfg: TunDeviceConfig;
    try {
      const tun = forwarder.openTun(TUN_NAME_TEMPLATE, { queues: cfg.workers, vnetHdr: needsVnetHeader(offload) });
      tunCfg = { name: tun, subnet: lease.subnet, network, mtu };
      const report = await configureTunDevice(nl, tunCfg);
      log.info({ device: tun, changes: report.changes }, `configured ${tun}`);
      forwarder.bindUdp({ address: formatIpv4(ifaceAddr), port: cfg.port, sockets: cfg.workers });
      forwarder.setSourceCheck(cfg.sourceCheck);
      forwarder.start({
        icmpSource: formatIpv4(lease.subnet.network),
        offload,
        ...(testFaults.length > 0 ? { testFaults } : {}),
      });
      log.info({ workers: cfg.workers }, `udp datapath started with ${cfg.workers} worker(s)`);
    } catch (e) {
      forwarder.close();
      nl.close();
      throw e;
    }
    return new UdpNetwork(ctx, cfg, lease, tunCfg, forwarder, nl, log);
  }
}

class UdpNetwork implements BackendNetwork {
  private watch: LeasesWatch | undefined;
  private poller: NodeJS.Timeout | undefined;
  private readonly routes: UdpRouteSync;
  private readonly reporter: UnknownSourceReporter;
  private readonly offloadReporter: OffloadReporter;
  private readonly events: NetlinkEvents;
  /** Keeps flannel0's address, MTU, UP flag and Network route as configured. */
  readonly reconciler: Reconciler;
  readonly mtu: number;

  constructor(
    private readonly ctx: BackendContext,
    cfg: UdpBackendConfig,
    readonly lease: BackendNetwork['lease'],
    private readonly tun: TunDeviceConfig,
    readonly forwarder: UdpForwarder,
    private readonly nl: RtNetlink,
    private readonly log: Logger,
  ) {
    this.mtu = tun.mtu;
    this.events = new NetlinkEvents(log);
    this.reconciler = new Reconciler(
      { name: tun.name, intervalMs: UDP_CHECK_INTERVAL_MS },
      async () => (await configureTunDevice(this.nl, this.tun)).changes.map((c) => ({ kind: tunChangeKind(c), description: `${this.tun.name}: ${c}` })),
      this.events,
      log,
    );
    this.routes = new UdpRouteSync(cfg.port);
    this.reporter = new UnknownSourceReporter(forwarder, log);
    this.offloadReporter = new OffloadReporter(log);
    this.offloadReporter.observe(forwarder.stats().offload);
  }

  run(): void {
    this.reconciler.start();
    this.watch = this.ctx.subnets.watchLeases(this.lease, (events) => this.apply(events));
    this.poller = setInterval(() => {
      this.reporter.poll();
      this.offloadReporter.observe(this.forwarder.stats().offload);
    }, 1000);
    this.poller.unref();
  }

  private synced = false;

  private apply(events: LeaseEvent[]): void {
    if (!this.synced) {
      this.synced = true;
      this.reconciler.schedule('first lease snapshot applied', true);
    }
    const changes = this.routes.apply(events);
    this.forwarder.applyRouteChanges(changes.set, changes.remove);
    if (changes.peers) this.forwarder.setPeers(changes.peers);
    for (const r of changes.set) this.log.info({ subnet: r.subnet.toString(), peer: r.peer }, `Subnet added: ${r.subnet.toString()} via ${r.peer}`);
    for (const s of changes.remove) this.log.info({ subnet: s.toString() }, `Subnet removed: ${s.toString()}`);
  }

  datapathProgress(): { running: boolean; heartbeatAgeMs: number | undefined } {
    const s = this.forwarder.stats();
    return { running: s.running, heartbeatAgeMs: s.heartbeatAgeMs };
  }

  async status(): Promise<BackendStatus> {
    const datapath = this.forwarder.stats();
    return {
      synced: this.synced,
      routesDesired: this.routes.size,
      routesInstalled: datapath.routes,
      reconcilers: [this.reconciler],
      leasesWatch: this.watch?.stats,
      datapath,
    };
  }

  async stop(): Promise<void> {
    if (this.poller) clearInterval(this.poller);
    await this.watch?.stop();
    await this.reconciler.stop();
    this.events.close();
    // Closing the TUN removes flannel0 with its address and route (compat §5.7, §8.7).
    this.forwarder.close();
    this.nl.close();
  }
}
