/**
 * The udp backend's options: the `Backend` object of the network config
 * (compat §2.4). Upstream knows only `Port`; `MTU` and `SourceCheck` are
 * ours (documented in the README).
 */
import { boolField, intField, isJsonObject, JsonFieldError } from '../../util/go-json';
import { UDP_ENCAP_OVERHEAD } from '../../routing/tun-device';

/** Upstream's default udp port (compat §2.4, §5.1). */
export const DEFAULT_UDP_PORT = 8285;

/** The smallest MTU an IPv4 link may have (RFC 791: every host must accept 68-byte datagrams). */
const MIN_TUN_MTU = 68;

export interface UdpBackendConfig {
  /** UDP port every node listens on and sends to (all nodes must agree, compat §5.3). */
  port: number;
  /** The underlay MTU to assume; undefined = the external interface's MTU. */
  mtu: number | undefined;
  /** Drop datagrams whose source is not a known peer's PublicIP (default true). */
  sourceCheck: boolean;
}

export class UdpBackendConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UdpBackendConfigError';
  }
}

/** Parses the raw `Backend` object (or undefined when the config has none). */
export function parseUdpBackendConfig(raw: unknown): UdpBackendConfig {
  const prefix = 'error decoding UDP backend config: ';
  if (raw === undefined || raw === null) return { port: DEFAULT_UDP_PORT, mtu: undefined, sourceCheck: true };
  if (!isJsonObject(raw)) throw new UdpBackendConfigError(`${prefix}the Backend value must be a JSON object`);
  let port: number;
  let mtu: number;
  let sourceCheck: boolean;
  try {
    port = intField(raw, 'Port', DEFAULT_UDP_PORT);
    mtu = intField(raw, 'MTU', 0);
    sourceCheck = boolField(raw, 'SourceCheck', true);
  } catch (e) {
    if (e instanceof JsonFieldError) throw new UdpBackendConfigError(prefix + e.message);
    throw e;
  }
  if (port < 1 || port > 65535) {
    throw new UdpBackendConfigError(`${prefix}Port must be 1..65535, got ${port}`);
  }
  if (mtu !== 0 && (mtu < MIN_TUN_MTU + UDP_ENCAP_OVERHEAD || mtu > 65535)) {
    throw new UdpBackendConfigError(
      `${prefix}MTU is the underlay MTU and must be ${MIN_TUN_MTU + UDP_ENCAP_OVERHEAD}..65535 ` +
        `(flannel0 gets MTU - ${UDP_ENCAP_OVERHEAD}), got ${mtu}`,
    );
  }
  return { port, mtu: mtu === 0 ? undefined : mtu, sourceCheck };
}

/** flannel0's MTU: the underlay MTU minus the IPv4+UDP encapsulation (compat §5.2, §5.8). */
export function tunMtu(cfg: UdpBackendConfig, interfaceMtu: number): number {
  return (cfg.mtu ?? interfaceMtu) - UDP_ENCAP_OVERHEAD;
}
