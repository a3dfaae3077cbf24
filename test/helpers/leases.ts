/** Leases for tests: an IPv4 subnet, a PublicIP, and optionally a backend type and data. */
import type { Lease } from '../../src/lease/lease';
import { Ipv4Net, parseIpv4 } from '../../src/util/ipv4';
import { Ipv6Net, tryParseIpv6 } from '../../src/util/ipv6';

export function testLease(cidr: string, publicIp: string, backendType = '', backendData?: string): Lease {
  return {
    subnet: Ipv4Net.parse(cidr),
    ipv6Subnet: undefined,
    attrs: { publicIp: parseIpv4(publicIp), publicIpv6: undefined, backendType, backendData, backendV6Data: undefined },
    expiration: undefined,
  };
}

/**
 * A lease with an IPv6 part (upstream's dual-stack lease): IPv6Subnet,
 * PublicIPv6 and BackendV6Data. `cidr` "0.0.0.0/0" makes it v6-only.
 */
export function testLease6(
  cidr: string,
  publicIp: string,
  cidr6: string,
  publicIpv6: string,
  backendType = '',
  backendData?: string,
  backendV6Data?: string,
): Lease {
  const l = testLease(cidr, publicIp, backendType, backendData);
  return {
    ...l,
    ipv6Subnet: Ipv6Net.tryParse(cidr6)!,
    attrs: { ...l.attrs, publicIpv6: tryParseIpv6(publicIpv6)!, backendV6Data },
  };
}
