/**
 * Backends by name (upstream's pkg/backend/manager.go, GetBackend: the lookup
 * lower-cases the type). Upstream also registers ipsec and tencent-vpc,
 * which flannel-ts does not implement (docs/compatibility.md §17).
 */
import { AllocBackend } from './alloc/alloc-backend';
import type { Backend } from './backend';
import { ExtensionBackend } from './extension/extension-backend';
import { IpipBackend } from './ipip/ipip-backend';
import { HostGwBackend } from './host-gw/host-gw-backend';
import { UdpBackend } from './udp/udp-backend';
import { VxlanBackend } from './vxlan/vxlan-backend';
import { WireguardBackend } from './wireguard/wireguard-backend';

const FACTORIES: Record<string, () => Backend> = {
  udp: () => new UdpBackend(),
  vxlan: () => new VxlanBackend(),
  'host-gw': () => new HostGwBackend(),
  wireguard: () => new WireguardBackend(),
  alloc: () => new AllocBackend(),
  extension: () => new ExtensionBackend(),
  ipip: () => new IpipBackend(),
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
