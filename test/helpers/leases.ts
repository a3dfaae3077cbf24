/** Leases for tests: an IPv4 subnet, a PublicIP, and optionally a backend type and data. */
import type { Lease } from '../../src/lease/lease';
import { Ipv4Net, parseIpv4 } from '../../src/util/ipv4';

export function testLease(cidr: string, publicIp: string, backendType = '', backendData?: string): Lease {
  return {
    subnet: Ipv4Net.parse(cidr),
    ipv6Subnet: undefined,
    attrs: { publicIp: parseIpv4(publicIp), publicIpv6: undefined, backendType, backendData, backendV6Data: undefined },
    expiration: undefined,
  };
}
