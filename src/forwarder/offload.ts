/**
 * The udp datapath's segmentation offloads (native/linux/offload_linux.h):
 * which ones may be used, from the udp backend's "Offload" option and the
 * FLANNEL_TS_OFFLOAD environment variable, and how the running datapath
 * reports them.
 *
 *  - TSO: the TUN hands us TCP super-packets, which we cut into wire packets.
 *  - USO: the same for UDP (Linux 6.2).
 *  - GSO: runs of equal-size wire packets to one peer leave in one UDP_SEGMENT send.
 *  - GRO: UDP_GRO on the sockets, and received TCP segments coalesced into one
 *    TUN write.
 * None changes the wire: every datagram carries one inner IPv4 packet with
 * valid checksums, as upstream's proxy sends them, so peers without offloads
 * (upstream) interoperate.
 */
import { NamedError } from '../util/errors';

export const OFFLOAD_NAMES = ['tso', 'uso', 'gso', 'gro'] as const;
export type OffloadName = (typeof OFFLOAD_NAMES)[number];
export type OffloadSettings = Record<OffloadName, boolean>;

export const ALL_OFFLOADS: Readonly<OffloadSettings> = Object.freeze({ tso: true, uso: true, gso: true, gro: true });
export const NO_OFFLOADS: Readonly<OffloadSettings> = Object.freeze({ tso: false, uso: false, gso: false, gro: false });

/** The environment variable that narrows the offloads on one node without touching the network config. */
export const OFFLOAD_ENV = 'FLANNEL_TS_OFFLOAD';

export class OffloadEnvError extends NamedError {}

/**
 * Parses FLANNEL_TS_OFFLOAD: unset or empty allows every offload; "off" (or
 * "none") allows none; "on" (or "all") allows all; otherwise a comma list of
 * the offloads to allow, e.g. "gso,gro". Case-insensitive.
 */
export function parseOffloadEnv(value: string | undefined): OffloadSettings {
  const text = (value ?? '').trim().toLowerCase();
  if (text === '' || text === 'on' || text === 'all') return { ...ALL_OFFLOADS };
  if (text === 'off' || text === 'none') return { ...NO_OFFLOADS };
  const allowed: OffloadSettings = { ...NO_OFFLOADS };
  for (const raw of text.split(',')) {
    const name = raw.trim();
    if (name === '') continue;
    if (!(OFFLOAD_NAMES as readonly string[]).includes(name)) {
      throw new OffloadEnvError(
        `${OFFLOAD_ENV}=${JSON.stringify(value)}: unknown offload "${name}"; use "off", "on", or a comma list of ` +
          `${OFFLOAD_NAMES.join(', ')} (for example "gso,gro")`,
      );
    }
    allowed[name as OffloadName] = true;
  }
  return allowed;
}

/** An offload is used only when the config and the environment both allow it. */
export function combineOffloads(a: OffloadSettings, b: OffloadSettings): OffloadSettings {
  return { tso: a.tso && b.tso, uso: a.uso && b.uso, gso: a.gso && b.gso, gro: a.gro && b.gro };
}

/** TSO, USO and GRO go through the virtio-net header; without them the TUN is opened as upstream opens it. */
export function needsVnetHeader(o: OffloadSettings): boolean {
  return o.tso || o.uso || o.gro;
}

/**
 * How the datapath reports one switch: on; off (not requested); refused (the
 * start-time probe failed); failed (switched off for good at runtime).
 */
export type OffloadStatus = 'on' | 'off' | 'refused' | 'failed';
export interface OffloadSwitchReport {
  status: OffloadStatus;
  /** The errno name when the kernel refused, e.g. "EINVAL". */
  code?: string;
}
/** udpGro and gro together are the "GRO" offload: UDP_GRO on the sockets, coalesced TUN writes. */
export interface OffloadReport {
  vnetHdr: boolean;
  tso: OffloadSwitchReport;
  uso: OffloadSwitchReport;
  gso: OffloadSwitchReport;
  udpGro: OffloadSwitchReport;
  gro: OffloadSwitchReport;
}

export const OFFLOAD_SWITCHES = ['tso', 'uso', 'gso', 'udpGro', 'gro'] as const;
export type OffloadSwitchName = (typeof OFFLOAD_SWITCHES)[number];

/** What each switch does, for log lines. */
export const OFFLOAD_DESCRIPTIONS: Record<OffloadSwitchName, string> = {
  tso: 'TCP segmentation offload on the TUN (TUNSETOFFLOAD TSO4/TSO6)',
  uso: 'UDP segmentation offload on the TUN (TUNSETOFFLOAD USO4|USO6, Linux 6.2)',
  gso: 'UDP GSO sends (UDP_SEGMENT)',
  udpGro: 'UDP GRO receives (UDP_GRO)',
  gro: 'coalesced TCP and UDP writes to the TUN (virtio-net GSO; UDP where the TUN takes USO)',
};
