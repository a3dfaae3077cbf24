/**
 * A udp-backend node with static routes, for tests, the benchmark and the
 * two-node demo: it runs our datapath (src/forwarder) and configures flannel0
 * with our routing code (src/routing), without etcd. Run it inside the node's
 * namespace:
 *
 *   node out/lab/bin/static-udp-node.js '<json options>'
 *
 * It prints {"event":"ready","tun":"flannel0"} when forwarding, then serves
 * line-delimited JSON requests on stdin: {"id":1,"cmd":"stats"},
 * {"cmd":"setRoutes","routes":[...]}, {"cmd":"setPeers","peers":[...]},
 * {"cmd":"setIngressPolicy","sourceCheck":false,"allowExternalSources":false},
 * {"cmd":"setLocalAddresses","addresses":["192.168.50.1"]},
 * {"cmd":"drainRefusals"},
 * {"cmd":"reconfigure"} (runs the flannel0 configuration again and returns what it changed).
 * SIGTERM, SIGINT or the end of stdin stop it.
 */
import { DEFAULT_SOURCE_PORTS, defaultWorkers, tunMtu } from '../../src/backends/udp/config';
import { type StaticUdpNodeOptions, staticNodeOffload, staticNodeTakesPartialChecksums } from '../static-udp-options';
import { startUdpDatapath } from '../../src/backends/udp/datapath';
import { RtNetlink } from '../../src/routing/rtnetlink';
import { configureTunDevice } from '../../src/routing/tun-device';
import { formatIpv4, Ipv4Net } from '../../src/util/ipv4';
import type { KernelFastPath } from '../../src/forwarder/fast-path';
import { boundSourcePorts, fastRouteChanges, startFastPath } from '../../src/backends/udp/fast-path';
import { useTestAddon } from '../test-addon';
import { errorText } from '../../src/util/errors';

function out(msg: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify(msg) + '\n');
}

async function main(): Promise<void> {
  const opts = JSON.parse(process.argv[2] ?? '{}') as StaticUdpNodeOptions;
  const port = opts.port ?? 8285;
  const subnet = Ipv4Net.parse(opts.subnet);
  const network = Ipv4Net.parse(opts.network);
  const toRoutes = (rs: StaticUdpNodeOptions['routes']) =>
    rs.map((r) => ({ subnet: Ipv4Net.parse(r.subnet), peer: r.peer, port, partialChecksums: r.partialChecksums ?? false, kernelDecap: r.kernelDecap ?? false }));
  const toPeers = (rs: StaticUdpNodeOptions['routes']) => {
    const peers = new Map<string, boolean>();
    for (const r of rs) peers.set(r.peer, (peers.get(r.peer) ?? true) && (r.partialChecksums ?? false));
    return [...peers].map(([address, partialChecksums]) => ({ address, partialChecksums }));
  };
  const partialChecksums = staticNodeTakesPartialChecksums(opts);

  if (opts.testFaults && opts.testFaults.length > 0) useTestAddon(opts.testFaults);
  const nl = RtNetlink.open();
  const workers = opts.workers ?? defaultWorkers();
  const offload = staticNodeOffload(opts);
  const sourcePorts = opts.sourcePorts ?? DEFAULT_SOURCE_PORTS;
  const { forwarder: fwd, tun: deviceConfig, changes, busySourcePorts } = await startUdpDatapath(nl, {
    ...(opts.tunTemplate !== undefined ? { tunTemplate: opts.tunTemplate } : {}),
    subnet,
    network,
    mtu: tunMtu({ mtu: opts.udpMtu }, opts.underlayMtu ?? 1500),
    bindAddress: opts.bindAddress,
    port,
    sourcePorts,
    workers,
    offload,
    sourceCheck: opts.sourceCheck ?? true,
    allowExternalSources: opts.allowExternalSources ?? false,
    partialChecksums,
    localAddresses: opts.localAddresses ?? [opts.bindAddress],
    ...(opts.bufferSize !== undefined ? { bufferSize: opts.bufferSize } : {}),
    ...(opts.batchSize !== undefined ? { batchSize: opts.batchSize } : {}),
    ...(opts.busyPollMicroseconds !== undefined ? { busyPollMicroseconds: opts.busyPollMicroseconds } : {}),
  });
  fwd.update({ routes: toRoutes(opts.routes), peers: opts.peers ?? toPeers(opts.routes) });
  let fastPath: KernelFastPath | undefined;
  if (opts.ebpf) {
    // The interface that holds the bind address is the external one.
    const ext = (await nl.listAddresses()).find((a) => formatIpv4(a.address) === opts.bindAddress);
    if (!ext) throw new Error(`no interface has ${opts.bindAddress}`);
    fastPath = startFastPath({
      tunIfindex: (await nl.getLink(deviceConfig.name))!.index,
      extIfindex: ext.index,
      localAddress: opts.bindAddress,
      ownSubnet: subnet,
      port,
      sourcePorts: boundSourcePorts(port, sourcePorts, busySourcePorts),
      localAddresses: opts.localAddresses ?? [opts.bindAddress],
    });
    fastPath.update(fastRouteChanges(toRoutes(opts.routes), []));
  }
  let fastRoutesSet = new Set(opts.routes.map((r) => Ipv4Net.parse(r.subnet).canonical().toString()));
  let stopping = false;
  const stop = (code: number) => {
    if (stopping) return;
    stopping = true;
    fastPath?.close();
    fwd.close();
    nl.close();
    process.exit(code);
  };
  process.on('SIGTERM', () => stop(0));
  process.on('SIGINT', () => stop(0));
  out({ event: 'ready', tun: deviceConfig.name, mtu: deviceConfig.mtu, changes, pid: process.pid, busySourcePorts });

  let buf = '';
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (chunk: string) => {
    buf += chunk;
    let nl2: number;
    while ((nl2 = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl2);
      buf = buf.slice(nl2 + 1);
      let req: Record<string, unknown>;
      try {
        req = JSON.parse(line) as Record<string, unknown>;
      } catch {
        continue;
      }
      const id = req['id'];
      try {
        switch (req['cmd']) {
          case 'stats': {
            const s = fwd.stats();
            out({
              id,
              counters: fastPath ? { ...s.counters, ...fastPath.counters() } : s.counters,
              routes: s.routes,
              peers: s.peers,
              running: s.running,
              workers: s.workers,
              offload: s.offload,
            });
            break;
          }
          case 'setRoutes': {
            const routes = toRoutes(req['routes'] as StaticUdpNodeOptions['routes']);
            fwd.update({ routes });
            if (fastPath) {
              // The fast path's table made equal: what is set, and what went.
              const keep = new Set(routes.map((r) => r.subnet.toString()));
              fastPath.update({ ...fastRouteChanges(routes, []), removeRoutes: [...fastRoutesSet].filter((k) => !keep.has(k)).map((k) => Ipv4Net.parse(k)) });
              fastRoutesSet = keep;
            }
            out({ id, ok: true });
            break;
          }
            break;
          case 'setPeers':
            fwd.update({ peers: req['peers'] as string[] });
            out({ id, ok: true });
            break;
          case 'setIngressPolicy':
            fwd.update({
              policy: {
                sourceCheck: req['sourceCheck'] !== false,
                allowExternalSources: req['allowExternalSources'] === true,
                partialChecksums,
                ownSubnet: subnet,
                network,
              },
            });
            out({ id, ok: true });
            break;
          case 'setLocalAddresses':
            fwd.update({ localAddresses: req['addresses'] as string[] });
            fastPath?.update({ localAddresses: req['addresses'] as string[] });
            out({ id, ok: true });
            break;
          case 'drainRefusals':
            out({ id, refusals: fwd.drainRefusals() });
            break;
          case 'reconfigure':
            configureTunDevice(nl, deviceConfig).then(
              (r) => out({ id, changes: r.changes }),
              (e: unknown) => out({ id, error: errorText(e) }),
            );
            break;
          default:
            out({ id, error: `unknown command ${String(req['cmd'])}` });
        }
      } catch (e) {
        out({ id, error: errorText(e) });
      }
    }
  });
  process.stdin.on('end', () => stop(0));
}

main().catch((e: unknown) => {
  process.stderr.write(`static-udp-node: ${errorText(e)}\n`);
  out({ event: 'error', message: errorText(e), name: e instanceof Error ? e.name : '' });
  process.exit(1);
});
