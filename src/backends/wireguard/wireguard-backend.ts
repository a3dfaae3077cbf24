/**
 * The wireguard backend (upstream's pkg/backend/wireguard): pod traffic
 * between nodes goes through WireGuard devices, encrypted and authenticated
 * by each node's key; a node's lease carries its public key
 * (`{"PublicKey":"<base64>","Port":51820}`), and every other wireguard lease
 * becomes a peer of this node's device(s) (./peers.ts).
 *
 * The WireGuard state of a device is one table keyed by public key, set as
 * a whole: so the backend keeps the desired peers of every device from the
 * whole lease set and makes the device equal to it with `wg syncconf`
 * (./wg-tool.ts), on every lease batch and on every check, rather than
 * through the kernel network engine's per-lease operations. WireGuard
 * raises no rtnetlink event when a peer changes; the check runs every
 * WG_CHECK_INTERVAL_MS and on rtnetlink events of the devices (address,
 * route, link), and puts back what was changed by hand.
 *
 * Addresses and routes are upstream's (device.go Configure, ConfigureV6):
 * the own subnet's network address /32 (/128), the Network routed to the
 * device with scope link; MTU = the option MTU (default: the external
 * interface's) - 80, also FLANNEL_MTU.
 */
import type { Lease, LeaseAttrs, LeaseEvent } from '../../lease/lease';
import { leaseKey } from '../../lease/lease';
import type { Logger } from '../../logging';
import { NetlinkEvents } from '../../routing/netlink-events';
import { Reconciler, type Repair } from '../../routing/reconciler';
import { type LinkDetails, RtNetlink } from '../../routing/rtnetlink';
import { configureTunDevice, type TunDeviceConfig, tunChangeKind } from '../../routing/tun-device';
import { type CommandRunner, SystemCommandRunner } from '../../util/command';
import { errorText } from '../../util/errors';
import type { Ipv4Net } from '../../util/ipv4';
import type { Ipv6Net } from '../../util/ipv6';
import { LogOnce } from '../../util/repeat-log';
import { SerialQueue } from '../../util/serial';
import { acquireBackendLease, type Backend, type BackendContext, BackendError, type BackendNetwork, type BackendNetworkStatus } from '../backend';
import {
  DEFAULT_KEY_FILE,
  encodeWireguardBackendData,
  KEY_FILE_ENV,
  parseWireguardBackendConfig,
  WG_DEVICE,
  WG_DEVICE_V6,
  type WireguardBackendConfig,
  WIREGUARD_OVERHEAD,
} from './config';
import { reapUserspace, userspacePid, WIREGUARD_RUN_DIR, WireguardDevices, type WireguardDevicesOptions } from './device';
import { loadOrCreateNodeKey, type NodeKey } from './keys';
import { deviceDifferences, planWireguardPeers, type PlannedPeer, type RoutedLease, type WgPlanOptions } from './peers';
import { WgTool } from './wg-tool';

/** How often the devices are compared with the leases without a notification. */
export const WG_CHECK_INTERVAL_MS = 5000;

/** One device this node runs: its name, its port and the address families whose subnets it carries. */
interface WgDeviceSlot {
  name: string;
  listenPort: number;
  families: ReadonlyArray<4 | 6>;
}

/** A slot with its address and route configuration (known once the lease is). */
interface ConfiguredSlot extends WgDeviceSlot {
  tun: TunDeviceConfig;
}

export interface WireguardBackendOptions extends Pick<WireguardDevicesOptions, 'runDir' | 'wireguardGo'> {
  env?: NodeJS.ProcessEnv;
  runner?: CommandRunner;
}

export class WireguardBackend implements Backend {
  readonly type = 'wireguard';
  private readonly env: NodeJS.ProcessEnv;
  private readonly runner: CommandRunner;

  constructor(private readonly options: WireguardBackendOptions = {}) {
    this.env = options.env ?? process.env;
    this.runner = options.runner ?? new SystemCommandRunner();
  }

  /** flannel-wg and flannel-wg-v6, the kernel's device or wireguard-go's TUN. */
  ownsDevice(link: LinkDetails): boolean {
    return (link.name === WG_DEVICE || link.name === WG_DEVICE_V6) && (link.kind === 'wireguard' || link.kind === 'tun');
  }

  /** `flanneld cleanup`: deleting wireguard-go's device ends it (made sure of, and said). */
  async removeDevice(link: LinkDetails, deleteLink: () => Promise<void>): Promise<string[]> {
    const runDir = this.options.runDir ?? WIREGUARD_RUN_DIR;
    const pid = link.kind === 'tun' ? userspacePid(runDir, link.name) : undefined;
    await deleteLink();
    if (pid === undefined) return [];
    await reapUserspace(runDir, link.name, pid);
    return [`wireguard-go (pid ${pid}) of ${link.name} ended`];
  }

  async register(ctx: BackendContext): Promise<BackendNetwork> {
    const ext = ctx.extIface;
    const cfg = parseWireguardBackendConfig(ctx.network.backend, ext.mtu, this.env);
    const { enableIPv4, enableIPv6 } = ctx.network;
    const network = enableIPv4 ? ctx.network.network : undefined;
    const ipv6Network = enableIPv6 ? ctx.network.ipv6Network : undefined;
    if (enableIPv4 && !network) throw new BackendError('IPv4 is enabled but the network config has no Network');
    if (enableIPv6 && !ipv6Network) throw new BackendError('IPv6 is enabled but the network config has no IPv6Network');
    const log = ctx.log.child({ backend: 'wireguard' });
    checkUnderlays(cfg, ext, enableIPv4, enableIPv6);
    if (cfg.mode !== 'separate' && enableIPv6 && cfg.listenPortV6 !== cfg.listenPort) {
      log.warn(
        { mode: cfg.mode, listenPort: cfg.listenPort, listenPortV6: cfg.listenPortV6 },
        `Mode ${cfg.mode}: the lease advertises ListenPortV6 ${cfg.listenPortV6} for IPv6 (as upstream's does) but ${WG_DEVICE} listens on ListenPort ${cfg.listenPort} only; ` +
          `upstream nodes that dial this node over IPv6 reach nothing. Set "ListenPortV6": ${cfg.listenPort} in the Backend`,
      );
    }

    const wg = new WgTool(this.runner);
    let key: NodeKey;
    const keyFile = this.env[KEY_FILE_ENV] || DEFAULT_KEY_FILE;
    try {
      await wg.version();
      key = await loadOrCreateNodeKey(keyFile, wg);
    } catch (e) {
      throw new BackendError(errorText(e), { cause: e });
    }
    if (key.created) log.info({ keyFile }, `generated this node's WireGuard private key in ${keyFile}`);
    if (key.looseMode) log.warn({ keyFile }, key.looseMode);
    log.info({ publicKey: key.publicKey }, `WireGuard public key ${key.publicKey}`);

    const mtu = cfg.mtu - WIREGUARD_OVERHEAD;
    const slots = deviceSlots(cfg, enableIPv4, enableIPv6);
    const nl = RtNetlink.open();
    let net: WireguardNetwork | undefined;
    try {
      const devices = new WireguardDevices(nl, wg, this.runner, log, cfg.implementation, { ...this.options, onUserspaceExit: (d) => net?.deviceLost(d) });
      // Devices first, as upstream: a node that cannot run WireGuard takes no lease.
      for (const slot of slots) {
        const change = await devices.ensure(slot.name, mtu);
        if (change) log.info({ device: slot.name }, change);
        await wg.setKey(slot.name, key.privateKey, slot.listenPort);
      }
      log.info({ implementation: devices.implementation }, await devices.describe());

      const attrs: LeaseAttrs = {
        publicIp: ext.extAddr ?? 0,
        publicIpv6: enableIPv6 ? ext.extAddr6 : undefined,
        backendType: 'wireguard',
        backendData: enableIPv4 ? encodeWireguardBackendData(key.publicKey, cfg.listenPort) : undefined,
        backendV6Data: enableIPv6 ? encodeWireguardBackendData(key.publicKey, cfg.listenPortV6) : undefined,
      };
      const lease = await acquireBackendLease(ctx, attrs);
      if (network && lease.subnet.prefixLen === 0) throw new BackendError('failed to configure wg interface: IPv4 is enabled but the lease has no IPv4');
      if (ipv6Network && !lease.ipv6Subnet) throw new BackendError('failed to configure wg interface: IPv6 is enabled but the lease has no IPv6');
      const configured = slots.map((slot): ConfiguredSlot => ({ ...slot, tun: deviceConfig(slot, mtu, lease, network, ipv6Network) }));
      for (const slot of configured) {
        const report = await configureTunDevice(nl, slot.tun);
        log.info({ device: slot.name, changes: report.changes }, `configured ${slot.name}`);
      }
      const planOptions: WgPlanOptions = {
        mode: cfg.mode,
        devices: cfg.mode === 'separate' ? { ...(enableIPv4 ? { 4: WG_DEVICE } : {}), ...(enableIPv6 ? { 6: WG_DEVICE_V6 } : {}) } : { 4: WG_DEVICE },
        listenPort: cfg.listenPort,
        listenPortV6: cfg.listenPortV6,
        presharedKey: cfg.psk,
        persistentKeepalive: cfg.persistentKeepalive,
        extAddr: ext.extAddr,
        extAddr6: ext.extAddr6,
      };
      net = new WireguardNetwork(lease, mtu, configured, key, planOptions, wg, devices, nl, log);
      return net;
    } catch (e) {
      nl.close();
      throw e;
    }
  }
}

/** The underlay addresses the mode needs: refused with the interface named, before anything is set up. */
function checkUnderlays(cfg: WireguardBackendConfig, ext: BackendContext['extIface'], v4: boolean, v6: boolean): void {
  const needs4 = (v4 && cfg.mode === 'separate') || cfg.mode === 'ipv4';
  const needs6 = (v6 && cfg.mode === 'separate') || cfg.mode === 'ipv6';
  if (needs4 && ext.extAddr === undefined) throw new BackendError(`no IPv4 address on ${ext.name}: the wireguard backend's Mode ${cfg.mode} reaches peers over IPv4`);
  if (needs6 && ext.extAddr6 === undefined) throw new BackendError(`no IPv6 address on ${ext.name}: the wireguard backend's Mode ${cfg.mode} reaches peers over IPv6`);
  if (cfg.mode === 'auto' && ext.extAddr === undefined && ext.extAddr6 === undefined) throw new BackendError(`no address on ${ext.name} to reach peers at`);
}

/** The devices of a mode: separate has one per family, the other modes one for both. */
function deviceSlots(cfg: WireguardBackendConfig, v4: boolean, v6: boolean): WgDeviceSlot[] {
  if (cfg.mode !== 'separate') return [{ name: WG_DEVICE, listenPort: cfg.listenPort, families: [...(v4 ? [4 as const] : []), ...(v6 ? [6 as const] : [])] }];
  return [...(v4 ? [{ name: WG_DEVICE, listenPort: cfg.listenPort, families: [4 as const] }] : []), ...(v6 ? [{ name: WG_DEVICE_V6, listenPort: cfg.listenPortV6, families: [6 as const] }] : [])];
}

/** A device's addresses and routes: the own subnets of its families, their Networks routed to it with scope link. */
function deviceConfig(slot: WgDeviceSlot, mtu: number, lease: Lease, network: Ipv4Net | undefined, ipv6Network: Ipv6Net | undefined): TunDeviceConfig {
  const v4 = slot.families.includes(4) && network !== undefined;
  const v6 = slot.families.includes(6) && ipv6Network !== undefined && lease.ipv6Subnet !== undefined;
  return {
    name: slot.name,
    mtu,
    subnet: v4 ? lease.subnet : undefined,
    network: v4 ? network : undefined,
    ...(v6 ? { ipv6: { subnet: lease.ipv6Subnet!, network: ipv6Network! } } : {}),
    routeScope: 'link',
    acceptLocal: false,
  };
}

class WireguardNetwork implements BackendNetwork {
  private readonly leases = new Map<string, RoutedLease>();
  /** Arrival order, for leases whose store gives no age. */
  private arrivals = 0;
  /** The peers last set on each device, by device and lease key (for the added/removed log lines). */
  private current = new Map<string, Map<string, PlannedPeer>>();
  private readonly ignoredLogged = new LogOnce();
  private readonly queue = new SerialQueue();
  private readonly events: NetlinkEvents;
  readonly reconciler: Reconciler;
  private synced = false;
  /** A sync failed (logged); the reconciler retries. */
  private syncFailure = '';

  constructor(
    readonly lease: BackendNetwork['lease'],
    readonly mtu: number,
    private readonly slots: readonly ConfiguredSlot[],
    private readonly key: NodeKey,
    private readonly planOptions: WgPlanOptions,
    private readonly wg: WgTool,
    private readonly devices: WireguardDevices,
    private readonly nl: RtNetlink,
    private readonly log: Logger,
  ) {
    this.events = new NetlinkEvents(log);
    const names = new Set(slots.map((s) => s.name));
    let indexes = new Set<number>();
    this.reconciler = new Reconciler(
      {
        name: slots.map((s) => s.name).join('+'),
        intervalMs: WG_CHECK_INTERVAL_MS,
        // Routes carry no device name in the notification: any route change, and any event of our devices.
        relevant: (e) => e.kind === 'route' || (e.ifindex !== undefined && indexes.has(e.ifindex)) || (e.kind === 'link' && e.deleted),
      },
      () =>
        this.queue.run(async () => {
          const repairs = await this.repair();
          indexes = new Set((await this.nl.listLinks()).filter((l) => names.has(l.name)).map((l) => l.index));
          return repairs;
        }),
      this.events,
      log,
    );
  }

  start(): void {
    this.reconciler.start();
  }

  /** wireguard-go exited under us: check (and restart it) now. */
  deviceLost(device: string): void {
    this.reconciler.schedule(`wireguard-go of ${device} exited`, true);
  }

  applyLeases(events: readonly LeaseEvent[]): void {
    for (const ev of events) {
      const key = leaseKey(ev.lease);
      if (ev.type === 'removed') this.leases.delete(key);
      else this.leases.set(key, { lease: ev.lease, since: ev.since ?? Number.MAX_SAFE_INTEGER / 2 + ++this.arrivals });
    }
    void this.queue.run(() => this.sync());
  }

  /** Sets every device to the peers the leases give, logging what was added, changed and removed. */
  private async sync(): Promise<void> {
    const plan = planWireguardPeers(this.leases, this.planOptions);
    for (const [key, reason] of plan.ignored) {
      if (this.ignoredLogged.first(`${key}:${reason}`)) this.log.warn({ subnet: key }, reason);
    }
    const failures: string[] = [];
    for (const slot of this.slots) {
      const peers = plan.devices.get(slot.name) ?? [];
      try {
        await this.wg.syncconf(slot.name, { privateKey: this.key.privateKey, listenPort: slot.listenPort, peers });
      } catch (e) {
        failures.push(`${slot.name}: ${errorText(e)}`);
        continue;
      }
      this.logChanges(slot.name, peers);
    }
    if (!this.synced) {
      this.synced = true;
      this.reconciler.schedule('first lease batch applied', true);
    }
    const failure = failures.join('; ');
    if (failure && failure !== this.syncFailure) this.log.error({ err: failure }, `could not set the WireGuard peers: ${failure}; the check retries every ${WG_CHECK_INTERVAL_MS / 1000} s`);
    if (!failure && this.syncFailure) this.log.info({}, 'the WireGuard peers are set now');
    this.syncFailure = failure;
    if (failure) this.reconciler.schedule('setting the peers failed');
  }

  private logChanges(device: string, peers: readonly PlannedPeer[]): void {
    const before = this.current.get(device) ?? new Map<string, PlannedPeer>();
    const after = new Map(peers.map((p) => [p.leaseKey, p]));
    const separate = this.planOptions.mode === 'separate';
    for (const [key, p] of after) {
      const old = before.get(key);
      if (old && old.endpoint === p.endpoint && old.publicKey === p.publicKey && old.subnets.join() === p.subnets.join()) continue;
      // upstream's lines: "Subnet added: <subnet> via <endpoint>", or "Subnet(s) added: [<subnets>] via <endpoint>".
      const what = separate ? `Subnet added: ${p.subnets[0]} via ${p.endpoint}` : `Subnet(s) added: [${p.subnets.join(' ')}] via ${p.endpoint}`;
      this.log.info({ subnet: key, device, publicKey: p.publicKey, endpoint: p.endpoint }, what);
    }
    for (const [key, p] of before) {
      if (!after.has(key)) this.log.info({ subnet: key, device, publicKey: p.publicKey }, `Subnet removed: ${p.subnets.join(' ')}`);
    }
    this.current.set(device, after);
  }

  /** The check: devices running, addresses and routes in place, the peers as the leases say. */
  private async repair(): Promise<Repair[]> {
    const repairs: Repair[] = [];
    const plan = this.synced ? planWireguardPeers(this.leases, this.planOptions) : undefined;
    for (const slot of this.slots) {
      const change = await this.devices.ensure(slot.name, this.mtu);
      if (change) repairs.push({ kind: 'device', description: change });
      for (const c of (await configureTunDevice(this.nl, slot.tun)).changes) repairs.push({ kind: tunChangeKind(c), description: `${slot.name}: ${c}` });
      const have = await this.wg.show(slot.name);
      if (!have) throw new Error(`${slot.name} is no WireGuard device`);
      if (!plan) {
        // Before the first lease batch only the key and port are ours to set: the peers stay until the leases are known.
        if (have.publicKey !== this.key.publicKey || have.listenPort !== slot.listenPort) {
          await this.wg.setKey(slot.name, this.key.privateKey, slot.listenPort);
          repairs.push({ kind: 'wireguard', description: `${slot.name}: set its private key and listen port ${slot.listenPort}` });
        }
        continue;
      }
      const peers = plan.devices.get(slot.name) ?? [];
      const diffs = deviceDifferences({ publicKey: this.key.publicKey, listenPort: slot.listenPort, peers }, have);
      if (diffs.length === 0) continue;
      await this.wg.syncconf(slot.name, { privateKey: this.key.privateKey, listenPort: slot.listenPort, peers });
      this.logChanges(slot.name, peers);
      for (const d of diffs) repairs.push({ kind: 'wireguard', description: `${slot.name}: ${d}` });
    }
    if (plan && this.syncFailure) {
      this.syncFailure = '';
      this.log.info({}, 'the WireGuard peers are set now');
    }
    return repairs;
  }

  async status(): Promise<BackendNetworkStatus> {
    const plan = planWireguardPeers(this.leases, this.planOptions);
    let desired = 0;
    let installed = 0;
    await this.queue.run(async () => {
      for (const slot of this.slots) {
        const want = plan.devices.get(slot.name) ?? [];
        desired += want.length;
        const have = await this.wg.show(slot.name).catch(() => undefined);
        if (!have) continue;
        const present = new Map(have.peers.map((p) => [p.publicKey, [...p.allowedIps].sort().join()]));
        installed += want.filter((p) => present.get(p.publicKey) === [...p.allowedIps].sort().join()).length;
      }
    });
    return { synced: this.synced, routesDesired: desired, routesInstalled: installed, reconcilers: [this.reconciler] };
  }

  /** Stops following; the devices (and wireguard-go) keep running, so traffic goes on across a restart. */
  async stop(): Promise<void> {
    await this.reconciler.stop();
    await this.queue.drain();
    this.events.close();
    this.devices.detach();
    this.nl.close();
  }
}
