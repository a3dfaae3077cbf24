/**
 * The flannel network config: the JSON at `<prefix>/config` in etcd (or
 * net-conf.json in kube mode), decoded as upstream's Go struct is
 * (docs/compatibility.md §2.2) and validated with upstream's defaults and error texts (docs/compatibility.md §2.3).
 */
import { fieldCI, isJsonObject, type JsonObject } from '../util/go-json';
import { formatIpv4, Ipv4Net, tryParseIpv4 } from '../util/ipv4';
import { formatIpv6, Ipv6Net, tryParseIpv6 } from '../util/ipv6';
import { NamedError, errorText } from '../util/errors';

export class NetworkConfigError extends NamedError {}

/** The decoded JSON, before validation. */
export interface RawNetworkConfig {
  enableIPv4: boolean;
  enableIPv6: boolean;
  enableNFTables: boolean;
  network: Ipv4Net | undefined;
  ipv6Network: Ipv6Net | undefined;
  subnetMin: number | undefined;
  subnetMax: number | undefined;
  ipv6SubnetMin: bigint | undefined;
  ipv6SubnetMax: bigint | undefined;
  subnetLen: number;
  ipv6SubnetLen: number;
  /** Backend.Type as written ("" when Backend is {} or null; "udp" when Backend is absent). */
  backendType: string;
  /** The raw Backend value (undefined when absent). */
  backend: unknown;
}

/** A validated config with every default filled in. */
export interface NetworkConfig {
  enableIPv4: boolean;
  enableIPv6: boolean;
  enableNFTables: boolean;
  /** Set when enableIPv4. */
  network: Ipv4Net | undefined;
  subnetLen: number;
  subnetMin: number;
  subnetMax: number;
  /** Set when enableIPv6. */
  ipv6Network: Ipv6Net | undefined;
  ipv6SubnetLen: number;
  ipv6SubnetMin: bigint;
  ipv6SubnetMax: bigint;
  /** Backend.Type lower-cased, as the backend lookup does (docs/compatibility.md §2.2). */
  backendType: string;
  backend: unknown;
}

function mismatch(field: string, v: unknown, goType: string): NetworkConfigError {
  const t = v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v === 'object' ? 'object' : typeof v;
  return new NetworkConfigError(`json: cannot unmarshal ${t} into Go struct field Config.${field} of type ${goType}`);
}

function boolOf(obj: JsonObject, field: string, fallback: boolean): boolean {
  const v = fieldCI(obj, field);
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'boolean') throw mismatch(field, v, 'bool');
  return v;
}

function uintOf(obj: JsonObject, field: string): number {
  const v = fieldCI(obj, field);
  if (v === undefined || v === null) return 0;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw mismatch(field, v, 'uint');
  return v;
}

function ipv4NetOf(obj: JsonObject, field: string): Ipv4Net | undefined {
  const v = fieldCI(obj, field);
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw mismatch(field, v, 'ip.IP4Net');
  const n = Ipv4Net.tryParse(v);
  if (!n) throw new NetworkConfigError(`invalid IPv4 CIDR format: ${field} '${v}'`);
  return n.canonical();
}

function ipv6NetOf(obj: JsonObject, field: string): Ipv6Net | undefined {
  const v = fieldCI(obj, field);
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw mismatch(field, v, 'ip.IP6Net');
  const n = Ipv6Net.tryParse(v);
  if (!n) throw new NetworkConfigError(`invalid IPv6 CIDR format: ${field} '${v}'`);
  return n.canonical();
}

/** An IPv4 address field; "0.0.0.0" counts as unset (docs/compatibility.md §2.2). */
function ipv4Of(obj: JsonObject, field: string): number | undefined {
  const v = fieldCI(obj, field);
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw mismatch(field, v, 'ip.IP4');
  const a = tryParseIpv4(v);
  if (a === undefined) throw new NetworkConfigError(`invalid IP address: ${field} '${v}'`);
  return a === 0 ? undefined : a;
}

/** An IPv6 address field; "::" counts as unset. */
function ipv6Of(obj: JsonObject, field: string): bigint | undefined {
  const v = fieldCI(obj, field);
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw mismatch(field, v, 'ip.IP6');
  const a = tryParseIpv6(v);
  if (a === undefined) throw new NetworkConfigError(`invalid IPv6 address: ${field} '${v}'`);
  return a === 0n ? undefined : a;
}

/** upstream's parseBackendType: Backend absent -> "udp"; present -> its Type ("" for {} or null). */
function backendTypeOf(backend: unknown): string {
  if (backend === undefined) return 'udp';
  if (backend === null) return '';
  if (!isJsonObject(backend)) {
    throw new NetworkConfigError(
      `error decoding Backend property of config: json: cannot unmarshal ${Array.isArray(backend) ? 'array' : typeof backend} into Go value of type struct { Type string }`,
    );
  }
  const t = fieldCI(backend, 'Type');
  if (t === undefined || t === null) return '';
  if (typeof t !== 'string') {
    throw new NetworkConfigError('error decoding Backend property of config: json: cannot unmarshal non-string into Go struct field .Type of type string');
  }
  return t;
}

/** Decodes the config JSON (docs/compatibility.md §2.2). Throws NetworkConfigError. */
export function parseNetworkConfig(text: string): RawNetworkConfig {
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch (e) {
    throw new NetworkConfigError(`the config is not valid JSON: ${errorText(e)}`);
  }
  if (!isJsonObject(obj)) throw new NetworkConfigError('the config must be a JSON object');
  const backend = fieldCI(obj, 'Backend');
  return {
    enableIPv4: boolOf(obj, 'EnableIPv4', true),
    enableIPv6: boolOf(obj, 'EnableIPv6', false),
    enableNFTables: boolOf(obj, 'EnableNFTables', false),
    network: ipv4NetOf(obj, 'Network'),
    ipv6Network: ipv6NetOf(obj, 'IPv6Network'),
    subnetMin: ipv4Of(obj, 'SubnetMin'),
    subnetMax: ipv4Of(obj, 'SubnetMax'),
    ipv6SubnetMin: ipv6Of(obj, 'IPv6SubnetMin'),
    ipv6SubnetMax: ipv6Of(obj, 'IPv6SubnetMax'),
    subnetLen: uintOf(obj, 'SubnetLen'),
    ipv6SubnetLen: uintOf(obj, 'IPv6SubnetLen'),
    backendType: backendTypeOf(backend),
    backend,
  };
}

/** upstream's CheckNetworkConfig (etcd mode only; docs/compatibility.md §2.3). Throws NetworkConfigError. */
export function checkNetworkConfig(raw: RawNetworkConfig): NetworkConfig {
  const cfg: NetworkConfig = {
    enableIPv4: raw.enableIPv4,
    enableIPv6: raw.enableIPv6,
    enableNFTables: raw.enableNFTables,
    network: undefined,
    subnetLen: 0,
    subnetMin: 0,
    subnetMax: 0,
    ipv6Network: undefined,
    ipv6SubnetLen: 0,
    ipv6SubnetMin: 0n,
    ipv6SubnetMax: 0n,
    backendType: raw.backendType.toLowerCase(),
    backend: raw.backend,
  };
  if (raw.enableIPv4) {
    const net = raw.network;
    if (!net || (net.network === 0 && net.prefixLen === 0)) {
      throw new NetworkConfigError('please define a correct Network parameter in the flannel config');
    }
    let len = raw.subnetLen;
    if (len > 0) {
      if (len > 30) throw new NetworkConfigError('SubnetLen must be less than /31');
      if (len < net.prefixLen + 2) throw new NetworkConfigError('network must be able to accommodate at least four subnets');
    } else if (net.prefixLen > 28) {
      throw new NetworkConfigError('network is too small. Minimum useful network prefix is /28');
    } else {
      len = net.prefixLen <= 22 ? 24 : net.prefixLen + 2;
    }
    const size = 2 ** (32 - len);
    const min = raw.subnetMin ?? (net.network + size) >>> 0;
    if (raw.subnetMin !== undefined && !net.contains(min)) {
      throw new NetworkConfigError('SubnetMin is not in the range of the Network');
    }
    const max = raw.subnetMax ?? (net.network + net.size - size) >>> 0;
    if (raw.subnetMax !== undefined && !net.contains(max)) {
      throw new NetworkConfigError('SubnetMax is not in the range of the Network');
    }
    if (min % size !== 0) throw new NetworkConfigError(`SubnetMin is not on a SubnetLen boundary: ${formatIpv4(min)}`);
    if (max % size !== 0) throw new NetworkConfigError(`SubnetMax is not on a SubnetLen boundary: ${formatIpv4(max)}`);
    Object.assign(cfg, { network: net, subnetLen: len, subnetMin: min, subnetMax: max });
  }
  if (raw.enableIPv6) {
    const net = raw.ipv6Network;
    if (!net || (net.network === 0n && net.prefixLen === 0)) {
      throw new NetworkConfigError('please define a correct IPv6Network parameter in the flannel config');
    }
    let len = raw.ipv6SubnetLen;
    if (len > 0) {
      if (len > 126) throw new NetworkConfigError('SubnetLen must be less than /127');
      if (len < net.prefixLen + 2) throw new NetworkConfigError('network must be able to accommodate at least four subnets');
    } else if (net.prefixLen > 124) {
      throw new NetworkConfigError('IPv6Network is too small. Minimum useful network prefix is /124');
    } else {
      len = net.prefixLen <= 62 ? 64 : net.prefixLen + 2;
    }
    const size = 1n << BigInt(128 - len);
    const min = raw.ipv6SubnetMin ?? net.network + size;
    if (raw.ipv6SubnetMin !== undefined && !net.contains(min)) {
      throw new NetworkConfigError('IPv6SubnetMin is not in the range of the IPv6Network');
    }
    const max = raw.ipv6SubnetMax ?? net.network + net.size - size;
    if (raw.ipv6SubnetMax !== undefined && !net.contains(max)) {
      throw new NetworkConfigError('IPv6SubnetMax is not in the range of the IPv6Network');
    }
    if (min % size !== 0n) throw new NetworkConfigError(`IPv6SubnetMin is not on a SubnetLen boundary: ${formatIpv6(min)}`);
    if (max % size !== 0n) throw new NetworkConfigError(`IPv6SubnetMax is not on a SubnetLen boundary: ${formatIpv6(max)}`);
    Object.assign(cfg, { ipv6Network: net, ipv6SubnetLen: len, ipv6SubnetMin: min, ipv6SubnetMax: max });
  }
  return Object.freeze(cfg);
}

/** An `etcdctl put` command an operator can run to create a working config under `configKey`. */
export function configExample(configKey: string): string {
  return `ETCDCTL_API=3 etcdctl put ${configKey} '{"Network": "10.5.0.0/16", "Backend": {"Type": "udp"}}'`;
}

/**
 * net-conf.json in kube mode (docs/compatibility.md §11.1 step 3): decoded only, none of
 * docs/compatibility.md §2.3's checks or defaults (SubnetLen/Min/Max are unused: the subnet is
 * the node's podCIDR). A missing Network is reported when the own podCIDR
 * is checked against it (docs/compatibility.md §11.5).
 */
export function kubeNetworkConfig(raw: RawNetworkConfig): NetworkConfig {
  return Object.freeze({
    enableIPv4: raw.enableIPv4,
    enableIPv6: raw.enableIPv6,
    enableNFTables: raw.enableNFTables,
    network: raw.enableIPv4 ? raw.network : undefined,
    subnetLen: raw.subnetLen,
    subnetMin: raw.subnetMin ?? 0,
    subnetMax: raw.subnetMax ?? 0,
    ipv6Network: raw.enableIPv6 ? raw.ipv6Network : undefined,
    ipv6SubnetLen: raw.ipv6SubnetLen,
    ipv6SubnetMin: raw.ipv6SubnetMin ?? 0n,
    ipv6SubnetMax: raw.ipv6SubnetMax ?? 0n,
    backendType: raw.backendType.toLowerCase(),
    backend: raw.backend,
  });
}
