/**
 * The vxlan devices flannel.<VNI> and flannel-v6.<VNI> (upstream's
 * pkg/backend/vxlan/device.go, newVXLANDevice and ensureLink): created with
 * the VNI, the underlay interface, local = the public address of the
 * device's family, the port (or the kernel's 8472), learning and GBP as
 * configured, a locally administered MAC and MTU = (Backend.MTU or the
 * interface MTU) - 50 (upstream uses 50 for both families); accept_ra = 0;
 * the own subnet's network address (/32, IPv6 /128) with other addresses
 * inside the Network removed (pkg/ip/iface.go, EnsureV4AddressOnLink and
 * EnsureV6AddressOnLink); UP.
 *
 * An existing device is reused when compatible (type, VNI, underlay, local,
 * group, l2miss, port, GBP, compared as upstream's ensureLink does) and
 * keeps its MAC; an incompatible one is recreated, saying which field
 * differed. Beyond upstream, an MTU or MAC that drifted is put back (the MAC
 * is the one published in our lease, which peers' FDB entries point at).
 */
import type { Logger } from '../../logging';
import type { KernelOp } from '../../routing/kernel-ops';
import type { KernelPort } from '../../routing/kernel-port';
import type { Repair } from '../../routing/reconciler';
import type { LinkDetails } from '../../routing/rtnetlink';
import { formatIp, type IpAddr } from '../../util/ip';

export interface VxlanDeviceSpec {
  name: string;
  vni: number;
  /** Underlay interface index. */
  link: number;
  /** Local (public) address: IPv4 for flannel.<VNI>, IPv6 for flannel-v6.<VNI>. */
  local: IpAddr;
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
  const set = (a: IpAddr) => a !== 0 && a !== 0n;
  if (set(v.local) && set(spec.local) && v.local !== spec.local) return `local address: ${formatIp(v.local)} vs ${formatIp(spec.local)}`;
  if (set(v.group)) return `group: ${formatIp(v.group)} vs none`;
  if (v.l2miss) return 'l2miss: true vs false';
  if (v.port > 0 && spec.port > 0 && v.port !== spec.port) return `port: ${v.port} vs ${spec.port}`;
  if (v.gbp !== spec.gbp) return `gbp: ${v.gbp} vs ${spec.gbp}`;
  return undefined;
}

export interface EnsureResult {
  device: LinkDetails;
  repairs: Repair[];
}

async function findLink(kernel: KernelPort, name: string): Promise<LinkDetails | undefined> {
  return (await kernel.listLinks()).find((l) => l.name === name);
}

/** upstream's vxlan.go sets accept_ra to 0: a vxlan device must not configure itself from router adverts. */
async function disableAcceptRa(kernel: KernelPort, name: string): Promise<void> {
  const key = `net/ipv6/conf/${name}/accept_ra`;
  const now = await kernel.readSysctl(key);
  // Absent: IPv6 is disabled on this host, nothing to turn off.
  if (now !== undefined && now !== '0') await kernel.writeSysctl(key, '0');
}

/**
 * Makes the device exist as `spec` says. `mac` is used when creating it;
 * with `enforceMac` (after the lease is published) an existing device's
 * MAC is put back to `mac` too.
 */
export async function ensureVxlanDevice(kernel: KernelPort, spec: VxlanDeviceSpec, mac: string, enforceMac: boolean, log: Logger): Promise<EnsureResult> {
  const repairs: Repair[] = [];
  let dev = await findLink(kernel, spec.name);
  if (dev) {
    const why = incompatibility(dev, spec);
    if (why) {
      log.warn({ device: spec.name, field: why }, `"${spec.name}" already exists with incompatible configuration: ${why}; recreating device`);
      await kernel.apply({ op: 'deleteLink', ifindex: dev.index });
      dev = undefined;
    }
  }
  let created = false;
  if (!dev) {
    const { name, vni, link, local, port, learning, gbp, mtu } = spec;
    await kernel.apply({ op: 'createVxlan', link: { name, mac, mtu, vni, link, local, port, learning, gbp } });
    repairs.push({ kind: 'device', description: `created ${spec.name} (VNI ${spec.vni}, MAC ${mac})` });
    created = true;
    dev = await findLink(kernel, spec.name);
    if (!dev) throw new Error(`${spec.name} was created but is not listed`);
  }
  const fixes: Array<[KernelOp, string]> = [];
  if (dev.mtu !== spec.mtu) fixes.push([{ op: 'setLinkMtu', ifindex: dev.index, mtu: spec.mtu }, `set the MTU of ${spec.name} to ${spec.mtu} (was ${dev.mtu})`]);
  if (enforceMac && dev.mac !== mac) fixes.push([{ op: 'setLinkMac', ifindex: dev.index, mac }, `restored the MAC of ${spec.name} to ${mac} (was ${dev.mac})`]);
  for (const [op, description] of fixes) {
    await kernel.apply(op);
    repairs.push({ kind: op.op === 'setLinkMtu' ? 'mtu' : 'device', description });
  }
  await disableAcceptRa(kernel, spec.name);
  if (!dev.up) {
    await kernel.apply({ op: 'setLinkUp', ifindex: dev.index });
    if (!created) repairs.push({ kind: 'device', description: `set ${spec.name} up` });
  }
  const now = await findLink(kernel, spec.name);
  if (!now) throw new Error(`${spec.name} disappeared while it was being configured`);
  return { device: now, repairs };
}
