/**
 * One address family's view of a lease, so the kernel backends' plans are
 * written once for IPv4 and IPv6 (upstream's leases carry both: Subnet,
 * PublicIP and BackendData; IPv6Subnet, PublicIPv6 and BackendV6Data).
 */
import type { Lease } from '../lease/lease';
import type { IpFamily } from '../util/ip';
import type { Ipv4Net } from '../util/ipv4';
import type { Ipv6Net } from '../util/ipv6';
import type { AddrOf } from '../routing/rtnetlink';

export interface LeaseFamily<N extends Ipv4Net | Ipv6Net> {
  readonly family: IpFamily;
  /** "" for IPv4, "v6 " for IPv6: upstream's log wording ("adding v6 subnet"). */
  readonly label: string;
  /** The lease's subnet of this family, or undefined when it has none (a v6-only lease has 0.0.0.0/0). */
  subnet(lease: Lease): N | undefined;
  /** The peer's public address of this family, or undefined. */
  publicIp(lease: Lease): AddrOf<N> | undefined;
  /** The raw BackendData (IPv4) or BackendV6Data (IPv6). */
  backendData(lease: Lease): string | undefined;
}

export const IPV4: LeaseFamily<Ipv4Net> = {
  family: 4,
  label: '',
  subnet: (l) => (l.subnet.prefixLen === 0 && l.subnet.network === 0 ? undefined : l.subnet.canonical()),
  publicIp: (l) => l.attrs.publicIp,
  backendData: (l) => l.attrs.backendData,
};

export const IPV6: LeaseFamily<Ipv6Net> = {
  family: 6,
  label: 'v6 ',
  subnet: (l) => l.ipv6Subnet?.canonical(),
  publicIp: (l) => l.attrs.publicIpv6,
  backendData: (l) => l.attrs.backendV6Data,
};
