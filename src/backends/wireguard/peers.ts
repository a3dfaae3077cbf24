/**
 * Leases -> the peers of each WireGuard device, as a pure function of the
 * whole set of routed leases (upstream's handleSubnetEvents in
 * pkg/backend/wireguard/wireguard_network.go does the same one event at a
 * time):
 *  - Mode separate: flannel-wg gets a peer per lease with an IPv4 part
 *    (AllowedIPs its subnet, Endpoint PublicIP:Port from BackendData),
 *    flannel-wg-v6 one per lease with an IPv6 part ([PublicIPv6]:Port from
 *    BackendV6Data);
 *  - Modes auto, ipv4, ipv6: flannel-wg gets one peer per lease with both
 *    subnets as AllowedIPs, its PublicKey from BackendV6Data when the lease
 *    has an IPv6 part, else from BackendData, and one endpoint: its IPv4 one
 *    (ipv4), its IPv6 one (ipv6), or as upstream's selectMode picks (auto);
 *  - Port 0 (older upstream versions) means the port this node listens on;
 *  - in the modes with one device, a peer's IPv6 endpoint takes the Port of
 *    its BackendData when it has one: upstream advertises ListenPortV6 in
 *    BackendV6Data though that device listens on ListenPort only
 *    (docs/compatibility.md §16);
 *  - a device has one peer per key: of two leases with one PublicKey (the
 *    lease guard lets that through only for one PublicIP, a machine's stale
 *    lease beside its new one) the newer is the peer.
 * Leases of another backend type, and leases this node cannot reach, are
 * reported with the reason, not routed.
 */
import type { Lease } from '../../lease/lease';
import { formatIpv4, isPrivateIpv4 } from '../../util/ipv4';
import { formatIpv6 } from '../../util/ipv6';
import { IPV4, IPV6 } from '../lease-family';
import { decodeWireguardBackendData, type WireguardLeaseData, type WireguardMode } from './config';
import type { WgDeviceState, WgPeerConfig } from './wg-tool';

export interface WgPlanOptions {
  mode: WireguardMode;
  /** The devices this node runs, by the family whose subnets they carry (in the one-device modes both name flannel-wg). */
  devices: { 4?: string; 6?: string };
  listenPort: number;
  listenPortV6: number;
  presharedKey: string | undefined;
  persistentKeepalive: number;
  /** This node's external addresses (auto mode prefers the IPv4 underlay when both ends can use it). */
  extAddr: number | undefined;
  extAddr6: bigint | undefined;
}

export interface RoutedLease {
  lease: Lease;
  /** The record's age in its store: of two leases with one key, the larger (newer) wins. */
  since: number;
}

/** One lease's part on one device, for the log ("Subnet added: <subnets> via <endpoint>"). */
export interface PlannedPeer extends WgPeerConfig {
  device: string;
  leaseKey: string;
  /** The lease's subnets on this device, as text. */
  subnets: string[];
}

export interface WgPlan {
  /** Peers by device name, sorted by public key (every device of the options is present). */
  devices: Map<string, PlannedPeer[]>;
  /** Leases not routed (or not routed on some device), by lease key, with the reason. */
  ignored: Map<string, string>;
}

/** upstream's IP6.IsPrivate: the unique-local block fc00::/7 (RFC 4193). */
function isUniqueLocal6(a: bigint): boolean {
  return a >> 121n === 0x7en;
}

/** upstream's selectMode: IPv4 unless the peer has a PublicIPv6 and only the IPv6 underlay looks public at both ends. */
export function selectEndpointFamily(lease: Lease, opts: Pick<WgPlanOptions, 'extAddr' | 'extAddr6'>): 4 | 6 {
  const v6 = lease.attrs.publicIpv6;
  if (v6 === undefined) return 4;
  if (!isPrivateIpv4(lease.attrs.publicIp) && opts.extAddr !== undefined) return 4;
  if (!isUniqueLocal6(v6) && opts.extAddr6 !== undefined && !isUniqueLocal6(opts.extAddr6)) return 6;
  return 4;
}

type Decoded = { ok: true; data: WireguardLeaseData } | { ok: false; reason: string };

function decodeFamily(lease: Lease, fam: typeof IPV4 | typeof IPV6): Decoded | undefined {
  if (fam.subnet(lease) === undefined) return undefined;
  return decodeWireguardBackendData(fam.backendData(lease));
}

function endpoint4(lease: Lease, port: number): string | undefined {
  return lease.attrs.publicIp === 0 ? undefined : `${formatIpv4(lease.attrs.publicIp)}:${port}`;
}

function endpoint6(lease: Lease, port: number): string | undefined {
  const a = lease.attrs.publicIpv6;
  return a === undefined ? undefined : `[${formatIpv6(a)}]:${port}`;
}

export function planWireguardPeers(leases: Iterable<[string, RoutedLease]>, opts: WgPlanOptions): WgPlan {
  const chosen = new Map<string, Map<string, { peer: PlannedPeer; since: number }>>();
  const devices = new Set([opts.devices[4], opts.devices[6]].filter((d): d is string => d !== undefined));
  for (const d of devices) chosen.set(d, new Map());
  const ignored = new Map<string, string>();
  const common = { presharedKey: opts.presharedKey, persistentKeepalive: opts.persistentKeepalive };

  const offer = (p: PlannedPeer, since: number): void => {
    const byKey = chosen.get(p.device)!;
    const held = byKey.get(p.publicKey);
    if (held && held.since > since) {
      ignored.set(p.leaseKey, `its PublicKey is also the newer lease ${held.peer.leaseKey}'s, which is the peer`);
      return;
    }
    if (held) ignored.set(held.peer.leaseKey, `its PublicKey is also the newer lease ${p.leaseKey}'s, which is the peer`);
    byKey.set(p.publicKey, { peer: p, since });
  };

  for (const [key, { lease, since }] of leases) {
    if (lease.attrs.backendType !== 'wireguard') {
      ignored.set(key, `Ignoring non-wireguard subnet: type=${lease.attrs.backendType}`);
      continue;
    }
    const v4 = decodeFamily(lease, IPV4);
    const v6 = decodeFamily(lease, IPV6);
    if (opts.mode === 'separate') {
      for (const [family, decoded, fam, port, ep] of [
        [4, v4, IPV4, opts.listenPort, endpoint4],
        [6, v6, IPV6, opts.listenPortV6, endpoint6],
      ] as const) {
        const device = opts.devices[family];
        if (!device || !decoded) continue;
        if (!decoded.ok) {
          ignored.set(key, `Ignoring lease ${key}: ${family === 6 ? 'IPv6 ' : ''}${decoded.reason}`);
          continue;
        }
        const endpoint = ep(lease, decoded.data.port || port);
        if (!endpoint) {
          ignored.set(key, `Ignoring lease ${key}: it has an IPv${family} subnet but no ${family === 6 ? 'PublicIPv6' : 'PublicIP'} to reach it at`);
          continue;
        }
        const subnet = fam.subnet(lease)!.toString();
        offer({ device, leaseKey: key, subnets: [subnet], publicKey: decoded.data.publicKey, endpoint, allowedIps: [subnet], ...common }, since);
      }
      continue;
    }
    // One device for both families.
    const device = opts.devices[4] ?? opts.devices[6]!;
    const bad = [v4, v6].find((d): d is { ok: false; reason: string } => d !== undefined && !d.ok);
    if (bad) {
      ignored.set(key, `Ignoring lease ${key}: ${bad.reason}`);
      continue;
    }
    const d4 = v4?.ok ? v4.data : undefined;
    const d6 = v6?.ok ? v6.data : undefined;
    const identity = d6 ?? d4;
    if (!identity) continue; // a lease with neither part has nothing to route
    const family = opts.mode === 'ipv4' ? 4 : opts.mode === 'ipv6' ? 6 : selectEndpointFamily(lease, opts);
    const endpoint = family === 4 ? endpoint4(lease, d4?.port || opts.listenPort) : endpoint6(lease, d4?.port || d6?.port || opts.listenPort);
    if (!endpoint) {
      ignored.set(key, `Ignoring lease ${key}: Mode ${opts.mode} dials its ${family === 6 ? 'PublicIPv6' : 'PublicIP'}, and it has none`);
      continue;
    }
    const subnets = [IPV4.subnet(lease), IPV6.subnet(lease)].filter((s) => s !== undefined).map((s) => s.toString());
    offer({ device, leaseKey: key, subnets, publicKey: identity.publicKey, endpoint, allowedIps: subnets, ...common }, since);
  }

  const out = new Map<string, PlannedPeer[]>();
  for (const [device, byKey] of chosen) {
    out.set(
      device,
      [...byKey.values()].map((c) => c.peer).sort((a, b) => (a.publicKey < b.publicKey ? -1 : a.publicKey > b.publicKey ? 1 : 0)),
    );
  }
  return { devices: out, ignored };
}

/** A short, public name for a key in logs: its first 8 base64 characters (the key is public; this is for reading). */
export function shortKey(key: string): string {
  return `${key.slice(0, 8)}…`;
}

/**
 * How the device differs from what it should be, one sentence each (empty:
 * nothing to do). Endpoints are not compared: WireGuard moves a peer's
 * endpoint to wherever its authenticated packets come from (roaming, e.g. a
 * peer behind NAT), and the lease's endpoint is set again whenever the lease
 * changes.
 */
export function deviceDifferences(want: { publicKey: string; listenPort: number; peers: readonly WgPeerConfig[] }, have: WgDeviceState): string[] {
  const out: string[] = [];
  if (have.publicKey !== want.publicKey) out.push(have.publicKey === undefined ? 'it has no private key' : "its private key is not this node's");
  if (have.listenPort !== want.listenPort) out.push(`it listens on port ${have.listenPort}, not ${want.listenPort}`);
  const actual = new Map(have.peers.map((p) => [p.publicKey, p]));
  for (const p of want.peers) {
    const a = actual.get(p.publicKey);
    actual.delete(p.publicKey);
    if (!a) {
      out.push(`peer ${shortKey(p.publicKey)} (${p.allowedIps.join(', ')}) is missing`);
      continue;
    }
    const wantIps = [...p.allowedIps].sort().join(', ');
    const haveIps = [...a.allowedIps].sort().join(', ');
    if (wantIps !== haveIps) out.push(`peer ${shortKey(p.publicKey)} has allowed IPs ${haveIps || '(none)'}, not ${wantIps}`);
    if ((a.presharedKey ?? '') !== (p.presharedKey ?? '')) out.push(`peer ${shortKey(p.publicKey)} has ${p.presharedKey ? 'another or no' : 'a'} preshared key`);
    if (a.persistentKeepalive !== p.persistentKeepalive) out.push(`peer ${shortKey(p.publicKey)} has keepalive ${a.persistentKeepalive || 'off'}, not ${p.persistentKeepalive || 'off'}`);
    if (a.endpoint === undefined) out.push(`peer ${shortKey(p.publicKey)} has no endpoint`);
  }
  for (const extra of actual.values()) out.push(`peer ${shortKey(extra.publicKey)} (${extra.allowedIps.join(', ') || 'no allowed IPs'}) belongs to no lease`);
  return out;
}
