/**
 * The vxlan device flannel.<VNI> (compat §6.1): created with the VNI, the
 * underlay interface, local = the public address, the port (or the kernel's
 * 8472), learning and GBP as configured, a locally administered MAC and
 * MTU = (Backend.MTU or the interface MTU) - 50; accept_ra = 0; the own
 * subnet's network address /32 with other addresses inside the Network
 * removed; UP.
 *
 * An existing device is reused when compatible (type, VNI, underlay, local,
 * group, l2miss, port, GBP, compared as upstream does) and keeps its MAC;
 * an incompatible one is recreated, saying which field differed. Beyond
 * upstream, an MTU or MAC that drifted is put back (the MAC is the one
 * published in our lease, which peers' FDB entries point at).
 */
import * as fs from 'node:fs';
import type { Logger } from '../../log';
import { formatIpv4, type Ipv4Net } from '../../util/ipv4';
import type { Repair } from '../../routing/reconciler';
import type { LinkDetails, RtNetlink } from '../../routing/rtnetlink';

export interface VxlanDeviceSpec {
  name: string;
  vni: number;
  /** Underlay interface index. */
  link: number;
  /** Local (public) IPv4 address, host order. */
  local: number;
  port: number;
  learning: boolean;
  gbp: boolean;
  mtu: number;
}

/** The first field on which an existing device differs from the spec (upstream's ensureLink comparison). */
export function incompatibility(existing: LinkDetails, spec: VxlanDeviceSpec): string | undefined {
  const v = existing.vxlan;
  if (existing.kind !== 'vxlan' || !v) return `type: ${existing.kind ?? 'unknown'} vs vxlan`;
  if (v.vni !== spec.vni) return `vni: ${v.vni} vs ${spec.vni}`;
  if (v.link > 0 && spec.link > 0 && v.link !== spec.link) return `underlay index: ${v.link} vs ${spec.link}`;
  if (v.local !== 0 && spec.local !== 0 && v.local !== spec.local) return `local address: ${formatIpv4(v.local)} vs ${formatIpv4(spec.local)}`;
  if (v.group !== 0) return `group: ${formatIpv4(v.group)} vs none`;
  if (v.l2miss) return 'l2miss: true vs false';
  if (v.port > 0 && spec.port > 0 && v.port !== spec.port) return `port: ${v.port} vs ${spec.port}`;
  if (v.gbp !== spec.gbp) return `gbp: ${v.gbp} vs ${spec.gbp}`;
  return undefined;
}

function setAcceptRa(name: string): void {
  const file = `/proc/sys/net/ipv6/conf/${name}/accept_ra`;
  try {
    if (fs.readFileSync(file, 'utf8').trim() !== '0') fs.writeFileSync(file, '0');
  } catch {
    /* IPv6 disabled on this host: nothing to turn off */
  }
}

export interface EnsureResult {
  device: LinkDetails;
  repairs: Repair[];
}

/**
 * Makes the device exist as `spec` says. `mac` is used when creating it;
 * with `enforceMac` (after the lease is published) an existing device's
 * MAC is put back to `mac` too.
 */
export async function ensureVxlanDevice(nl: RtNetlink, spec: VxlanDeviceSpec, mac: string, enforceMac: boolean, log: Logger): Promise<EnsureResult> {
  const repairs: Repair[] = [];
  let dev = await nl.getLinkDetails(spec.name);
  if (dev) {
    const why = incompatibility(dev, spec);
    if (why) {
      log.warn({ device: spec.name, field: why }, `"${spec.name}" already exists with incompatible configuration: ${why}; recreating device`);
      await nl.deleteLink(dev.index);
      dev = undefined;
    }
  }
  if (!dev) {
    await nl.createVxlan({ name: spec.name, mac, mtu: spec.mtu, vni: spec.vni, link: spec.link, local: spec.local, port: spec.port, learning: spec.learning, gbp: spec.gbp });
    repairs.push({ kind: 'device', description: `created ${spec.name} (VNI ${spec.vni}, MAC ${mac})` });
    dev = (await nl.getLinkDetails(spec.name))!;
  }
  if (dev.mtu !== spec.mtu) {
    await nl.setLinkMtu(dev.index, spec.mtu);
    repairs.push({ kind: 'mtu', description: `set the MTU of ${spec.name} to ${spec.mtu} (was ${dev.mtu})` });
  }
  if (enforceMac && dev.mac !== mac) {
    await nl.setLinkMac(dev.index, mac);
    repairs.push({ kind: 'device', description: `restored the MAC of ${spec.name} to ${mac} (was ${dev.mac})` });
  }
  setAcceptRa(spec.name);
  if (!dev.up) {
    await nl.setLinkUp(dev.index);
    if (!repairs.some((r) => r.description.startsWith('created'))) repairs.push({ kind: 'device', description: `set ${spec.name} up` });
  }
  return { device: (await nl.getLinkDetails(spec.name))!, repairs };
}

/**
 * upstream's EnsureV4AddressOnLink: the own subnet's network address /32 on
 * the device, and no other address of the device inside the Network.
 */
export async function ensureV4AddressOnLink(nl: RtNetlink, dev: LinkDetails, subnet: Ipv4Net, network: Ipv4Net): Promise<Repair[]> {
  const repairs: Repair[] = [];
  const want = subnet.network;
  const addrs = await nl.listAddresses(dev.index);
  for (const a of addrs) {
    if (a.address === want && a.prefixLen === 32) continue;
    if (network.contains(a.address)) {
      await nl.deleteAddress(dev.index, a.address, a.prefixLen);
      repairs.push({ kind: 'address', description: `removed ${formatIpv4(a.address)}/${a.prefixLen} from ${dev.name}` });
    }
  }
  if (!addrs.some((a) => a.address === want && a.prefixLen === 32)) {
    await nl.addAddress(dev.index, want, 32);
    repairs.push({ kind: 'address', description: `added ${formatIpv4(want)}/32 to ${dev.name}` });
  }
  return repairs;
}
