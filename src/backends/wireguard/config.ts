/**
 * The wireguard backend's options and lease data, as upstream's
 * pkg/backend/wireguard/wireguard.go (RegisterNetwork, newSubnetAttrs)
 * reads and writes them; docs/operations.md ("The wireguard backend") lists
 * them for operators and docs/compatibility.md §16 says what differs.
 *
 * Keys are case-insensitive, unknown keys are ignored (Go's encoding/json,
 * src/util/go-json.ts). `Implementation` is ours: upstream ignores it.
 */
import { unusableWireguardKey } from '../../lease/peer-identity';
import { intField, isJsonObject, JsonFieldError, stringField } from '../../util/go-json';
import { NamedError } from '../../util/errors';

/**
 * Bytes WireGuard adds, upstream's one `overhead` for both underlays
 * (wireguard_network.go): IPv6 header (40) + UDP (8) + type (4) + receiver
 * index (4) + counter (8) + authentication tag (16).
 */
export const WIREGUARD_OVERHEAD = 80;
/** Upstream's device names (device.go callers in wireguard.go). */
export const WG_DEVICE = 'flannel-wg';
export const WG_DEVICE_V6 = 'flannel-wg-v6';
/** Where the private key lives unless WIREGUARD_KEY_FILE says otherwise (device.go, setupKeys). */
export const DEFAULT_KEY_FILE = '/run/flannel/wgkey';
export const KEY_FILE_ENV = 'WIREGUARD_KEY_FILE';
/** Overrides the Backend option `Implementation` on one node. */
export const IMPLEMENTATION_ENV = 'FLANNEL_TS_WIREGUARD_IMPLEMENTATION';

/** upstream's Mode: two devices (separate), or one for both families and how to pick a peer's endpoint. */
export type WireguardMode = 'separate' | 'auto' | 'ipv4' | 'ipv6';
const MODES: readonly WireguardMode[] = ['separate', 'auto', 'ipv4', 'ipv6'];

/** Who runs the WireGuard device: the kernel's module, wireguard-go, or the first that works (kernel first). */
export type WireguardImplementation = 'auto' | 'kernel' | 'userspace';
const IMPLEMENTATIONS: readonly WireguardImplementation[] = ['auto', 'kernel', 'userspace'];

export interface WireguardBackendConfig {
  listenPort: number;
  listenPortV6: number;
  /** The MTU of the packets WireGuard sends (the devices get MTU - 80); default: the external interface's. */
  mtu: number;
  /** The preshared key (base64), or undefined. Never logged. */
  psk: string | undefined;
  /** Seconds; 0 = off. */
  persistentKeepalive: number;
  mode: WireguardMode;
  implementation: WireguardImplementation;
}

export class WireguardConfigError extends NamedError {}

/** Upstream's wording for a decoding failure: "error decoding backend config: <json error>". */
const DECODE_PREFIX = 'error decoding backend config: ';

/**
 * Parses the Backend object with upstream's defaults. `env` may force the
 * implementation (IMPLEMENTATION_ENV) on one node.
 */
export function parseWireguardBackendConfig(raw: unknown, extMtu: number, env: NodeJS.ProcessEnv = process.env): WireguardBackendConfig {
  const obj = raw === undefined || raw === null ? {} : raw;
  if (!isJsonObject(obj)) throw new WireguardConfigError(`${DECODE_PREFIX}the Backend value must be a JSON object`);
  let cfg: WireguardBackendConfig;
  try {
    const psk = stringField(obj, 'PSK', '');
    cfg = {
      listenPort: intField(obj, 'ListenPort', 51820),
      listenPortV6: intField(obj, 'ListenPortV6', 51821),
      mtu: intField(obj, 'MTU', extMtu),
      psk: psk === '' ? undefined : psk,
      // A Go time.Duration that upstream multiplies by time.Second: the JSON number is seconds ("25s" does not decode in Go either).
      persistentKeepalive: Math.max(0, intField(obj, 'PersistentKeepaliveInterval', 0, 'time.Duration')),
      mode: stringField(obj, 'Mode', 'separate') as WireguardMode,
      implementation: stringField(obj, 'Implementation', 'auto') as WireguardImplementation,
    };
  } catch (e) {
    if (e instanceof JsonFieldError) throw new WireguardConfigError(DECODE_PREFIX + e.message);
    throw e;
  }
  // Go's string-typed Mode accepts any string; RegisterNetwork's switch refuses the rest.
  if (!MODES.includes(cfg.mode)) throw new WireguardConfigError('no valid Mode configured');
  const forced = env[IMPLEMENTATION_ENV];
  if (forced !== undefined && forced !== '') {
    if (!IMPLEMENTATIONS.includes(forced as WireguardImplementation)) {
      throw new WireguardConfigError(`${IMPLEMENTATION_ENV}=${forced} is not one of ${IMPLEMENTATIONS.join(', ')}`);
    }
    cfg.implementation = forced as WireguardImplementation;
  } else if (!IMPLEMENTATIONS.includes(cfg.implementation)) {
    throw new WireguardConfigError(`the wireguard backend option Implementation is ${JSON.stringify(cfg.implementation)}; use one of ${IMPLEMENTATIONS.join(', ')}`);
  }
  for (const [name, port] of [['ListenPort', cfg.listenPort], ['ListenPortV6', cfg.listenPortV6]] as const) {
    // Upstream narrows to uint16 for the lease and hands the int to the device; anything outside is a misconfiguration either way.
    if (port < 0 || port > 65535) throw new WireguardConfigError(`the wireguard backend option ${name} must be 0..65535, got ${port}`);
  }
  if (cfg.mtu < 68 + WIREGUARD_OVERHEAD || cfg.mtu > 65535) {
    throw new WireguardConfigError(`the wireguard backend option MTU must be ${68 + WIREGUARD_OVERHEAD}..65535 (the devices get MTU - ${WIREGUARD_OVERHEAD}), got ${cfg.mtu}`);
  }
  if (cfg.persistentKeepalive > 65535) {
    throw new WireguardConfigError(`the wireguard backend option PersistentKeepaliveInterval is seconds, 0..65535, got ${cfg.persistentKeepalive}`);
  }
  if (cfg.psk !== undefined) {
    const bad = unusableWireguardKey(cfg.psk);
    // The key itself is never repeated: it is a secret.
    if (bad) throw new WireguardConfigError(`could not parse psk: ${bad}; generate one with \`wg genpsk\``);
  }
  return cfg;
}

/**
 * BackendData (and BackendV6Data) exactly as upstream marshals
 * wireguardLeaseAttrs: {"PublicKey":"<base64>","Port":51820}.
 */
export function encodeWireguardBackendData(publicKey: string, port: number): string {
  return `{"PublicKey":${JSON.stringify(publicKey)},"Port":${port}}`;
}

/** A peer's wireguardLeaseAttrs; Port 0 means "the port this node listens on" (upstream, for older versions). */
export interface WireguardLeaseData {
  publicKey: string;
  port: number;
}

/** Decodes one family's backend data, or says why not (Go's wording where upstream has one). */
export function decodeWireguardBackendData(raw: string | undefined): { ok: true; data: WireguardLeaseData } | { ok: false; reason: string } {
  if (raw === undefined || raw === '' || raw === 'null') return { ok: false, reason: 'it has no backend data' };
  let obj: unknown;
  try {
    obj = JSON.parse(raw);
  } catch (e) {
    return { ok: false, reason: `failed to unmarshal BackendData: ${(e as Error).message}` };
  }
  if (!isJsonObject(obj)) return { ok: false, reason: 'failed to unmarshal BackendData: not a JSON object' };
  let publicKey: string;
  let port: number;
  try {
    publicKey = stringField(obj, 'PublicKey', '');
    port = intField(obj, 'Port', 0, 'uint16');
  } catch (e) {
    return { ok: false, reason: `failed to unmarshal BackendData: ${(e as Error).message}` };
  }
  if (port > 65535) return { ok: false, reason: `failed to unmarshal BackendData: json: cannot unmarshal number ${port} into Go struct field .Port of type uint16` };
  const bad = unusableWireguardKey(publicKey);
  if (bad) return { ok: false, reason: `its PublicKey ${JSON.stringify(publicKey.slice(0, 64))} cannot be a peer's: ${bad}` };
  return { ok: true, data: { publicKey, port } };
}
