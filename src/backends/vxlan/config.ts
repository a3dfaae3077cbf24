/**
 * The vxlan backend's options (docs/compatibility.md §2.4): VNI (default 1), Port (0 = the
 * kernel's default, 8472), MTU (default: the interface's), GBP, Learning,
 * DirectRouting. Keys are case-insensitive.
 */
import { boolField, intField, isJsonObject, JsonFieldError } from '../../util/go-json';
import { NamedError } from '../../util/errors';

export interface VxlanBackendConfig {
  vni: number;
  port: number;
  mtu: number | undefined;
  gbp: boolean;
  learning: boolean;
  directRouting: boolean;
}

/** IPv4 (20) + UDP (8) + VXLAN (8) + inner Ethernet (14) bytes (docs/compatibility.md §6.4). */
export const VXLAN_OVERHEAD = 50;
/**
 * The same over an IPv6 underlay: IPv6 (40) + UDP + VXLAN + Ethernet. The
 * kernel refuses a larger MTU on flannel-v6.<VNI> (drivers/net/vxlan,
 * VXLAN6_HEADROOM), so upstream's 50 cannot be used for that device.
 */
export const VXLAN6_OVERHEAD = 70;

export class VxlanConfigError extends NamedError {}

export function parseVxlanBackendConfig(raw: unknown): VxlanBackendConfig {
  const prefix = 'error decoding VXLAN backend config: ';
  const obj = raw === undefined || raw === null ? {} : raw;
  if (!isJsonObject(obj)) throw new VxlanConfigError(`${prefix}the Backend value must be a JSON object`);
  let cfg: VxlanBackendConfig;
  try {
    const mtu = intField(obj, 'MTU', 0);
    cfg = {
      vni: intField(obj, 'VNI', 1),
      port: intField(obj, 'Port', 0),
      mtu: mtu === 0 ? undefined : mtu,
      gbp: boolField(obj, 'GBP', false),
      learning: boolField(obj, 'Learning', false),
      directRouting: boolField(obj, 'DirectRouting', false),
    };
  } catch (e) {
    if (e instanceof JsonFieldError) throw new VxlanConfigError(prefix + e.message);
    throw e;
  }
  if (cfg.vni < 0 || cfg.vni > 0xffffff) throw new VxlanConfigError(`${prefix}VNI must be 0..16777215, got ${cfg.vni}`);
  if (cfg.port < 0 || cfg.port > 65535) throw new VxlanConfigError(`${prefix}Port must be 0..65535, got ${cfg.port}`);
  if (cfg.mtu !== undefined && (cfg.mtu < 68 + VXLAN_OVERHEAD || cfg.mtu > 65535)) {
    throw new VxlanConfigError(`${prefix}MTU must be ${68 + VXLAN_OVERHEAD}..65535 (the device gets MTU - ${VXLAN_OVERHEAD}), got ${cfg.mtu}`);
  }
  return cfg;
}

/** The device name: flannel.<VNI>, or flannel-v6.<VNI> for IPv6 (docs/compatibility.md §6.1). */
export function vxlanDeviceName(vni: number, family: 4 | 6 = 4): string {
  return family === 6 ? `flannel-v6.${vni}` : `flannel.${vni}`;
}

/** BackendData (and BackendV6Data) exactly as upstream marshals it: {"VNI":1,"VtepMAC":"aa:bb:cc:dd:ee:ff"}. */
export function encodeVxlanBackendData(vni: number, mac: string): string {
  return `{"VNI":${vni},"VtepMAC":${JSON.stringify(mac.toLowerCase())}}`;
}
