/**
 * The own subnet's address on a device of a kernel backend (vxlan's
 * flannel.<VNI>, ipip's flannel.ipip), as upstream's pkg/ip/iface.go keeps
 * it, through the KernelPort so it runs against the in-memory kernel too.
 */
import type { KernelPort } from '../routing/kernel-port';
import type { Repair } from '../routing/reconciler';
import type { LinkDetails } from '../routing/rtnetlink';
import { formatIpv4, type Ipv4Net } from '../util/ipv4';
import { formatIpv6, isLinkLocal6, type Ipv6Net } from '../util/ipv6';

/**
 * upstream's EnsureV4AddressOnLink (pkg/ip/iface.go): the own subnet's
 * network address /32 on the device, and no other address of the device
 * inside the Network.
 */
export async function ensureV4AddressOnLink(kernel: KernelPort, dev: LinkDetails, subnet: Ipv4Net, network: Ipv4Net): Promise<Repair[]> {
  const repairs: Repair[] = [];
  const want = subnet.network;
  const addrs = await kernel.listAddresses(dev.index);
  for (const a of addrs) {
    if (a.address === want && a.prefixLen === 32) continue;
    if (network.contains(a.address)) {
      await kernel.apply({ op: 'deleteAddress', ifindex: dev.index, address: a.address, prefixLen: a.prefixLen });
      repairs.push({ kind: 'address', description: `removed ${formatIpv4(a.address)}/${a.prefixLen} from ${dev.name}` });
    }
  }
  if (!addrs.some((a) => a.address === want && a.prefixLen === 32)) {
    await kernel.apply({ op: 'addAddress', ifindex: dev.index, address: want, prefixLen: 32 });
    repairs.push({ kind: 'address', description: `added ${formatIpv4(want)}/32 to ${dev.name}` });
  }
  return repairs;
}


/**
 * upstream's EnsureV6AddressOnLink (pkg/ip/iface.go): the own IPv6 subnet's
 * network address /128 on the device, and no other address of the device
 * but link-local ones (upstream removes every other global address; here
 * only those inside the IPv6 Network, as the IPv4 variant does).
 */
export async function ensureV6AddressOnLink(kernel: KernelPort, dev: LinkDetails, subnet: Ipv6Net, network: Ipv6Net): Promise<Repair[]> {
  const repairs: Repair[] = [];
  const want = subnet.network;
  const addrs = await kernel.listAddresses6(dev.index);
  for (const a of addrs) {
    if ((a.address === want && a.prefixLen === 128) || isLinkLocal6(a.address)) continue;
    if (network.contains(a.address)) {
      await kernel.apply({ op: 'deleteAddress', ifindex: dev.index, address: a.address, prefixLen: a.prefixLen });
      repairs.push({ kind: 'address', description: `removed ${formatIpv6(a.address)}/${a.prefixLen} from ${dev.name}` });
    }
  }
  if (!addrs.some((a) => a.address === want && a.prefixLen === 128)) {
    await kernel.apply({ op: 'addAddress', ifindex: dev.index, address: want, prefixLen: 128 });
    repairs.push({ kind: 'address', description: `added ${formatIpv6(want)}/128 to ${dev.name}` });
  }
  return repairs;
}
