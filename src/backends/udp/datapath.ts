/**
 * Bringing up the udp datapath (upstream's
 * pkg/backend/udp/udp_network_amd64.go, newNetwork and configureIface): the
 * TUN device with one queue per worker, configured with the own subnet's
 * address /32, the MTU and the route for the Network (with inner IPv6 also
 * the v6 subnet's address /128 and the IPv6Network's route); the UDP sockets bound to
 * the interface address and Port; the forwarding threads started. The udp
 * backend and the lab's static node (lab/bin/static-udp-node.ts) both start
 * it this way.
 */
import { needsVnetHeader, type OffloadSettings } from '../../forwarder/offload';
import { UdpForwarder } from '../../forwarder/udp-forwarder';
import type { RtNetlink } from '../../routing/rtnetlink';
import { configureTunDevice, type TunDeviceConfig } from '../../routing/tun-device';
import { formatIpv4, Ipv4Net } from '../../util/ipv4';
import type { Ipv6Net } from '../../util/ipv6';

/** upstream's TUN name template (pkg/ip/tun.go, OpenTun with "flannel%d"): the kernel picks flannel0 normally. */
export const TUN_NAME_TEMPLATE = 'flannel%d';

/** The IPv4 networks of an IPv6-only datapath: nothing is inside them. */
const NO_IPV4 = Ipv4Net.parse('0.0.0.0/32');

export interface UdpDatapathSpec {
  /** TUN name template (default flannel%d). */
  tunTemplate?: string;
  /** The own subnet: its network address goes on the TUN and is the source of ICMP errors (absent: IPv6 only). */
  subnet: Ipv4Net | undefined;
  /** The flannel Network, routed to the TUN (absent: IPv6 only). */
  network: Ipv4Net | undefined;
  /** Inner IPv6: the own v6 subnet (its address on the TUN, the ICMPv6 source) and the IPv6Network routed to the TUN. */
  ipv6?: { subnet: Ipv6Net; network: Ipv6Net };
  /** The TUN's MTU. */
  mtu: number;
  /** The address the IPv4 underlay's sockets bind (the external interface's; absent: no IPv4 underlay). */
  bindAddress: string | undefined;
  /** The address the IPv6 underlay's sockets bind (absent: no IPv6 underlay). */
  bindAddress6?: string | undefined;
  port: number;
  /** Per-flow source ports above `port` (0: every datagram from `port`). */
  sourcePorts: number;
  /** Forwarding workers: TUN queues, sockets and threads. */
  workers: number;
  offload: OffloadSettings;
  /** The ingress policy's switches (UdpBackendConfig); its networks are `subnet` and `network`. */
  sourceCheck: boolean;
  allowExternalSources: boolean;
  /** This node advertises partial checksums (takesPartialChecksums): sent to and taken from leases that advertise them. */
  partialChecksums: boolean;
  /** This node's addresses (no inner packet may come from one); later changes go through UdpForwarder.update. */
  localAddresses: readonly string[];
  /** Busy polling after work, in microseconds (UdpBackendConfig.busyPollMicroseconds; absent or 0: never). */
  busyPollMicroseconds?: number;
  /** Tuning for tests and the benchmark (the datapath's defaults otherwise). */
  bufferSize?: number;
  batchSize?: number;
}

export interface RunningUdpDatapath {
  forwarder: UdpForwarder;
  /** The TUN's configuration, for reconciling it later. */
  tun: TunDeviceConfig;
  /** What configuring the TUN changed. */
  changes: string[];
  /** Per-flow source ports another socket holds, left out (IPv4 underlay, then IPv6). */
  busySourcePorts: number[];
  busySourcePorts6: number[];
}

/**
 * Opens, configures and starts; on a failure everything opened so far is
 * closed again. `forwarder` is for tests that supply their own addon.
 */
export async function startUdpDatapath(nl: RtNetlink, spec: UdpDatapathSpec, forwarder: UdpForwarder = new UdpForwarder()): Promise<RunningUdpDatapath> {
  try {
    const name = forwarder.openTun(spec.tunTemplate ?? TUN_NAME_TEMPLATE, { queues: spec.workers, vnetHdr: needsVnetHeader(spec.offload) });
    const tun: TunDeviceConfig = { name, subnet: spec.subnet, network: spec.network, mtu: spec.mtu, ...(spec.ipv6 ? { ipv6: spec.ipv6 } : {}) };
    const report = await configureTunDevice(nl, tun);
    const bound = forwarder.bindUdp({
      ...(spec.bindAddress !== undefined ? { address: spec.bindAddress } : {}),
      ...(spec.bindAddress6 !== undefined ? { address6: spec.bindAddress6 } : {}),
      port: spec.port,
      sockets: spec.workers,
      sourcePorts: spec.sourcePorts,
    });
    forwarder.update({
      policy: {
        sourceCheck: spec.sourceCheck,
        allowExternalSources: spec.allowExternalSources,
        partialChecksums: spec.partialChecksums,
        // IPv6 only: no IPv4 packet is ours (nothing lies in 0.0.0.0/32).
        ownSubnet: spec.subnet ?? NO_IPV4,
        network: spec.network ?? NO_IPV4,
        ...(spec.ipv6 ? { ownSubnet6: spec.ipv6.subnet, network6: spec.ipv6.network } : {}),
      },
      localAddresses: spec.localAddresses,
    });
    forwarder.start({
      icmpSource: formatIpv4((spec.subnet ?? NO_IPV4).network),
      offload: spec.offload,
      ...(spec.bufferSize !== undefined ? { bufferSize: spec.bufferSize } : {}),
      ...(spec.batchSize !== undefined ? { batchSize: spec.batchSize } : {}),
      ...(spec.busyPollMicroseconds ? { busyPollMicroseconds: spec.busyPollMicroseconds } : {}),
    });
    return { forwarder, tun, changes: report.changes, ...bound };
  } catch (e) {
    forwarder.close();
    throw e;
  }
}
