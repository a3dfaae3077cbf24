/**
 * Backends by name (upstream's pkg/backend/manager.go, GetBackend: the lookup
 * lower-cases the type). Upstream also registers ipip, ipsec, alloc,
 * extension and tencent-vpc; flannel-ts implements udp, vxlan, host-gw and
 * wireguard.
 */
import type { Backend } from './backend';
import { HostGwBackend } from './host-gw/host-gw-backend';
import { UdpBackend } from './udp/udp-backend';
import { VxlanBackend } from './vxlan/vxlan-backend';
import { WireguardBackend } from './wireguard/wireguard-backend';

const FACTORIES: Record<string, () => Backend> = {
  udp: () => new UdpBackend(),
  vxlan: () => new VxlanBackend(),
  'host-gw': () => new HostGwBackend(),
  wireguard: () => new WireguardBackend(),
};

/** The backend for a (lower-cased) type, or undefined. */
export function lookupBackend(type: string): Backend | undefined {
  const f = FACTORIES[type.toLowerCase()];
  return f ? f() : undefined;
}

export function backendTypes(): string[] {
  return Object.keys(FACTORIES);
}

/** One of each backend (cleanup asks each which devices are its own). */
export function allBackends(): Backend[] {
  return Object.values(FACTORIES).map((f) => f());
}
