/**
 * The udp backend (upstream's pkg/backend/udp): lease with `{PublicIP}` and
 * no BackendType (BackendData only for the capability object, which upstream
 * ignores), flannel0 with the own subnet's address /32 and the Network route,
 * the UDP sockets bound to the interface address and Port, and the native
 * datapath following the lease events. With EnableIPv6 it carries inner
 * IPv6 too (beyond upstream): flannel0 gets the v6 subnet's address /128 and
 * the IPv6Network route, and IPv6 goes over the IPv4 underlay to peers whose
 * lease advertises the "ipv6" capability.
 */
import { combineOffloads, OFFLOAD_ENV, OffloadEnvError, OFFLOAD_SWITCHES, parseOffloadEnv } from '../../forwarder/offload';
import type { DatapathStats, UdpForwarder } from '../../forwarder/udp-forwarder';
import type { LeaseEvent } from '../../lease/lease';
import type { Logger } from '../../logging';
import { NetlinkEvents } from '../../routing/netlink-events';
import { Reconciler } from '../../routing/reconciler';
import { type LinkDetails, RtNetlink } from '../../routing/rtnetlink';
import { type LocalAddressSet, type LocalAddressSource, localAddressTexts } from '../../routing/local-addresses';
import { configureTunDevice, type TunDeviceConfig, tunChangeKind, UDP6_ENCAP_OVERHEAD, UDP_ENCAP_OVERHEAD } from '../../routing/tun-device';
import { leaseKey } from '../../lease/lease';
import { formatIpv4 } from '../../util/ipv4';
import { formatIpv6 } from '../../util/ipv6';
import { LogOnce } from '../../util/repeat-log';
import { errorText } from '../../util/errors';
import {
  acquireBackendLease,
  type Backend,
  type BackendContext,
  BackendError,
  type BackendNetwork,
  type BackendNetworkStatus,
  type DatapathProgress,
  type DatapathReport,
  type UserspaceDatapath,
} from '../backend';
import { DATAPATH_ENV, DATAPATH_MODES, type DatapathMode, parseUdpBackendConfig, takesPartialChecksums, tunMtu, type UdpBackendConfig } from './config';
import { fastPathObjectPath, type KernelFastPath } from '../../forwarder/fast-path';
import { boundSourcePorts, fastPathBlocker, fastRouteChanges, offloadBesideFastPath, startFastPath } from './fast-path';
import { type RunningUdpDatapath, startUdpDatapath, TUN_NAME_TEMPLATE } from './datapath';
import { IPV6, KERNEL_DECAP, PARTIAL_CHECKSUMS, udpBackendData } from './capabilities';
import { OffloadReporter } from './offload-log';
import { UdpRouteSync } from './route-sync';
import { RefusalReporter } from './source-check';

export { TUN_NAME_TEMPLATE };

/** How often flannel0's address, MTU and route are checked without a notification. */
export const UDP_CHECK_INTERVAL_MS = 10_000;

/** Whether `name` is one the kernel gives for `template` ("flannel%d" -> flannel0, flannel1, ...). */
export function matchesNameTemplate(template: string, name: string): boolean {
  const [head, tail] = template.split('%d') as [string, string | undefined];
  if (tail === undefined) return name === head;
  if (!name.startsWith(head) || !name.endsWith(tail)) return false;
  return /^\d+$/.test(name.slice(head.length, name.length - tail.length));
}

export class UdpBackend implements Backend {
  readonly type = 'udp';

  /** `env` supplies FLANNEL_TS_OFFLOAD. */
  constructor(private readonly env: NodeJS.ProcessEnv = process.env) {}

  /** The TUN the kernel named from our template (flannel0); it normally vanishes with the process. */
  ownsDevice(link: LinkDetails): boolean {
    return link.kind === 'tun' && matchesNameTemplate(TUN_NAME_TEMPLATE, link.name);
  }

  async register(ctx: BackendContext): Promise<BackendNetwork> {
    const cfg = parseUdpBackendConfig(ctx.network.backend);
    let offload;
    try {
      offload = combineOffloads(cfg.offload, parseOffloadEnv(this.env[OFFLOAD_ENV]));
    } catch (e) {
      if (e instanceof OffloadEnvError) throw new BackendError(e.message, { cause: e });
      throw e;
    }
    const mode = datapathMode(cfg.datapath, this.env[DATAPATH_ENV]);
    const { enableIPv4, enableIPv6 } = ctx.network;
    const network = enableIPv4 ? ctx.network.network : undefined;
    const ipv6Network = enableIPv6 ? ctx.network.ipv6Network : undefined;
    if (enableIPv4 && !network) throw new BackendError('IPv4 is enabled but the network config has no Network');
    if (enableIPv6 && !ipv6Network) throw new BackendError('IPv6 is enabled but the network config has no IPv6Network');
    const ext = ctx.extIface;
    if (enableIPv4 && (ext.extAddr === undefined || ext.ifaceAddr === undefined)) throw new BackendError(`no IPv4 address on ${ext.name}`);
    if (enableIPv6 && (ext.extAddr6 === undefined || ext.ifaceAddr6 === undefined)) throw new BackendError(`no IPv6 address on ${ext.name}`);
    // The underlays: IPv4 between nodes with a PublicIP; IPv6 toward peers
    // without one (an IPv6-only cluster), so this node listens on its
    // PublicIPv6 too whenever the network has IPv6.
    const underlay4 = enableIPv4;
    const underlay6 = enableIPv6;
    const log = ctx.log.child({ backend: 'udp' });
    const fast = chooseFastPath(mode, { extName: ext.name, bindAddress: underlay4 && network ? formatIpv4(ext.ifaceAddr!) : undefined, objectPath: fastPathObjectPath() }, log);
    if (fast) offload = offloadBesideFastPath(offload);
    const partialChecksums = !fast && takesPartialChecksums(cfg, offload);
    const backendData = udpBackendData([...(partialChecksums ? [PARTIAL_CHECKSUMS] : []), ...(ipv6Network ? [IPV6] : []), ...(fast && cfg.advertiseCapabilities ? [KERNEL_DECAP] : [])]);
    const lease = await acquireBackendLease(ctx, {
      // IPv6 only: PublicIP 0.0.0.0, as upstream's host-gw writes it there.
      publicIp: underlay4 ? ext.extAddr! : 0,
      publicIpv6: underlay6 ? ext.extAddr6 : undefined,
      backendType: '',
      // The capability object goes with each family's part of the lease (a
      // kube IPv6-only node publishes no IPv4 backend-data).
      backendData: underlay4 ? backendData : undefined,
      backendV6Data: underlay6 ? backendData : undefined,
    });
    if (ipv6Network && !lease.ipv6Subnet) throw new BackendError(`IPv6 is enabled but the lease ${leaseKey(lease)} has no IPv6 subnet`);
    // One MTU for flannel0: room for the larger encapsulation that may carry it.
    const mtu = tunMtu(cfg, ext.mtu, underlay6 ? UDP6_ENCAP_OVERHEAD : UDP_ENCAP_OVERHEAD);
    log.info(
      { mtu, underlayMtu: cfg.mtu ?? ext.mtu, source: cfg.mtu ? 'the udp backend option MTU' : `the MTU of ${ext.name}`, underlay: underlay6 ? 'ipv6' : 'ipv4' },
      `flannel0 MTU ${mtu}`,
    );
    const nl = RtNetlink.open();
    try {
      const running = await startUdpDatapath(nl, {
        subnet: network ? lease.subnet : undefined,
        network,
        ...(ipv6Network && lease.ipv6Subnet ? { ipv6: { subnet: lease.ipv6Subnet, network: ipv6Network } } : {}),
        mtu,
        bindAddress: underlay4 ? formatIpv4(ext.ifaceAddr!) : undefined,
        bindAddress6: underlay6 ? formatIpv6(ext.ifaceAddr6!) : undefined,
        port: cfg.port,
        sourcePorts: cfg.sourcePorts,
        workers: cfg.workers,
        offload,
        sourceCheck: cfg.sourceCheck,
        allowExternalSources: cfg.allowExternalSources,
        partialChecksums,
        localAddresses: localAddressTexts(ctx.localAddresses.current()),
        busyPollMicroseconds: cfg.busyPollMicroseconds,
      });
      log.info({ device: running.tun.name, changes: running.changes }, `configured ${running.tun.name}`);
      warnBusySourcePorts(log, cfg, running);
      log.info(
        { workers: cfg.workers, busyPollMicroseconds: cfg.busyPollMicroseconds },
        `udp datapath started with ${cfg.workers} worker(s)` +
          (cfg.busyPollMicroseconds > 0 ? `, busy polling ${cfg.busyPollMicroseconds} µs after work` : ''),
      );
      let fastPath: KernelFastPath | undefined;
      if (fast) {
        try {
          const tunIfindex = (await nl.getLink(running.tun.name))!.index;
          fastPath = startFastPath({
            tunIfindex,
            extIfindex: ext.index,
            localAddress: formatIpv4(ext.ifaceAddr!),
            ownSubnet: lease.subnet,
            port: cfg.port,
            sourcePorts: boundSourcePorts(cfg.port, cfg.sourcePorts, running.busySourcePorts),
            localAddresses: localAddressTexts(ctx.localAddresses.current()),
          });
        } catch (e) {
          running.forwarder.close();
          // The lease already says this node unwraps in the kernel: it cannot go on without.
          throw new BackendError(`${errorText(e)}; set the udp backend option "Datapath": "user" (or ${DATAPATH_ENV}=user on this node) to run without the kernel fast path`, { cause: e });
        }
        log.info({ datapath: 'ebpf', tunIfindex: running.tun.name, extIface: ext.name }, `udp datapath: the kernel fast path is on (tc egress on ${running.tun.name}, tc ingress on ${ext.name}); the user-space datapath takes what it passes on`);
      }
      const routes = new UdpRouteSync(cfg.port, { ipv4: network !== undefined, ipv6: ipv6Network !== undefined, underlay4, underlay6 });
      return new UdpNetwork(cfg, lease, running.tun, running.forwarder, nl, log, routes, ctx.localAddresses, fastPath);
    } catch (e) {
      nl.close();
      throw e;
    }
  }
}

/** The mode asked for: FLANNEL_TS_DATAPATH on this node, else the Backend option. */
function datapathMode(option: DatapathMode, env: string | undefined): DatapathMode {
  if (env === undefined || env === '') return option;
  if (!DATAPATH_MODES.includes(env as DatapathMode)) throw new BackendError(`${DATAPATH_ENV}=${env} is not one of ${DATAPATH_MODES.join(', ')}`);
  return env as DatapathMode;
}

/**
 * Whether the kernel fast path runs: never with "user"; with "ebpf" it must
 * (a node that cannot is refused, naming the fix); with "auto" where it can,
 * saying once why not otherwise.
 */
function chooseFastPath(mode: DatapathMode, probe: Parameters<typeof fastPathBlocker>[0], log: Logger): boolean {
  if (mode === 'user') return false;
  const blocker = fastPathBlocker(probe);
  if (blocker === undefined) return true;
  if (mode === 'ebpf') throw new BackendError(`"Datapath": "ebpf": the kernel fast path cannot run on this node: ${blocker}`);
  log.info({ datapath: 'user' }, `udp datapath: user space only (Datapath auto: the kernel fast path cannot run here: ${blocker})`);
  return false;
}

/** Per-flow source ports another socket holds were left out: say which, and what a firewall should allow. */
function warnBusySourcePorts(log: Logger, cfg: UdpBackendConfig, bound: Pick<RunningUdpDatapath, 'busySourcePorts' | 'busySourcePorts6'>): void {
  for (const [family, busy] of [['IPv4', bound.busySourcePorts], ['IPv6', bound.busySourcePorts6]] as const) {
    if (busy.length === 0) continue;
    log.warn(
      { family, busyPorts: busy, sourcePorts: cfg.sourcePorts - busy.length },
      `udp source ports ${busy.join(', ')} (${family}) are held by another socket; datagrams leave from the other ` +
        `${cfg.sourcePorts - busy.length} of ${cfg.port + 1}-${cfg.port + cfg.sourcePorts}. Free them, or set "SourcePorts" to fewer`,
    );
  }
}

/**
 * The udp datapath's counters in the backend-neutral report shape; with the
 * kernel fast path, its packets and bytes are added to the totals (each
 * packet goes one way or the other) and its counters listed by name.
 */
export function datapathReport(s: DatapathStats, fast?: Readonly<Record<string, number>>): DatapathReport {
  const f = (name: string) => fast?.[name] ?? 0;
  return {
    running: s.running,
    heartbeatAgeMs: s.heartbeatAgeMs,
    workers: s.workers,
    packets: { egress: s.get('egress_sent_packets') + f('ebpf_egress_packets'), ingress: s.get('ingress_written_packets') + f('ebpf_ingress_packets') },
    bytes: { egress: s.get('egress_sent_bytes') + f('ebpf_egress_bytes'), ingress: s.get('ingress_written_bytes') + f('ebpf_ingress_bytes') },
    drops: { egress: s.drops('egress'), ingress: s.drops('ingress') },
    counters: fast ? { ...s.counters, ...fast } : s.counters,
    offloads: s.offload ? Object.fromEntries(OFFLOAD_SWITCHES.map((k) => [k, s.offload![k].status === 'on'])) : undefined,
  };
}

class UdpNetwork implements BackendNetwork, UserspaceDatapath {
  private poller: NodeJS.Timeout | undefined;
  private readonly routes: UdpRouteSync;
  private readonly reporter: RefusalReporter;
  private readonly offloadReporter: OffloadReporter;
  private readonly events: NetlinkEvents;
  /** Keeps flannel0's address, MTU, UP flag and Network route as configured. */
  readonly reconciler: Reconciler;
  readonly mtu: number;
  readonly datapath: UserspaceDatapath = this;
  private synced = false;
  private readonly unreachableLogged = new LogOnce();
  private readonly onLocalAddresses = (set: LocalAddressSet): void => {
    const localAddresses = localAddressTexts(set);
    this.forwarder.update({ localAddresses });
    this.fastPath?.update({ localAddresses });
  };

  constructor(
    cfg: UdpBackendConfig,
    readonly lease: BackendNetwork['lease'],
    private readonly tun: TunDeviceConfig,
    readonly forwarder: UdpForwarder,
    private readonly nl: RtNetlink,
    private readonly log: Logger,
    routes: UdpRouteSync,
    private readonly localAddresses: LocalAddressSource,
    /** The kernel fast path beside the user-space datapath (Datapath ebpf or auto), when it runs. */
    private readonly fastPath?: KernelFastPath,
  ) {
    this.mtu = tun.mtu;
    this.events = new NetlinkEvents(log);
    this.reconciler = new Reconciler(
      { name: tun.name, intervalMs: UDP_CHECK_INTERVAL_MS },
      async () => (await configureTunDevice(this.nl, this.tun)).changes.map((c) => ({ kind: tunChangeKind(c), description: `${this.tun.name}: ${c}` })),
      this.events,
      log,
    );
    this.routes = routes;
    this.reporter = new RefusalReporter(forwarder, log);
    this.offloadReporter = new OffloadReporter(log);
    this.offloadReporter.observe(forwarder.stats().offload);
  }

  start(): void {
    this.localAddresses.on('change', this.onLocalAddresses);
    // An address may have come or gone since register() read them.
    this.onLocalAddresses(this.localAddresses.current());
    this.reconciler.start();
    this.poller = setInterval(() => {
      this.reporter.poll();
      const stats = this.forwarder.stats();
      this.offloadReporter.observe(stats.offload, stats.get('offload_gso_failures'));
    }, 1000);
    this.poller.unref();
  }

  applyLeases(events: readonly LeaseEvent[]): void {
    if (!this.synced) {
      this.synced = true;
      this.reconciler.schedule('first lease batch applied', true);
    }
    const changes = this.routes.apply(events);
    // Routes and peers in one publication: never one without the other.
    this.forwarder.update({ setRoutes: changes.set, removeRoutes: changes.remove, ...(changes.peers ? { peers: changes.peers } : {}) });
    // The fast path's routes after the user-space path's: a packet it passes on always finds its route there.
    if (this.fastPath) this.fastPath.update(fastRouteChanges(changes.set, changes.remove));
    for (const r of changes.set) {
      // What the peer's lease advertises (the datapath uses partial checksums only when this node does too).
      const caps = [...(r.partialChecksums ? ['partial checksums'] : []), ...(r.ipv6 ? ['ipv6'] : [])];
      this.log.info(
        { subnet: r.subnet.toString(), peer: r.peer, capabilities: caps },
        `Subnet added: ${r.subnet.toString()} via ${r.peer}${caps.length > 0 ? ` (${caps.join(', ')})` : ''}`,
      );
    }
    for (const l of changes.unreachable) {
      const key = leaseKey(l);
      if (!this.unreachableLogged.first(key)) continue;
      this.log.warn(
        { subnet: key },
        `Ignoring lease ${key}: this node and its node share no underlay (neither both a PublicIP nor both a PublicIPv6); its pods are unreachable from here`,
      );
    }
    for (const s of changes.remove) this.log.info({ subnet: s.toString() }, `Subnet removed: ${s.toString()}`);
  }

  progress(): DatapathProgress {
    const s = this.forwarder.stats();
    return { running: s.running, heartbeatAgeMs: s.heartbeatAgeMs };
  }

  report(): DatapathReport {
    return datapathReport(this.forwarder.stats(), this.fastPath?.counters());
  }

  async status(): Promise<BackendNetworkStatus> {
    return { synced: this.synced, routesDesired: this.routes.size, routesInstalled: this.forwarder.stats().routes, reconcilers: [this.reconciler] };
  }

  async stop(): Promise<void> {
    this.localAddresses.off('change', this.onLocalAddresses);
    if (this.poller) clearInterval(this.poller);
    await this.reconciler.stop();
    this.events.close();
    // The fast path first: its ingress program must not hand packets to a flannel0 that is going.
    this.fastPath?.close();
    // Closing the TUN removes flannel0 with its address and route, as upstream's does.
    this.forwarder.close();
    this.nl.close();
  }
}
