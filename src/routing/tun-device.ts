/**
 * Configuring a point-to-point device of ours: the udp backend's TUN as upstream's configureIface does
 * (docs/compatibility.md §5.2): the own subnet's network address as /32 (a /32 creates no
 * broadcast routes), MTU = underlay MTU - 28, UP, and a route for the whole
 * flannel Network to the device (scope universe, main table; proto 157,
 * RTPROT_FLANNEL_TS, where upstream has proto boot).
 *
 * With inner IPv6 (beyond upstream, whose udp backend is IPv4-only) the
 * device also gets the own IPv6 subnet's network address /128 and a route
 * for the IPv6 Network, as the vxlan backend's v6 device does.
 *
 * The wireguard backend's devices take the same steps with upstream's
 * route for them (device.go, addRoute: scope link) and without
 * accept_local (`routeScope`, `acceptLocal`).
 *
 * Idempotent: run it again on a configured device and it fixes what differs
 * (a stray or old address, the MTU, the UP flag, the route's target) and
 * never fails with EEXIST.
 */
import * as fs from 'node:fs/promises';
import { familyOf, formatIp, type IpAddr, type IpNet, sameNet } from '../util/ip';
import { Ipv4Net } from '../util/ipv4';
import { formatIpv6, isLinkLocal6, type Ipv6Net } from '../util/ipv6';
import { isNetlinkError, type RouteInfo, RT_TABLE_MAIN, RTPROT_FLANNEL_TS, type RtNetlink } from './rtnetlink';
import { NamedError, errorText } from '../util/errors';

/** IPv4 (20) + UDP (8) header bytes the encapsulation adds (docs/compatibility.md §5.2, §5.8). */
export const UDP_ENCAP_OVERHEAD = 28;
/** IPv6 (40, RFC 8200 §3) + UDP (8) header bytes the encapsulation adds over the IPv6 underlay. */
export const UDP6_ENCAP_OVERHEAD = 48;

export interface TunDeviceConfig {
  /** Device name, e.g. "flannel0". */
  name: string;
  /** The own lease's subnet; its network address becomes the device address (absent: IPv6 only). */
  subnet: Ipv4Net | undefined;
  /** The flannel Network routed to the device (absent: IPv6 only). */
  network: Ipv4Net | undefined;
  /** The device MTU (underlay MTU - UDP_ENCAP_OVERHEAD). */
  mtu: number;
  /** Inner IPv6: the own v6 subnet (its network address goes on the device) and the IPv6 Network routed to it. */
  ipv6?: { subnet: Ipv6Net; network: Ipv6Net };
  /** The scope of the Network routes (default universe, the udp backend's; wireguard's are link). */
  routeScope?: 'universe' | 'link';
  /** Set accept_local on the device (default true: the udp datapath's ICMP errors need it). */
  acceptLocal?: boolean;
}

/** The kind of state a configureTunDevice change text is about (for repair counters). */
export function tunChangeKind(change: string): string {
  if (/address/.test(change)) return 'address';
  if (/MTU/.test(change)) return 'mtu';
  if (/route/.test(change)) return 'route';
  if (/UP/.test(change)) return 'link';
  return 'sysctl';
}

/** What configureTunDevice changed; empty arrays when nothing differed. */
export interface TunDeviceReport {
  changes: string[];
}

/** A step of the device configuration failed; the message is upstream's text. */
export class TunConfigError extends NamedError {}


/**
 * Lets the kernel accept packets arriving on `device` whose source is one of
 * this host's addresses. Needed because the ICMP errors the datapath writes
 * into the TUN come from the TUN's own address (docs/compatibility.md §5.6); without it the
 * kernel drops them as martians (fib_validate_source) and they never reach
 * the sender.
 */
export async function setAcceptLocal(device: string, enabled: boolean): Promise<boolean> {
  const file = `/proc/sys/net/ipv4/conf/${device}/accept_local`;
  const want = enabled ? '1' : '0';
  const current = (await fs.readFile(file, 'utf8')).trim();
  if (current === want) return false;
  await fs.writeFile(file, want);
  return true;
}

export async function configureTunDevice(nl: RtNetlink, cfg: TunDeviceConfig): Promise<TunDeviceReport> {
  const changes: string[] = [];
  const link = await nl.getLink(cfg.name);
  if (!link) throw new TunConfigError(`failed to lookup interface ${cfg.name}`);

  if (cfg.subnet) changes.push(...(await configureTunAddress4(nl, link.index, cfg.name, cfg.subnet)));

  if (link.mtu !== cfg.mtu) {
    try {
      await nl.setLinkMtu(link.index, cfg.mtu);
      changes.push(`set MTU ${cfg.mtu} (was ${link.mtu})`);
    } catch (e) {
      throw new TunConfigError(`failed to set MTU for ${cfg.name}: ${errorText(e)}`, { cause: e });
    }
  }

  if (!link.up) {
    try {
      await nl.setLinkUp(link.index);
      changes.push('set UP');
    } catch (e) {
      throw new TunConfigError(`failed to set interface ${cfg.name} to UP state: ${errorText(e)}`, { cause: e });
    }
  }

  const scope = cfg.routeScope ?? 'universe';
  if (cfg.network) changes.push(...(await ensureNetworkRoute(nl, link.index, cfg.name, cfg.network, scope)));
  if (cfg.ipv6) changes.push(...(await configureTunIpv6(nl, link.index, cfg.name, cfg.ipv6, scope)));

  if (cfg.acceptLocal === false) return { changes };
  try {
    if (await setAcceptLocal(cfg.name, true)) changes.push('set accept_local=1');
  } catch (e) {
    throw new TunConfigError(`failed to set accept_local on ${cfg.name}: ${errorText(e)}`, { cause: e });
  }
  return { changes };
}

/**
 * The IPv6 half: IPv6 on for the device (a host whose default has it off
 * would refuse the address), the own v6 subnet's network address /128 and no
 * other address of the IPv6 Network (link-local ones are the kernel's), and
 * the route for the IPv6 Network to the device.
 */
async function configureTunIpv6(nl: RtNetlink, index: number, name: string, v6: { subnet: Ipv6Net; network: Ipv6Net }, scope: 'universe' | 'link'): Promise<string[]> {
  const changes: string[] = [];
  const disable = `/proc/sys/net/ipv6/conf/${name}/disable_ipv6`;
  try {
    if ((await fs.readFile(disable, 'utf8')).trim() !== '0') {
      await fs.writeFile(disable, '0');
      changes.push('set disable_ipv6=0');
    }
  } catch (e) {
    throw new TunConfigError(`failed to add IP address ${formatIpv6(v6.subnet.network)}/128 to ${name}: ${errorText(e)}`, { cause: e });
  }
  const owned = (a: IpAddr) => typeof a === 'bigint' && !isLinkLocal6(a) && v6.network.contains(a);
  changes.push(...(await ensureOnlyAddress(nl, index, name, v6.subnet.network, 128, owned)));
  changes.push(...(await ensureNetworkRoute(nl, index, name, v6.network, scope)));
  return changes;
}

/** The own subnet's network address /32 on the device, and no other IPv4 address. */
function configureTunAddress4(nl: RtNetlink, index: number, name: string, subnet: Ipv4Net): Promise<string[]> {
  return ensureOnlyAddress(nl, index, name, subnet.network, 32, () => true);
}

/**
 * `want`/`prefixLen` on the device, and none of the device's other addresses
 * of that family for which `owned` holds (those are removed).
 */
async function ensureOnlyAddress(nl: RtNetlink, index: number, name: string, want: IpAddr, prefixLen: number, owned: (a: IpAddr) => boolean): Promise<string[]> {
  const changes: string[] = [];
  const addrText = `${formatIp(want)}/${prefixLen}`;
  try {
    const existing: Array<{ address: IpAddr; prefixLen: number }> = familyOf(want) === 4 ? await nl.listAddresses(index) : await nl.listAddresses6(index);
    for (const a of existing) {
      if ((a.address === want && a.prefixLen === prefixLen) || !owned(a.address)) continue;
      await nl.deleteAddress(index, a.address, a.prefixLen);
      changes.push(`removed address ${formatIp(a.address)}/${a.prefixLen}`);
    }
    if (!existing.some((a) => a.address === want && a.prefixLen === prefixLen)) {
      try {
        await nl.addAddress(index, want, prefixLen);
        changes.push(`added address ${addrText}`);
      } catch (e) {
        if (!isNetlinkError(e, 'EEXIST')) throw e;
      }
    }
  } catch (e) {
    throw new TunConfigError(`failed to add IP address ${addrText} to ${name}: ${errorText(e)}`, { cause: e });
  }
  return changes;
}

/** The route for `network` (the Network or the IPv6 Network) to the device. */
async function ensureNetworkRoute(nl: RtNetlink, index: number, name: string, network: IpNet, scope: 'universe' | 'link'): Promise<string[]> {
  const dst = network.canonical();
  try {
    const routes: Array<RouteInfo<IpNet>> = dst instanceof Ipv4Net ? await nl.listRoutes(RT_TABLE_MAIN) : await nl.listRoutes6(RT_TABLE_MAIN);
    // IPv6 routes have no scope of their own (the kernel reports universe).
    const scopeOk = (r: RouteInfo<IpNet>) => !(dst instanceof Ipv4Net) || r.scope === scope;
    if (routes.some((r) => sameNet(r.dst, dst) && r.type === 'unicast' && r.oif === index && r.gateway === undefined && scopeOk(r))) return [];
    // Replace semantics: a route to the Network through another device
    // (a previous flannel0, or one Docker added) is taken over, not an error.
    await nl.replaceRoute({ dst, oif: index, scope, protocol: RTPROT_FLANNEL_TS });
    return [`set route ${dst.toString()} dev ${name}${scope === 'link' ? ' scope link' : ''}`];
  } catch (e) {
    throw new TunConfigError(`failed to add route (${dst.toString()} -> ${name}): ${errorText(e)}`, { cause: e });
  }
}
