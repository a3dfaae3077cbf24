/**
 * Selecting the external interface and addresses (docs/compatibility.md §8.4).
 *
 * Order of attempts:
 *  - no -iface, -iface-regex or -iface-can-reach: the interface holding
 *    -public-ip (or -public-ipv6) if given, else the interface of the first
 *    IPv4 default route;
 *  - otherwise each -iface (an IP: the interface owning it; else a name),
 *    then each -iface-regex (IP texts of all interfaces first, then names),
 *    then -iface-can-reach (the route the kernel would use); first success wins.
 * The interface address is the first usable one after sorting: global
 * before link-local, permanent before dynamic, non-temporary before
 * temporary; usable = global or link-local unicast and not deprecated. The
 * advertised (external) address is -public-ip when given, else that address.
 *
 * The core works on a snapshot (NetworkView) so it is tested without root.
 */
import type { Logger } from '../logging';
import { formatIp, type IpAddr } from '../util/ip';
import { formatIpv4, tryParseIpv4 } from '../util/ipv4';
import { formatIpv6, type Ipv6Net, tryParseIpv6 } from '../util/ipv6';
import { type DetailedAddress, formatAddress, type LinkInfo, type RouteInfo, type RtNetlink } from './rtnetlink';
import { NamedError, errorText } from '../util/errors';

export interface NetworkView {
  links: readonly LinkInfo[];
  addresses: readonly DetailedAddress[];
  /** IPv4 routes of the main table (for the default route). */
  routes: readonly RouteInfo[];
  /** IPv6 routes of the main table (the default route of an IPv6-only or dual-stack node). */
  routes6?: ReadonlyArray<RouteInfo<Ipv6Net>>;
  routeGet(dst: IpAddr): Promise<{ oif: number | undefined; prefsrc: IpAddr | undefined }>;
}

export interface SelectRequest {
  iface: readonly string[];
  ifaceRegex: readonly string[];
  ifaceCanReach: string;
  publicIp: string;
  publicIpv6: string;
  ipv4: boolean;
  ipv6: boolean;
}

export interface ExternalInterface {
  name: string;
  index: number;
  mtu: number;
  /** The interface's own addresses (bind address of the udp socket, vxlan local). */
  ifaceAddr: number | undefined;
  ifaceAddr6: bigint | undefined;
  /** The advertised addresses (lease PublicIP / PublicIPv6). */
  extAddr: number | undefined;
  extAddr6: bigint | undefined;
}

export class InterfaceSelectionError extends NamedError {}

function isUsable(a: DetailedAddress): boolean {
  if (a.deprecated) return false;
  if (a.family === 4) {
    const v = a.address as number;
    const first = v >>> 24;
    return v !== 0 && first !== 127 && first < 224; // unicast, not loopback, not multicast/class E/broadcast
  }
  const v = a.address as bigint;
  return v !== 0n && v !== 1n && v >> 120n !== 0xffn; // not unspecified, loopback or multicast
}

function isLinkLocal(a: DetailedAddress): boolean {
  return a.family === 4 ? (a.address as number) >>> 16 === 0xa9fe : (a.address as bigint) >> 118n === 0x3fan;
}

/** Usable addresses of one family of a link, in selection order (a stable sort of kernel order). */
export function usableAddresses(view: NetworkView, index: number, family: 4 | 6): DetailedAddress[] {
  const rank = (a: DetailedAddress) => (isLinkLocal(a) ? 4 : 0) + (a.permanent ? 0 : 2) + (a.temporary ? 1 : 0);
  return view.addresses
    .filter((a) => a.index === index && a.family === family && isUsable(a))
    .map((a, i) => ({ a, i }))
    .sort((x, y) => rank(x.a) - rank(y.a) || x.i - y.i)
    .map((x) => x.a);
}

function describeCandidates(view: NetworkView): string {
  return view.links
    .map((l) => `${l.name}:[${view.addresses.filter((a) => a.index === l.index).map(formatAddress).join(' ')}]`)
    .join(', ');
}

interface Found {
  link: LinkInfo;
  addr4: number | undefined;
  addr6: bigint | undefined;
  why: string;
}

/** Fills the addresses not fixed by how the interface was found. */
function complete(view: NetworkView, req: SelectRequest, link: LinkInfo, why: string, addr4?: number, addr6?: bigint): Found {
  const a4 = addr4 ?? (req.ipv4 ? (usableAddresses(view, link.index, 4)[0]?.address as number | undefined) : undefined);
  const a6 = addr6 ?? (req.ipv6 ? (usableAddresses(view, link.index, 6)[0]?.address as bigint | undefined) : undefined);
  if (req.ipv4 && a4 === undefined) throw new InterfaceSelectionError(`failed to find IPv4 address for interface ${link.name}`);
  if (req.ipv6 && a6 === undefined) throw new InterfaceSelectionError(`failed to find IPv6 address for interface ${link.name}`);
  return { link, addr4: a4, addr6: a6, why };
}

function linkOf(view: NetworkView, index: number): LinkInfo | undefined {
  return view.links.find((l) => l.index === index);
}

/** The interface owning an address. */
function byAddress(view: NetworkView, req: SelectRequest, text: string, why: string): Found {
  const v4 = tryParseIpv4(text);
  const v6 = v4 === undefined ? tryParseIpv6(text) : undefined;
  const owner = view.addresses.find((a) => (v4 !== undefined ? a.family === 4 && a.address === v4 : a.family === 6 && a.address === v6));
  const link = owner && linkOf(view, owner.index);
  if (!link) throw new InterfaceSelectionError(`no interface with address ${text}`);
  return complete(view, req, link, why, v4, v6);
}

function byName(view: NetworkView, req: SelectRequest, name: string): Found {
  const link = view.links.find((l) => l.name === name);
  if (!link) throw new InterfaceSelectionError(`no interface named ${name}`);
  return complete(view, req, link, `-iface=${name}`);
}

function byRegex(view: NetworkView, req: SelectRequest, pattern: string): Found {
  let re: RegExp;
  try {
    re = new RegExp(pattern);
  } catch (e) {
    throw new InterfaceSelectionError(`could not compile the IP address regex '${pattern}': ${errorText(e)}`);
  }
  const families: Array<4 | 6> = [...(req.ipv4 ? [4 as const] : []), ...(req.ipv6 ? [6 as const] : [])];
  for (const link of view.links) {
    for (const family of families) {
      for (const a of usableAddresses(view, link.index, family)) {
        if (!re.test(formatAddress(a))) continue;
        return complete(view, req, link, `-iface-regex=${pattern} matched address ${formatAddress(a)}`, family === 4 ? (a.address as number) : undefined, family === 6 ? (a.address as bigint) : undefined);
      }
    }
  }
  for (const link of view.links) {
    if (re.test(link.name)) return complete(view, req, link, `-iface-regex=${pattern} matched the name ${link.name}`);
  }
  throw new InterfaceSelectionError(`could not match pattern ${pattern} to any of the available network interfaces (${describeCandidates(view)})`);
}

/** -iface-can-reach: the kernel's route to an address of either family (upstream's GetInterfaceBySpecificIPRouting). */
async function byCanReach(view: NetworkView, req: SelectRequest, target: string): Promise<Found> {
  const ip: IpAddr | undefined = tryParseIpv4(target) ?? tryParseIpv6(target);
  if (ip === undefined) throw new InterfaceSelectionError(`-iface-can-reach ${target} is not an IP address`);
  const r = await view.routeGet(ip);
  const link = r.oif !== undefined ? linkOf(view, r.oif) : undefined;
  if (!link) throw new InterfaceSelectionError(`no route to ${target}`);
  const why = `-iface-can-reach=${target} (the route to it leaves through ${link.name})`;
  return typeof r.prefsrc === 'bigint' ? complete(view, req, link, why, undefined, r.prefsrc) : complete(view, req, link, why, r.prefsrc);
}

type AnyRoute = Pick<RouteInfo, 'type' | 'oif'> & { dst: { prefixLen: number }; gateway?: IpAddr | undefined };

function defaultRouteOf(routes: readonly AnyRoute[]): AnyRoute | undefined {
  return routes.find((r) => r.dst.prefixLen === 0 && r.type === 'unicast' && r.oif !== undefined);
}

/**
 * No interface given: the interface of the default route, as upstream's
 * LookupExtIface does: the IPv4 one (dual stack: and the IPv6 one, if there
 * is one, must leave through the same interface), or for an IPv6-only node
 * the IPv6 one (GetDefaultV6GatewayInterface).
 */
function byDefaultRoute(view: NetworkView, req: SelectRequest): Found {
  const v4 = req.ipv4 ? defaultRouteOf(view.routes) : undefined;
  const v6 = req.ipv6 ? defaultRouteOf(view.routes6 ?? []) : undefined;
  const def = req.ipv4 ? v4 : v6;
  const link = def && linkOf(view, def.oif!);
  if (!link) {
    throw new InterfaceSelectionError(`there is no ${req.ipv4 ? 'IPv4' : 'IPv6'} default route; give -iface, -iface-regex, -iface-can-reach or ${req.ipv4 ? '-public-ip' : '-public-ipv6'}`);
  }
  if (req.ipv4 && v6 && v6.oif !== def.oif) {
    const other = linkOf(view, v6.oif!);
    throw new InterfaceSelectionError(`v6 default route interface ${other?.name ?? `#${v6.oif}`} must be the same with v4 default route interface ${link.name}`);
  }
  const via = def.gateway !== undefined ? ` via ${formatIp(def.gateway)}` : '';
  return complete(view, req, link, `the ${req.ipv4 ? '' : 'IPv6 '}default route${via} leaves through ${link.name}`);
}

export async function selectExternalInterface(view: NetworkView, req: SelectRequest, log: Logger): Promise<ExternalInterface> {
  log.info({ candidates: describeCandidates(view) }, 'network interfaces');
  let found: Found | undefined;
  if (req.iface.length === 0 && req.ifaceRegex.length === 0 && req.ifaceCanReach === '') {
    try {
      if (req.publicIp !== '') found = byAddress(view, req, req.publicIp, `-public-ip=${req.publicIp} is configured on it`);
      else if (req.publicIpv6 !== '') found = byAddress(view, req, req.publicIpv6, `-public-ipv6=${req.publicIpv6} is configured on it`);
      else found = byDefaultRoute(view, req);
    } catch (e) {
      throw new InterfaceSelectionError(`Failed to find any valid interface to use: ${errorText(e)} (interfaces: ${describeCandidates(view)})`);
    }
  } else {
    const attempts: Array<[string, () => Promise<Found> | Found]> = [
      ...req.iface.map((i): [string, () => Found] => [i, () => (tryParseIpv4(i) !== undefined || tryParseIpv6(i) !== undefined ? byAddress(view, req, i, `-iface=${i} is its address`) : byName(view, req, i))]),
      ...req.ifaceRegex.map((r): [string, () => Found] => [r, () => byRegex(view, req, r)]),
      ...(req.ifaceCanReach !== '' ? [[req.ifaceCanReach, () => byCanReach(view, req, req.ifaceCanReach)] as [string, () => Promise<Found>]] : []),
    ];
    for (const [what, attempt] of attempts) {
      try {
        found = await attempt();
        break;
      } catch (e) {
        log.warn({ match: what, err: errorText(e) }, `Could not find valid interface matching ${what}: ${errorText(e)}`);
      }
    }
    if (!found) {
      throw new InterfaceSelectionError(`Failed to find interface to use that matches the interfaces and/or regexes provided (interfaces: ${describeCandidates(view)})`);
    }
  }
  const { link } = found;
  if (!link.mtu) throw new InterfaceSelectionError(`failed to determine MTU for ${link.name} interface`);

  let extAddr = found.addr4;
  if (req.publicIp !== '') {
    const p = tryParseIpv4(req.publicIp);
    if (p === undefined) throw new InterfaceSelectionError(`invalid public IP address: ${req.publicIp}`);
    extAddr = p;
  } else if (found.addr4 !== undefined) {
    log.info({}, `Defaulting external address to interface address (${formatIpv4(found.addr4)})`);
  }
  let extAddr6 = found.addr6;
  if (req.publicIpv6 !== '') {
    const p = tryParseIpv6(req.publicIpv6);
    if (p === undefined) throw new InterfaceSelectionError(`invalid public IPv6 address: ${req.publicIpv6}`);
    extAddr6 = p;
  }
  const result: ExternalInterface = {
    name: link.name,
    index: link.index,
    mtu: link.mtu,
    ifaceAddr: found.addr4,
    ifaceAddr6: found.addr6,
    extAddr,
    extAddr6,
  };
  log.info(
    {
      iface: link.name,
      address: found.addr4 !== undefined ? formatIpv4(found.addr4) : undefined,
      address6: found.addr6 !== undefined ? formatIpv6(found.addr6) : undefined,
      publicIp: extAddr !== undefined ? formatIpv4(extAddr) : undefined,
      mtu: link.mtu,
      reason: found.why,
    },
    `Using interface with name ${link.name} and address ${found.addr4 !== undefined ? formatIpv4(found.addr4) : formatIpv6(found.addr6!)} (${found.why})`,
  );
  return result;
}

/** A NetworkView of the current network namespace. */
export async function readNetworkView(nl: RtNetlink): Promise<NetworkView> {
  const [links, addresses, routes, routes6] = await Promise.all([nl.listLinks(), nl.listDetailedAddresses(), nl.listRoutes(), nl.listRoutes6()]);
  return {
    links,
    addresses,
    routes,
    routes6,
    routeGet: async (dst) => {
      const r = await nl.routeGet(dst);
      return { oif: r.oif, prefsrc: r.prefsrc };
    },
  };
}
