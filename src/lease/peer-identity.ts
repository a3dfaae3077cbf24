/**
 * What in a lease's backend data names one machine, for the backends whose
 * kernel state is keyed by it: vxlan's `VtepMAC` (the FDB entry points that
 * MAC at the lease's PublicIP; upstream's pkg/backend/vxlan/vxlan_network.go)
 * and wireguard's `PublicKey` (the peer entry of the device is that key;
 * upstream's pkg/backend/wireguard/device.go). A record that reuses another
 * machine's identity would redirect that machine's traffic, so the lease
 * guard lets only the older of two routed records have it
 * (./peer-lease-guard.ts); a value no machine can have is refused outright.
 *
 * Identities are checked only on records of the network's own backend type:
 * another backend's lease says nothing this network uses.
 */
import { fieldCI, isJsonObject } from '../util/go-json';
import { isMac } from '../util/mac';
import type { LeaseAttrs } from './lease';

export interface PeerIdentity {
  /** "VtepMAC" or "PublicKey", and the family whose backend data holds it. */
  name: string;
  family: 4 | 6;
  /** Normalized (a MAC in lower case). */
  value: string;
}

export type IdentityCheck = { ok: true; identities: PeerIdentity[] } | { ok: false; reason: string };

/** Why `mac` cannot be a VTEP's, or undefined when it can be. */
export function unusableVtepMac(mac: string): string | undefined {
  if (!isMac(mac)) return 'it is not a MAC address';
  const bytes = mac.split(':').map((h) => parseInt(h, 16));
  if (bytes.every((b) => b === 0)) return 'it is all zeros';
  if (bytes.every((b) => b === 0xff)) return 'it is the broadcast address';
  if ((bytes[0]! & 1) === 1) return 'it is a multicast address';
  return undefined;
}

/** Why `key` cannot be a WireGuard public key (base64 of 32 bytes), or undefined when it can be. */
export function unusableWireguardKey(key: string): string | undefined {
  if (!/^[A-Za-z0-9+/]{43}=$/.test(key)) return 'it is not the base64 text of a 32-byte key';
  if (Buffer.from(key, 'base64').every((b) => b === 0)) return 'it is all zeros';
  return undefined;
}

const CHECKS: Record<string, { field: string; unusable: (v: string) => string | undefined; normalize: (v: string) => string }> = {
  vxlan: { field: 'VtepMAC', unusable: unusableVtepMac, normalize: (v) => v.toLowerCase() },
  wireguard: { field: 'PublicKey', unusable: unusableWireguardKey, normalize: (v) => v },
};

/**
 * The identities in `attrs` (each family's backend data that is present), or
 * why one of them is unusable. A backend without identities, or data
 * without the field, gives none: the backend itself reports such a lease.
 */
export function peerIdentities(backendType: string, attrs: LeaseAttrs): IdentityCheck {
  const check = CHECKS[backendType];
  if (!check || attrs.backendType !== backendType) return { ok: true, identities: [] };
  const identities: PeerIdentity[] = [];
  for (const [family, raw] of [
    [4, attrs.backendData],
    [6, attrs.backendV6Data],
  ] as const) {
    if (raw === undefined) continue;
    let data: unknown;
    try {
      data = JSON.parse(raw);
    } catch {
      continue;
    }
    const v = isJsonObject(data) ? fieldCI(data, check.field) : undefined;
    if (typeof v !== 'string') continue;
    const bad = check.unusable(v);
    if (bad) return { ok: false, reason: `its ${family === 6 ? 'IPv6 ' : ''}${check.field} ${JSON.stringify(v.slice(0, 64))} cannot be a peer's: ${bad}` };
    identities.push({ name: check.field, family, value: check.normalize(v) });
  }
  return { ok: true, identities };
}
