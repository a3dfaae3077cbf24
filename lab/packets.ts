/**
 * Hand-built IPv4 packets and independent checks of their fields, for wire
 * conformance tests. Shares no code with the native datapath.
 */
import { formatIpv4, parseIpv4 } from '../src/util/ipv4';
import { tryParseIpv6 } from '../src/util/ipv6';

/** RFC 1071 checksum over big-endian 16-bit words. */
export function checksum(buf: Uint8Array, start = 0, end = buf.length): number {
  let sum = 0;
  for (let i = start; i < end; i += 2) {
    sum += (buf[i]! << 8) | (i + 1 < end ? buf[i + 1]! : 0);
  }
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

export interface Ipv4Fields {
  version: number;
  headerLen: number;
  tos: number;
  totalLen: number;
  id: number;
  flagsFrag: number;
  ttl: number;
  protocol: number;
  checksum: number;
  src: string;
  dst: string;
}

export function ipv4Fields(p: Buffer): Ipv4Fields {
  return {
    version: p[0]! >> 4,
    headerLen: (p[0]! & 0x0f) * 4,
    tos: p[1]!,
    totalLen: p.readUInt16BE(2),
    id: p.readUInt16BE(4),
    flagsFrag: p.readUInt16BE(6),
    ttl: p[8]!,
    protocol: p[9]!,
    checksum: p.readUInt16BE(10),
    src: formatIpv4(p.readUInt32BE(12)),
    dst: formatIpv4(p.readUInt32BE(16)),
  };
}

export function ipv4HeaderChecksumValid(p: Buffer): boolean {
  return checksum(p, 0, (p[0]! & 0x0f) * 4) === 0;
}

export interface UdpPacketSpec {
  src: string;
  dst: string;
  srcPort: number;
  dstPort: number;
  payload: Buffer;
  ttl?: number;
  id?: number;
  tos?: number;
}

/** An IPv4/UDP packet with valid IP and UDP checksums. */
export function buildUdpPacket(s: UdpPacketSpec): Buffer {
  const udpLen = 8 + s.payload.length;
  const p = Buffer.alloc(20 + udpLen);
  p[0] = 0x45;
  p[1] = s.tos ?? 0;
  p.writeUInt16BE(p.length, 2);
  p.writeUInt16BE(s.id ?? 0x4242, 4);
  p.writeUInt16BE(0x4000, 6);
  p[8] = s.ttl ?? 64;
  p[9] = 17;
  p.writeUInt32BE(parseIpv4(s.src), 12);
  p.writeUInt32BE(parseIpv4(s.dst), 16);
  p.writeUInt16BE(checksum(p, 0, 20), 10);
  p.writeUInt16BE(s.srcPort, 20);
  p.writeUInt16BE(s.dstPort, 22);
  p.writeUInt16BE(udpLen, 24);
  s.payload.copy(p, 28);
  p.writeUInt16BE(udpChecksum(p), 26);
  return p;
}

/** An IPv6/UDP packet with a valid UDP checksum (RFC 8200 §8.1 pseudo-header); `ttl` is the hop limit. */
export function buildUdp6Packet(s: UdpPacketSpec): Buffer {
  const udpLen = 8 + s.payload.length;
  const p = Buffer.alloc(40 + udpLen);
  p.writeUInt32BE(0x60000000, 0);
  p.writeUInt16BE(udpLen, 4);
  p[6] = 17;
  p[7] = s.ttl ?? 64;
  const addr = (text: string, at: number) => {
    const v = tryParseIpv6(text);
    if (v === undefined) throw new Error(`not an IPv6 address: ${text}`);
    for (let i = 0; i < 16; i++) p[at + i] = Number((v >> BigInt(8 * (15 - i))) & 0xffn);
  };
  addr(s.src, 8);
  addr(s.dst, 24);
  p.writeUInt16BE(s.srcPort, 40);
  p.writeUInt16BE(s.dstPort, 42);
  p.writeUInt16BE(udpLen, 44);
  s.payload.copy(p, 48);
  const pseudo = Buffer.alloc(40);
  p.copy(pseudo, 0, 8, 40);
  pseudo.writeUInt32BE(udpLen, 32);
  pseudo[39] = 17;
  const sum = checksum(Buffer.concat([pseudo, p.subarray(40)]));
  p.writeUInt16BE(sum === 0 ? 0xffff : sum, 46);
  return p;
}

/** The UDP checksum (RFC 768) of an IPv4/UDP packet, computed with the field as zero. */
export function udpChecksum(p: Buffer): number {
  const hl = (p[0]! & 0x0f) * 4;
  const udpLen = p.readUInt16BE(hl + 4);
  const pseudo = Buffer.alloc(12 + udpLen + (udpLen % 2));
  p.copy(pseudo, 0, 12, 20);
  pseudo[9] = 17;
  pseudo.writeUInt16BE(udpLen, 10);
  p.copy(pseudo, 12, hl, hl + udpLen);
  pseudo.writeUInt16BE(0, 12 + 6);
  const c = checksum(pseudo);
  return c === 0 ? 0xffff : c;
}

/** The packet with the TTL changed and the header checksum recomputed from scratch. */
export function withTtl(p: Buffer, ttl: number): Buffer {
  const q = Buffer.from(p);
  q[8] = ttl;
  q.writeUInt16BE(0, 10);
  q.writeUInt16BE(checksum(q, 0, (q[0]! & 0x0f) * 4), 10);
  return q;
}

/**
 * The packet with its UDP checksum completed. A capture inside the sending
 * namespace sees UDP packets before the veth's checksum offload fills the
 * checksum in (CHECKSUM_PARTIAL); the wire and the TUN see the completed one.
 */
export function withUdpChecksum(p: Buffer): Buffer {
  const q = Buffer.from(p);
  const hl = (q[0]! & 0x0f) * 4;
  q.writeUInt16BE(udpChecksum(q), hl + 6);
  return q;
}

/**
 * Whether the TCP or UDP checksum of an unfragmented IPv4 packet verifies
 * (RFC 793 / RFC 768 pseudo header); undefined for other protocols and for
 * fragments, whose L4 checksum covers bytes in other packets. A UDP
 * checksum of 0 means "none" and counts as valid.
 */
export function l4ChecksumValid(p: Buffer): boolean | undefined {
  const f = ipv4Fields(p);
  if ((f.protocol !== 6 && f.protocol !== 17) || (f.flagsFrag & 0x3fff) !== 0) return undefined;
  const l4Len = f.totalLen - f.headerLen;
  if (f.protocol === 17 && p.readUInt16BE(f.headerLen + 6) === 0) return true;
  const pseudo = Buffer.alloc(12 + l4Len + (l4Len % 2));
  p.copy(pseudo, 0, 12, 20);
  pseudo[9] = f.protocol;
  pseudo.writeUInt16BE(l4Len, 10);
  p.copy(pseudo, 12, f.headerLen, f.totalLen);
  return checksum(pseudo) === 0;
}
