/**
 * Our rtnetlink adapter: the only module that talks to the `netlink`
 * package (pinned 0.3.0). It exposes the few operations flannel-ts needs,
 * with plain types and typed errors, and hides that package's quirks:
 *  - errors carry no errno, only "Request rejected: EEXIST" text: parsed here;
 *  - RTNH_F_ONLINK is not a named route flag: sent as {__unknown: 4};
 *  - vxlan link info needs a cast (added with the vxlan backend).
 *
 * Addresses are IPv4 host-order numbers or IPv6 bigints (src/util/ip.ts);
 * routes, neighbours, FDB entries and addresses exist for both families.
 */
import type { EventEmitter } from 'node:events';
import { createRtNetlink, type RtNetlinkSocket, rt } from 'netlink';
import { formatIpv4, ipv4FromBytes, ipv4ToBytes, Ipv4Net } from '../util/ipv4';
import { familyOf, formatIp, ipFromBytes, ipToBytes, type IpAddr, type IpFamily, type IpNet } from '../util/ip';
import { formatIpv6, Ipv6Net } from '../util/ipv6';
import { SerialQueue } from '../util/serial';
import { decodeIptunLinkInfo, decodeVxlanLinkInfo, encodeIpipLinkInfo, encodeLinkInfoKind, encodeVxlanLinkInfo, type IptunInfo, linkKind, type VxlanInfo } from './nlattr';
import { NamedError, errorText } from '../util/errors';

/** NLM_F_* request flags (linux/netlink.h). */
const NLM_F_REPLACE = 0x100;
const NLM_F_EXCL = 0x200;
const NLM_F_CREATE = 0x400;

const AF_INET = 2;
const AF_INET6 = 10;
/** PF_BRIDGE: bridge FDB entries are neighbour messages of this family. */
const AF_BRIDGE = 7;

/** rtm_table RT_TABLE_MAIN (linux/rtnetlink.h). */
export const RT_TABLE_MAIN = 254;
/** rtm_protocol RTPROT_KERNEL: routes the kernel adds itself (linux/rtnetlink.h). */
export const RTPROT_KERNEL = 2;
/** rtm_protocol RTPROT_BOOT: what upstream's netlink library sets by default (docs/compatibility.md §5.2 "proto boot"). */
export const RTPROT_BOOT = 3;
/**
 * The rtm_protocol of every route flannel-ts adds (`ip route` shows `proto
 * 157`), instead of upstream's `proto boot`: a documented deviation that
 * nothing a peer sees depends on. It makes our routes recognisable, so
 * stale ones can be removed at start and `flanneld cleanup` finds them.
 * 157 is unassigned in linux/rtnetlink.h and iproute2's rt_protos (which
 * reserve up to 99 and 186-192 for routing daemons).
 */
export const RTPROT_FLANNEL_TS = 157;
/** rtm_flags RTNH_F_ONLINK (linux/rtnetlink.h). */
const RTNH_F_ONLINK = 4;

/** Per-request timeout, so a wedged netlink socket cannot hang a control loop. */
const REQUEST_TIMEOUT_MS = 5000;

/** A netlink request the kernel rejected, or that timed out. */
export class NetlinkError extends NamedError {
  constructor(
    /** What we asked, e.g. "add route 10.5.0.0/16 dev flannel0". */
    readonly op: string,
    /** The errno name ("EEXIST", "ENETUNREACH", ...), or "ETIMEDOUT" / "EUNKNOWN". */
    readonly code: string,
    options?: { cause?: unknown },
  ) {
    const cause = options?.cause;
    const detail = code === 'EUNKNOWN' && cause instanceof Error ? ` (${cause.message})` : '';
    super(`${op}: ${code}${detail}`, options);
  }
}

export function isNetlinkError(e: unknown, code?: string): e is NetlinkError {
  return e instanceof NetlinkError && (code === undefined || e.code === code);
}

function errorCode(e: unknown): string {
  const message = errorText(e);
  const m = /Request rejected: ([A-Z0-9]+)/.exec(message);
  if (m) return m[1]!;
  if (/timed? ?out/i.test(message)) return 'ETIMEDOUT';
  return 'EUNKNOWN';
}

export interface LinkInfo {
  index: number;
  name: string;
  mtu: number;
  up: boolean;
  /** ARPHRD_* type (65534 = ARPHRD_NONE for a TUN). */
  type: number;
  txQueueLen: number | undefined;
}

/** A link with the details the vxlan backend compares (docs/compatibility.md §6.1). */
export interface LinkDetails extends LinkInfo {
  /** Hardware address as lower-case "aa:bb:cc:dd:ee:ff" (undefined for a TUN). */
  mac: string | undefined;
  /** IFLA_INFO_KIND: "vxlan", "veth", "tun", ... */
  kind: string | undefined;
  vxlan: VxlanInfo | undefined;
  /** An ipip link's settings (undefined for other kinds). */
  iptun?: IptunInfo;
}

export interface NeighborEntry<A extends IpAddr = number> {
  ifindex: number;
  /** The neighbour's address (ARP or NDP entry), or an FDB entry's remote (NDA_DST). */
  ip: A | undefined;
  mac: string | undefined;
  permanent: boolean;
  self: boolean;
}

export function formatMac(b: Uint8Array): string {
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

export function parseMac(s: string): Buffer {
  const parts = s.split(':');
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{2}$/.test(p))) throw new RangeError(`not a MAC address: ${s}`);
  return Buffer.from(parts.map((p) => parseInt(p, 16)));
}


export interface AddressInfo {
  index: number;
  address: number;
  prefixLen: number;
}

/** An address of either family with the flags interface selection sorts by (docs/compatibility.md §8.4). */
export interface DetailedAddress {
  index: number;
  family: 4 | 6;
  /** IPv4 as a number, IPv6 as a bigint. */
  address: number | bigint;
  prefixLen: number;
  /** rtm scope: 0 universe, 253 link, 254 host. */
  scope: number;
  permanent: boolean;
  /** IFA_F_TEMPORARY (the same bit as IFA_F_SECONDARY for IPv4). */
  temporary: boolean;
  deprecated: boolean;
  tentative: boolean;
}

export function formatAddress(a: DetailedAddress): string {
  return a.family === 4 ? formatIpv4(a.address as number) : formatIpv6(a.address as bigint);
}

function bytesToBigint(b: Uint8Array): bigint {
  let v = 0n;
  for (const x of b) v = (v << 8n) | BigInt(x);
  return v;
}

export type RouteScopeName = 'universe' | 'site' | 'link' | 'host' | 'nowhere';
export type RouteTypeName = 'unicast' | 'local' | 'broadcast' | 'blackhole' | 'unreachable' | 'prohibit' | 'other';

/** The address type of a network type: number for IPv4, bigint for IPv6. */
export type AddrOf<N extends IpNet> = N extends Ipv6Net ? bigint : number;

export interface RouteSpec<N extends IpNet = IpNet> {
  dst: N;
  gateway?: AddrOf<N>;
  /** Output interface index. */
  oif?: number;
  table?: number;
  protocol?: number;
  scope?: RouteScopeName;
  type?: RouteTypeName;
  onlink?: boolean;
  /** RTA_PRIORITY, the route's metric (default 0). */
  priority?: number;
}

export interface RouteInfo<N extends IpNet = Ipv4Net> {
  dst: N;
  gateway: AddrOf<N> | undefined;
  oif: number | undefined;
  table: number;
  protocol: number;
  scope: RouteScopeName;
  type: RouteTypeName;
  onlink: boolean;
  priority: number;
}

const SCOPES: Record<RouteScopeName, number> = { universe: 0, site: 200, link: 253, host: 254, nowhere: 255 };
const TYPES: Record<Exclude<RouteTypeName, 'other'>, number> = {
  unicast: 1,
  local: 2,
  broadcast: 3,
  blackhole: 6,
  unreachable: 7,
  prohibit: 8,
};

function scopeName(v: unknown): RouteScopeName {
  const n = typeof v === 'string' ? (rt.RouteScope as unknown as Record<string, number>)[v] : v;
  const hit = (Object.keys(SCOPES) as RouteScopeName[]).find((k) => SCOPES[k] === n);
  return hit ?? 'universe';
}

function typeName(v: unknown): RouteTypeName {
  const n = typeof v === 'string' ? (rt.RouteType as unknown as Record<string, number>)[v] : v;
  const hit = (Object.keys(TYPES) as Array<Exclude<RouteTypeName, 'other'>>).find((k) => TYPES[k] === n);
  return hit ?? 'other';
}

function protocolNumber(v: unknown): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'string') return (rt.RouteProtocol as unknown as Record<string, number>)[v] ?? 0;
  return 0;
}

/** The plain fields of a link message (index, name, MTU, up, type, queue length). */
function linkInfoOf(m: rt.LinkMessage): LinkInfo {
  return {
    index: m.data.index ?? 0,
    name: m.attrs.ifname ?? '',
    mtu: m.attrs.mtu ?? 0,
    up: m.data.flags?.up === true,
    type: typeof m.data.type === 'number' ? m.data.type : Number((rt.LinkType as unknown as Record<string, number>)[m.data.type ?? ''] ?? 0),
    txQueueLen: m.attrs.txqlen,
  };
}

export function describeRoute(r: RouteSpec, linkName?: string): string {
  let s = r.type && r.type !== 'unicast' ? `${r.type} ${r.dst.toString()}` : r.dst.toString();
  if (r.gateway !== undefined) s += ` via ${formatIp(r.gateway)}`;
  if (linkName !== undefined) s += ` dev ${linkName}`;
  else if (r.oif !== undefined) s += ` dev #${r.oif}`;
  if (r.onlink) s += ' onlink';
  return s;
}

/**
 * One rtnetlink socket in the network namespace of the process. Requests are
 * serialized by the kernel per socket; each has a timeout.
 */
export class RtNetlink {
  /** Requests run one at a time: a netlink socket serves one dump at a time (EBUSY otherwise). */
  private readonly queue = new SerialQueue();

  /** Receive errors of the socket (requests fail on their own with a timeout); kept for diagnostics. */
  lastSocketError: string | undefined;

  private constructor(private readonly sock: RtNetlinkSocket) {
    // Without a listener, an 'error' re-emitted by the wrapper throws inside
    // the netlink addon's callback and aborts the process.
    // (netlink@0.3.0's types do not declare the event.)
    (sock as unknown as EventEmitter).on('error', (e: Error) => {
      this.lastSocketError = e.message;
    });
  }

  static open(): RtNetlink {
    return new RtNetlink(createRtNetlink());
  }

  close(): void {
    this.sock.socket.close();
  }

  private call<T>(op: string, f: () => Promise<T>): Promise<T> {
    return this.queue.run(async () => {
      try {
        return await f();
      } catch (e) {
        throw new NetlinkError(op, errorCode(e), { cause: e });
      }
    });
  }

  private static opts(flags = 0): { flags: number; timeout: number } {
    return { flags, timeout: REQUEST_TIMEOUT_MS };
  }

  // ------------------------------------------------------------------ links

  async listLinks(): Promise<LinkInfo[]> {
    const msgs = await this.call('list links', () => this.sock.getLinks(undefined, undefined, RtNetlink.opts()));
    return msgs.map(linkInfoOf);
  }

  /** The link named `name`, or undefined when there is none. */
  async getLink(name: string): Promise<LinkInfo | undefined> {
    return (await this.listLinks()).find((l) => l.name === name);
  }

  /** Links with MAC, kind and vxlan settings. */
  async listLinkDetails(): Promise<LinkDetails[]> {
    const msgs = await this.call('list links', () => this.sock.getLinks(undefined, undefined, RtNetlink.opts()));
    return msgs.map((m) => ({
      ...linkInfoOf(m),
      mac: m.attrs.address && m.attrs.address.length === 6 ? formatMac(m.attrs.address) : undefined,
      kind: linkKind(m.attrs.linkinfo),
      vxlan: decodeVxlanLinkInfo(m.attrs.linkinfo),
      iptun: decodeIptunLinkInfo(m.attrs.linkinfo),
    }));
  }

  async getLinkDetails(name: string): Promise<LinkDetails | undefined> {
    return (await this.listLinkDetails()).find((l) => l.name === name);
  }

  /** Creates a vxlan device (EEXIST when the name is taken). */
  async createVxlan(spec: { name: string; mac: string; mtu: number } & Pick<VxlanInfo, 'vni' | 'link' | 'local' | 'port' | 'learning' | 'gbp'>): Promise<void> {
    // The package types IFLA_LINKINFO as a raw buffer; we encode its nest (src/routing/nlattr.ts).
    const attrs = { ifname: spec.name, mtu: spec.mtu, address: parseMac(spec.mac), linkinfo: encodeVxlanLinkInfo(spec) };
    await this.call(`create vxlan device ${spec.name}`, () => this.sock.newLink({}, attrs, RtNetlink.opts(NLM_F_CREATE | NLM_F_EXCL)));
  }

  /** Creates an ipip device with `local` set (EEXIST when the name is taken; EOPNOTSUPP without the ipip module). */
  async createIpip(spec: { name: string; local: number; mtu: number }): Promise<void> {
    const attrs = { ifname: spec.name, mtu: spec.mtu, linkinfo: encodeIpipLinkInfo(spec.local) };
    await this.call(`create ipip device ${spec.name}`, () => this.sock.newLink({}, attrs, RtNetlink.opts(NLM_F_CREATE | NLM_F_EXCL)));
  }

  /**
   * Creates a link of a kind that takes no options (EEXIST when the name is
   * taken; EOPNOTSUPP when the kernel has no such link type, as `ip link add
   * ... type wireguard` answers "Unknown device type" without the module).
   */
  async createLinkOfKind(spec: { name: string; kind: string; mtu: number }): Promise<void> {
    const attrs = { ifname: spec.name, mtu: spec.mtu, linkinfo: encodeLinkInfoKind(spec.kind) };
    await this.call(`create ${spec.kind} device ${spec.name}`, () => this.sock.newLink({}, attrs, RtNetlink.opts(NLM_F_CREATE | NLM_F_EXCL)));
  }

  async deleteLink(index: number): Promise<void> {
    await this.call(`delete link #${index}`, () => this.sock.delLink({ index }, {}, RtNetlink.opts()));
  }

  async setLinkMtu(index: number, mtu: number): Promise<void> {
    await this.call(`set mtu ${mtu} on link #${index}`, () =>
      this.sock.setLink({ index }, { mtu }, RtNetlink.opts()),
    );
  }

  async setLinkUp(index: number): Promise<void> {
    await this.call(`set link #${index} up`, () =>
      this.sock.setLink({ index, flags: { up: true }, change: { up: true } }, {}, RtNetlink.opts()),
    );
  }

  async setLinkMac(index: number, mac: string): Promise<void> {
    await this.call(`set address ${mac} on link #${index}`, () => this.sock.setLink({ index }, { address: parseMac(mac) }, RtNetlink.opts()));
  }

  async setLinkTxQueueLen(index: number, txqlen: number): Promise<void> {
    await this.call(`set txqueuelen ${txqlen} on link #${index}`, () =>
      this.sock.setLink({ index }, { txqlen }, RtNetlink.opts()),
    );
  }

  // -------------------------------------------------------------- addresses

  /** IPv4 addresses, of one link or of all. */
  async listAddresses(index?: number): Promise<AddressInfo[]> {
    const msgs = await this.call('list addresses', () =>
      this.sock.getAddresses({ family: AF_INET }, undefined, RtNetlink.opts()),
    );
    const out: AddressInfo[] = [];
    for (const m of msgs) {
      if (m.data.family !== AF_INET) continue;
      const local = m.attrs.local ?? m.attrs.address;
      if (!local || local.length !== 4) continue;
      const entry = { index: m.data.index ?? 0, address: ipv4FromBytes(local), prefixLen: m.data.prefixlen ?? 32 };
      if (index === undefined || entry.index === index) out.push(entry);
    }
    return out;
  }

  /** IPv6 addresses of one link or of all (any scope). */
  async listAddresses6(index?: number): Promise<Array<{ index: number; address: bigint; prefixLen: number }>> {
    return (await this.listDetailedAddresses())
      .filter((a) => a.family === 6 && (index === undefined || a.index === index))
      .map((a) => ({ index: a.index, address: a.address as bigint, prefixLen: a.prefixLen }));
  }

  /** Adds address/prefixLen (either family) to a link; EEXIST when it is already there. */
  async addAddress(index: number, address: IpAddr, prefixLen: number): Promise<void> {
    const bytes = ipToBytes(address);
    const family = familyOf(address) === 4 ? AF_INET : AF_INET6;
    // IPv6 takes IFA_ADDRESS only (IFA_LOCAL is an IPv4 point-to-point notion).
    const attrs = family === AF_INET ? { local: bytes, address: bytes } : { address: bytes };
    await this.call(`add address ${formatIp(address)}/${prefixLen} to link #${index}`, () =>
      this.sock.newAddress({ family, prefixlen: prefixLen, index }, attrs, RtNetlink.opts(NLM_F_CREATE | NLM_F_EXCL)),
    );
  }

  /** Addresses of both families with their flags, in kernel order. */
  async listDetailedAddresses(): Promise<DetailedAddress[]> {
    const msgs = await this.call('list addresses', () => this.sock.getAddresses(undefined, undefined, RtNetlink.opts()));
    const out: DetailedAddress[] = [];
    for (const m of msgs) {
      const family = m.data.family === AF_INET ? 4 : m.data.family === AF_INET6 ? 6 : undefined;
      const raw = family === 4 ? (m.attrs.local ?? m.attrs.address) : m.attrs.address;
      if (family === undefined || !raw || raw.length !== (family === 4 ? 4 : 16)) continue;
      const flags = { ...(m.data.flags ?? {}), ...(m.attrs.flags ?? {}) } as Record<string, boolean | undefined>;
      out.push({
        index: m.data.index ?? 0,
        family,
        address: family === 4 ? ipv4FromBytes(raw) : bytesToBigint(raw),
        prefixLen: m.data.prefixlen ?? 0,
        scope: typeof m.data.scope === 'number' ? m.data.scope : 0,
        permanent: flags['permanent'] === true,
        temporary: flags['secondary'] === true,
        deprecated: flags['deprecated'] === true,
        tentative: flags['tentative'] === true,
      });
    }
    return out;
  }

  /** The route the kernel would use to reach `dst` (`ip route get`): output interface, preferred source, gateway. */
  async routeGet(dst: IpAddr): Promise<{ oif: number | undefined; prefsrc: IpAddr | undefined; gateway: IpAddr | undefined }> {
    const v4 = familyOf(dst) === 4;
    const msgs = await this.call(`route get ${formatIp(dst)}`, () =>
      this.sock.getRoute({ family: v4 ? AF_INET : AF_INET6, dstLen: v4 ? 32 : 128 }, { dst: ipToBytes(dst) }, RtNetlink.opts()),
    );
    const m = msgs[0];
    return { oif: m?.attrs.oif, prefsrc: ipFromBytes(m?.attrs.prefsrc), gateway: ipFromBytes(m?.attrs.gateway) };
  }

  async deleteAddress(index: number, address: IpAddr, prefixLen: number): Promise<void> {
    const bytes = ipToBytes(address);
    const family = familyOf(address) === 4 ? AF_INET : AF_INET6;
    const attrs = family === AF_INET ? { local: bytes, address: bytes } : { address: bytes };
    await this.call(`delete address ${formatIp(address)}/${prefixLen} from link #${index}`, () =>
      this.sock.delAddress({ family, prefixlen: prefixLen, index }, attrs, RtNetlink.opts()),
    );
  }

  // ------------------------------------------------------ neighbours, FDB

  private static neighborOf(m: { data: rt.Neighbor; attrs: rt.NeighborAttrs }): NeighborEntry<IpAddr> {
    return {
      ifindex: m.data.ifindex ?? 0,
      ip: ipFromBytes(m.attrs.dst),
      mac: m.attrs.lladdr && m.attrs.lladdr.length === 6 ? formatMac(m.attrs.lladdr) : undefined,
      permanent: m.data.state?.permanent === true,
      self: m.data.flags?.self === true,
    };
  }

  private async neighbors(ifindex: number, family: number): Promise<Array<NeighborEntry<IpAddr>>> {
    const msgs = await this.call('list neighbours', () => this.sock.getNeighbors({ family }, undefined, RtNetlink.opts()));
    return msgs.filter((m) => m.data.ifindex === ifindex && m.data.family === family).map(RtNetlink.neighborOf);
  }

  /** IPv4 neighbour (ARP) entries of a link. */
  async listNeighbors(ifindex: number): Promise<NeighborEntry[]> {
    return (await this.neighbors(ifindex, AF_INET)) as NeighborEntry[];
  }

  /** IPv6 neighbour (NDP) entries of a link. */
  async listNeighbors6(ifindex: number): Promise<Array<NeighborEntry<bigint>>> {
    return (await this.neighbors(ifindex, AF_INET6)) as Array<NeighborEntry<bigint>>;
  }

  /** `ip neigh replace <ip> lladdr <mac> dev <ifindex> nud permanent` (either family). */
  async replaceNeighbor(ifindex: number, ip: IpAddr, mac: string): Promise<void> {
    await this.call(`replace neighbour ${formatIp(ip)} lladdr ${mac} on link #${ifindex}`, () =>
      this.sock.newNeighbor(
        { family: familyOf(ip) === 4 ? AF_INET : AF_INET6, ifindex, state: { permanent: true } },
        { dst: ipToBytes(ip), lladdr: parseMac(mac) },
        RtNetlink.opts(NLM_F_CREATE | NLM_F_REPLACE),
      ),
    );
  }

  async deleteNeighbor(ifindex: number, ip: IpAddr): Promise<void> {
    await this.call(`delete neighbour ${formatIp(ip)} on link #${ifindex}`, () =>
      this.sock.delNeighbor({ family: familyOf(ip) === 4 ? AF_INET : AF_INET6, ifindex }, { dst: ipToBytes(ip) }, RtNetlink.opts()),
    );
  }

  /** Bridge FDB entries of a link (`bridge fdb show dev`); a remote of either family. */
  async listFdb(ifindex: number): Promise<Array<NeighborEntry<IpAddr>>> {
    return this.neighbors(ifindex, AF_BRIDGE);
  }

  /** `bridge fdb replace <mac> dev <ifindex> dst <ip> self permanent`. */
  async replaceFdb(ifindex: number, mac: string, dst: IpAddr): Promise<void> {
    await this.call(`replace fdb ${mac} dst ${formatIp(dst)} on link #${ifindex}`, () =>
      this.sock.newNeighbor(
        { family: AF_BRIDGE, ifindex, state: { permanent: true }, flags: { self: true } },
        { lladdr: parseMac(mac), dst: ipToBytes(dst) },
        RtNetlink.opts(NLM_F_CREATE | NLM_F_REPLACE),
      ),
    );
  }

  async deleteFdb(ifindex: number, mac: string, dst: IpAddr): Promise<void> {
    await this.call(`delete fdb ${mac} dst ${formatIp(dst)} on link #${ifindex}`, () =>
      this.sock.delNeighbor({ family: AF_BRIDGE, ifindex, flags: { self: true } }, { lladdr: parseMac(mac), dst: ipToBytes(dst) }, RtNetlink.opts()),
    );
  }

  // ----------------------------------------------------------------- routes

  private async routes(family: IpFamily, table: number): Promise<Array<RouteInfo<IpNet>>> {
    const af = family === 4 ? AF_INET : AF_INET6;
    const msgs = await this.call('list routes', () => this.sock.getRoutes({ family: af }, undefined, RtNetlink.opts()));
    const out: Array<RouteInfo<IpNet>> = [];
    for (const m of msgs) {
      if (m.data.family !== af) continue;
      const t = m.attrs.table ?? m.data.table ?? 0;
      if (t !== table) continue;
      const dstLen = m.data.dstLen ?? 0;
      const dst = ipFromBytes(m.attrs.dst) ?? (family === 4 ? 0 : 0n);
      const flagBits = (m.data.flags as { __unknown?: number } | undefined)?.__unknown ?? 0;
      const gateway = ipFromBytes(m.attrs.gateway);
      out.push({
        dst: typeof dst === 'bigint' ? new Ipv6Net(dst, dstLen) : new Ipv4Net(dst, dstLen),
        gateway: gateway as never,
        oif: m.attrs.oif,
        table: t,
        protocol: protocolNumber(m.data.protocol),
        scope: scopeName(m.data.scope),
        type: typeName(m.data.type),
        onlink: (flagBits & RTNH_F_ONLINK) !== 0,
        priority: m.attrs.priority ?? 0,
      });
    }
    return out;
  }

  /** IPv4 routes of one table (default: main). */
  async listRoutes(table: number = RT_TABLE_MAIN): Promise<RouteInfo[]> {
    return (await this.routes(4, table)) as RouteInfo[];
  }

  /** IPv6 routes of one table (default: main). */
  async listRoutes6(table: number = RT_TABLE_MAIN): Promise<Array<RouteInfo<Ipv6Net>>> {
    return (await this.routes(6, table)) as Array<RouteInfo<Ipv6Net>>;
  }

  private routeMessage(r: RouteSpec): [rt.Route, rt.RouteAttrs] {
    const table = r.table ?? RT_TABLE_MAIN;
    const type = r.type && r.type !== 'other' ? TYPES[r.type] : TYPES.unicast;
    const defaultScope: RouteScopeName = r.gateway === undefined && type === TYPES.unicast ? 'link' : 'universe';
    const data: rt.Route = {
      family: familyOf(r.dst) === 4 ? AF_INET : AF_INET6,
      dstLen: r.dst.prefixLen,
      table: table < 256 ? table : 252 /* RT_TABLE_COMPAT; the real id goes in RTA_TABLE */,
      protocol: r.protocol ?? RTPROT_FLANNEL_TS,
      scope: SCOPES[r.scope ?? defaultScope],
      type,
    };
    if (r.onlink) data.flags = { __unknown: RTNH_F_ONLINK } as unknown as rt.RouteFlags;
    const attrs: rt.RouteAttrs = { dst: ipToBytes(r.dst.network), table };
    if (r.gateway !== undefined) attrs.gateway = ipToBytes(r.gateway);
    if (r.oif !== undefined) attrs.oif = r.oif;
    if (r.priority !== undefined) attrs.priority = r.priority;
    return [data, attrs];
  }

  /** Adds a route; EEXIST when one with the same key exists. */
  async addRoute(r: RouteSpec): Promise<void> {
    const [data, attrs] = this.routeMessage(r);
    await this.call(`add route ${describeRoute(r)}`, () =>
      this.sock.newRoute(data, attrs, RtNetlink.opts(NLM_F_CREATE | NLM_F_EXCL)),
    );
  }

  /** Adds or replaces the route with the same destination/table/metric (`ip route replace`). */
  async replaceRoute(r: RouteSpec): Promise<void> {
    const [data, attrs] = this.routeMessage(r);
    await this.call(`replace route ${describeRoute(r)}`, () =>
      this.sock.newRoute(data, attrs, RtNetlink.opts(NLM_F_CREATE | NLM_F_REPLACE)),
    );
  }

  /** Deletes the route matching `r` (fields not given match anything); ESRCH when none. */
  async deleteRoute(r: RouteSpec): Promise<void> {
    const [data, attrs] = this.routeMessage(r);
    // A delete matches on the fields given; leave scope and protocol open.
    data.scope = SCOPES.nowhere;
    delete data.protocol;
    await this.call(`delete route ${describeRoute(r)}`, () => this.sock.delRoute(data, attrs, RtNetlink.opts()));
  }
}
