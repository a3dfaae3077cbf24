/**
 * The value of a lease key in etcd: the JSON of upstream's LeaseAttrs
 * (pkg/lease/lease.go), with Go's json.Marshal bytes on write and Go's
 * decoding rules on read (case-insensitive keys, unknown keys ignored).
 */
import { fieldCI, goCompactJson, isJsonObject } from '../../util/go-json';
import { formatIpv4, tryParseIpv4 } from '../../util/ipv4';
import { formatIpv6, tryParseIpv6 } from '../../util/ipv6';
import { NamedError } from '../../util/errors';
import { quoteForLog } from '../../util/text';
import type { LeaseAttrs } from '../lease';

/** A raw JSON value as Marshal writes a json.RawMessage: compacted, HTML characters escaped. */
const compactRaw = goCompactJson;

/**
 * The value JSON exactly as Go's json.Marshal writes LeaseAttrs: PublicIP,
 * PublicIPv6 (null when none), then BackendType, BackendData, BackendV6Data
 * each omitted when empty. A udp lease is `{"PublicIP":"1.2.3.4","PublicIPv6":null}`.
 */
export function encodeLeaseAttrs(a: LeaseAttrs): string {
  let s = `{"PublicIP":${JSON.stringify(formatIpv4(a.publicIp))},"PublicIPv6":${a.publicIpv6 === undefined ? 'null' : JSON.stringify(formatIpv6(a.publicIpv6))}`;
  if (a.backendType !== '') s += `,"BackendType":${JSON.stringify(a.backendType)}`;
  if (a.backendData !== undefined && a.backendData !== '') s += `,"BackendData":${compactRaw(a.backendData)}`;
  if (a.backendV6Data !== undefined && a.backendV6Data !== '') s += `,"BackendV6Data":${compactRaw(a.backendV6Data)}`;
  return s + '}';
}

export class LeaseDecodeError extends NamedError {}

/** Decodes a lease value (case-insensitive keys, unknown keys ignored). PublicIP must be IPv4. */
export function decodeLeaseAttrs(text: string): LeaseAttrs {
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch {
    throw new LeaseDecodeError('the value is not JSON');
  }
  if (!isJsonObject(obj)) throw new LeaseDecodeError('the value is not a JSON object');
  const pub = fieldCI(obj, 'PublicIP');
  const publicIp = typeof pub === 'string' ? tryParseIpv4(pub) : undefined;
  if (publicIp === undefined) throw new LeaseDecodeError(`PublicIP ${quoteForLog(JSON.stringify(pub) ?? 'absent')} is not an IPv4 address`);
  const pub6 = fieldCI(obj, 'PublicIPv6');
  let publicIpv6: bigint | undefined;
  if (pub6 !== undefined && pub6 !== null) {
    publicIpv6 = typeof pub6 === 'string' ? tryParseIpv6(pub6) : undefined;
    if (publicIpv6 === undefined) throw new LeaseDecodeError(`PublicIPv6 ${quoteForLog(JSON.stringify(pub6))} is not an IPv6 address`);
  }
  const bt = fieldCI(obj, 'BackendType');
  if (bt !== undefined && bt !== null && typeof bt !== 'string') throw new LeaseDecodeError('BackendType is not a string');
  const raw = (k: string): string | undefined => {
    const v = fieldCI(obj as Record<string, unknown>, k);
    return v === undefined || v === null ? undefined : JSON.stringify(v);
  };
  return { publicIp, publicIpv6, backendType: (bt as string | undefined) ?? '', backendData: raw('BackendData'), backendV6Data: raw('BackendV6Data') };
}
