/**
 * A kernel backend registered against the in-memory kernel: an eth0 with the
 * underlay address, a context whose subnet manager hands out `own` and keeps
 * what the backend published.
 */
import type { BackendContext } from '../../src/backends/backend';
import type { LeaseAttrs } from '../../src/lease/lease';
import { checkNetworkConfig, parseNetworkConfig } from '../../src/lease/network-config';
import { RecordingLogger } from '../../src/logging';
import { fixedLocalAddresses } from '../../src/routing/local-addresses';
import { Ipv4Net, parseIpv4 } from '../../src/util/ipv4';
import { MemoryKernel } from './memory-kernel';

export const OWN_SUBNET = Ipv4Net.parse('10.5.1.0/24');
export const UNDERLAY_ADDRESS = parseIpv4('192.168.1.1');

export function memoryBackendSetup(networkConfig: string): { kernel: MemoryKernel; log: RecordingLogger; ctx: BackendContext; published: LeaseAttrs[] } {
  const kernel = new MemoryKernel();
  const eth = kernel.addLink('eth0', { address: UNDERLAY_ADDRESS, prefixLen: 24 });
  const log = new RecordingLogger();
  const published: LeaseAttrs[] = [];
  const ctx: BackendContext = {
    network: checkNetworkConfig(parseNetworkConfig(networkConfig)),
    extIface: { name: 'eth0', index: eth.index, mtu: 1500, ifaceAddr: UNDERLAY_ADDRESS, ifaceAddr6: undefined, extAddr: UNDERLAY_ADDRESS, extAddr6: undefined },
    localAddresses: fixedLocalAddresses({ ipv4: [UNDERLAY_ADDRESS], ipv6: [], directedBroadcasts: [] }),
    subnets: {
      acquireLease: async (attrs) => {
        published.push(attrs);
        return { subnet: OWN_SUBNET, ipv6Subnet: undefined, attrs, expiration: undefined };
      },
    },
    log,
    signal: new AbortController().signal,
  };
  return { kernel, log, ctx, published };
}
