/**
 * Netlink attributes (struct nlattr, linux/netlink.h) for the nests the
 * `netlink` package leaves raw: IFLA_LINKINFO with IFLA_INFO_KIND and the
 * vxlan IFLA_INFO_DATA (linux/if_link.h). Pure: encode/decode buffers.
 */
import { ipFromBytes, ipToBytes, type IpAddr } from '../util/ip';

/** NLA_ALIGNTO: attributes are padded to 4 bytes. */
const ALIGN = 4;
const NLA_F_NESTED = 1 << 15;
const NLA_TYPE_MASK = ~(NLA_F_NESTED | (1 << 14)) & 0xffff;

export interface Attr {
  type: number;
  value: Buffer;
}

export function encodeAttrs(attrs: readonly Attr[]): Buffer {
  const parts: Buffer[] = [];
  for (const a of attrs) {
    const len = 4 + a.value.length;
    const head = Buffer.alloc(4);
    head.writeUInt16LE(len, 0);
    head.writeUInt16LE(a.type, 2);
    const pad = Buffer.alloc((ALIGN - (len % ALIGN)) % ALIGN);
    parts.push(head, a.value, pad);
  }
  return Buffer.concat(parts);
}

/** Decodes a run of attributes; a truncated trailing attribute is ignored. */
export function decodeAttrs(buf: Buffer): Attr[] {
  const out: Attr[] = [];
  let off = 0;
  while (off + 4 <= buf.length) {
    const len = buf.readUInt16LE(off);
    const type = buf.readUInt16LE(off + 2) & NLA_TYPE_MASK;
    if (len < 4 || off + len > buf.length) break;
    out.push({ type, value: buf.subarray(off + 4, off + len) });
    off += Math.ceil(len / ALIGN) * ALIGN;
  }
  return out;
}

export const u8 = (v: number): Buffer => Buffer.from([v & 0xff]);
export const u32 = (v: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return b;
};
export const be16 = (v: number): Buffer => {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(v);
  return b;
};
export const cstring = (s: string): Buffer => Buffer.from(s + '\0');
export const flag = (): Buffer => Buffer.alloc(0);

// linux/if_link.h
export const IFLA_INFO_KIND = 1;
export const IFLA_INFO_DATA = 2;
export const IFLA_VXLAN_ID = 1;
export const IFLA_VXLAN_GROUP = 2;
export const IFLA_VXLAN_LINK = 3;
export const IFLA_VXLAN_LOCAL = 4;
export const IFLA_VXLAN_TTL = 5;
export const IFLA_VXLAN_TOS = 6;
export const IFLA_VXLAN_LEARNING = 7;
export const IFLA_VXLAN_PROXY = 11;
export const IFLA_VXLAN_RSC = 12;
export const IFLA_VXLAN_L2MISS = 13;
export const IFLA_VXLAN_L3MISS = 14;
export const IFLA_VXLAN_PORT = 15;
export const IFLA_VXLAN_GROUP6 = 16;
export const IFLA_VXLAN_LOCAL6 = 17;
export const IFLA_VXLAN_GBP = 23;

export interface VxlanInfo {
  vni: number;
  /** Underlay interface index (0 = none). */
  link: number;
  /** Local address: IPv4 (host order) or IPv6 (IFLA_VXLAN_LOCAL6); 0 = none. */
  local: IpAddr;
  /** Multicast group / remote, IPv4 or IPv6; 0 = none. */
  group: IpAddr;
  /** Destination UDP port (0 = the kernel default, 8472). */
  port: number;
  learning: boolean;
  gbp: boolean;
  l2miss: boolean;
  l3miss: boolean;
  proxy: boolean;
  rsc: boolean;
  ttl: number;
  tos: number;
}

/**
 * The IFLA_LINKINFO payload creating a vxlan device the way upstream's
 * netlink library does for flannel (docs/compatibility.md §6.1): VNI, underlay, local,
 * TTL 0, TOS 0, learning as asked, proxy/rsc/l2miss/l3miss off, the port
 * only when set (else the kernel's 8472), GBP only when set.
 */
export function encodeVxlanLinkInfo(v: Pick<VxlanInfo, 'vni' | 'link' | 'local' | 'port' | 'learning' | 'gbp'>): Buffer {
  const data: Attr[] = [
    { type: IFLA_VXLAN_ID, value: u32(v.vni) },
    ...(v.link > 0 ? [{ type: IFLA_VXLAN_LINK, value: u32(v.link) }] : []),
    ...(v.local !== 0 && v.local !== 0n ? [{ type: typeof v.local === 'bigint' ? IFLA_VXLAN_LOCAL6 : IFLA_VXLAN_LOCAL, value: ipToBytes(v.local) }] : []),
    { type: IFLA_VXLAN_TTL, value: u8(0) },
    { type: IFLA_VXLAN_TOS, value: u8(0) },
    { type: IFLA_VXLAN_LEARNING, value: u8(v.learning ? 1 : 0) },
    { type: IFLA_VXLAN_PROXY, value: u8(0) },
    { type: IFLA_VXLAN_RSC, value: u8(0) },
    { type: IFLA_VXLAN_L2MISS, value: u8(0) },
    { type: IFLA_VXLAN_L3MISS, value: u8(0) },
    ...(v.port > 0 ? [{ type: IFLA_VXLAN_PORT, value: be16(v.port) }] : []),
    ...(v.gbp ? [{ type: IFLA_VXLAN_GBP, value: flag() }] : []),
  ];
  return encodeAttrs([
    { type: IFLA_INFO_KIND, value: cstring('vxlan') },
    { type: IFLA_INFO_DATA | NLA_F_NESTED, value: encodeAttrs(data) },
  ]);
}

/**
 * IFLA_LINKINFO for a link type that needs no IFLA_INFO_DATA, e.g.
 * "wireguard" (drivers/net/wireguard/device.c registers the kind with no
 * options; its settings go over generic netlink afterwards).
 */
export function encodeLinkInfoKind(kind: string): Buffer {
  return encodeAttrs([{ type: IFLA_INFO_KIND, value: cstring(kind) }]);
}

/** The kind of a link ("vxlan", "veth", "tun", ...) from its IFLA_LINKINFO, or undefined. */
export function linkKind(linkinfo: Buffer | undefined): string | undefined {
  if (!linkinfo) return undefined;
  const kind = decodeAttrs(linkinfo).find((a) => a.type === IFLA_INFO_KIND);
  return kind ? kind.value.toString('latin1').replace(/\0+$/, '') : undefined;
}

/** The vxlan settings from a link's IFLA_LINKINFO, or undefined when it is not vxlan. */
export function decodeVxlanLinkInfo(linkinfo: Buffer | undefined): VxlanInfo | undefined {
  if (linkKind(linkinfo) !== 'vxlan') return undefined;
  const data = decodeAttrs(linkinfo!).find((a) => a.type === IFLA_INFO_DATA);
  const v: VxlanInfo = { vni: 0, link: 0, local: 0, group: 0, port: 0, learning: false, gbp: false, l2miss: false, l3miss: false, proxy: false, rsc: false, ttl: 0, tos: 0 };
  for (const a of data ? decodeAttrs(data.value) : []) {
    switch (a.type) {
      case IFLA_VXLAN_ID:
        v.vni = a.value.readUInt32LE(0);
        break;
      case IFLA_VXLAN_LINK:
        v.link = a.value.readUInt32LE(0);
        break;
      case IFLA_VXLAN_LOCAL:
      case IFLA_VXLAN_LOCAL6:
        v.local = ipFromBytes(a.value) ?? 0;
        break;
      case IFLA_VXLAN_GROUP:
      case IFLA_VXLAN_GROUP6:
        v.group = ipFromBytes(a.value) ?? 0;
        break;
      case IFLA_VXLAN_PORT:
        v.port = a.value.readUInt16BE(0);
        break;
      case IFLA_VXLAN_LEARNING:
        v.learning = a.value[0] !== 0;
        break;
      case IFLA_VXLAN_GBP:
        v.gbp = true;
        break;
      case IFLA_VXLAN_L2MISS:
        v.l2miss = a.value[0] !== 0;
        break;
      case IFLA_VXLAN_L3MISS:
        v.l3miss = a.value[0] !== 0;
        break;
      case IFLA_VXLAN_PROXY:
        v.proxy = a.value[0] !== 0;
        break;
      case IFLA_VXLAN_RSC:
        v.rsc = a.value[0] !== 0;
        break;
      case IFLA_VXLAN_TTL:
        v.ttl = a.value[0] ?? 0;
        break;
      case IFLA_VXLAN_TOS:
        v.tos = a.value[0] ?? 0;
        break;
    }
  }
  return v;
}

// linux/if_tunnel.h: the ipip link's IFLA_INFO_DATA.
export const IFLA_IPTUN_LINK = 1;
export const IFLA_IPTUN_LOCAL = 2;
export const IFLA_IPTUN_REMOTE = 3;
export const IFLA_IPTUN_TTL = 4;
export const IFLA_IPTUN_TOS = 5;
export const IFLA_IPTUN_PROTO = 9;
export const IFLA_IPTUN_PMTUDISC = 10;
export const IFLA_IPTUN_ENCAP_TYPE = 15;
export const IFLA_IPTUN_ENCAP_FLAGS = 16;
export const IFLA_IPTUN_ENCAP_SPORT = 17;
export const IFLA_IPTUN_ENCAP_DPORT = 18;

/** An ipip link's settings: local and remote (0 = any), ttl (0 = inherit), path MTU discovery. */
export interface IptunInfo {
  local: number;
  remote: number;
  ttl: number;
  pmtudisc: boolean;
}

const u16 = (v: number): Buffer => {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(v);
  return b;
};

/**
 * IFLA_LINKINFO for an ipip device with `local` set and no remote, with the
 * attributes upstream's netlink library (vishvananda/netlink, addIptunAttrs)
 * sends for flannel.ipip: PMTUDISC, TTL and TOS 0, no encapsulation, PROTO 0.
 */
export function encodeIpipLinkInfo(local: number): Buffer {
  const data: Attr[] = [
    { type: IFLA_IPTUN_LOCAL, value: ipToBytes(local) },
    { type: IFLA_IPTUN_PMTUDISC, value: u8(0) },
    { type: IFLA_IPTUN_TTL, value: u8(0) },
    { type: IFLA_IPTUN_TOS, value: u8(0) },
    { type: IFLA_IPTUN_ENCAP_TYPE, value: u16(0) },
    { type: IFLA_IPTUN_ENCAP_FLAGS, value: u16(0) },
    { type: IFLA_IPTUN_ENCAP_SPORT, value: be16(0) },
    { type: IFLA_IPTUN_ENCAP_DPORT, value: be16(0) },
    { type: IFLA_IPTUN_PROTO, value: u8(0) },
  ];
  return encodeAttrs([
    { type: IFLA_INFO_KIND, value: cstring('ipip') },
    { type: IFLA_INFO_DATA | NLA_F_NESTED, value: encodeAttrs(data) },
  ]);
}

/** The ipip settings from a link's IFLA_LINKINFO, or undefined when it is not ipip. */
export function decodeIptunLinkInfo(linkinfo: Buffer | undefined): IptunInfo | undefined {
  if (linkKind(linkinfo) !== 'ipip') return undefined;
  const data = decodeAttrs(linkinfo!).find((a) => a.type === IFLA_INFO_DATA);
  const v: IptunInfo = { local: 0, remote: 0, ttl: 0, pmtudisc: true };
  for (const a of data ? decodeAttrs(data.value) : []) {
    if (a.type === IFLA_IPTUN_LOCAL) v.local = (ipFromBytes(a.value) as number | undefined) ?? 0;
    else if (a.type === IFLA_IPTUN_REMOTE) v.remote = (ipFromBytes(a.value) as number | undefined) ?? 0;
    else if (a.type === IFLA_IPTUN_TTL) v.ttl = a.value[0] ?? 0;
    else if (a.type === IFLA_IPTUN_PMTUDISC) v.pmtudisc = (a.value[0] ?? 0) !== 0;
  }
  return v;
}
