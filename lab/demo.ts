/**
 * The README demo: two nodes and two pods in network namespaces, our udp
 * datapath in each node, pod-to-pod traffic through flannel0.
 *
 *   npm run demo             set up, show traffic, wait for Ctrl-C, clean up
 *   npm run demo -- --once   the same without waiting (used by the tests)
 */
import { Lab } from './netns';
import { startStaticUdpNodes } from './static-udp-nodes';
import { buildCluster, ping } from './topology';
import { tcpTransfer } from './traffic';

function say(line = ''): void {
  process.stdout.write(line + '\n');
}

async function main(): Promise<number> {
  const once = process.argv.includes('--once');
  if (process.getuid?.() !== 0) {
    say('The demo creates network namespaces and TUN devices: run it as root.');
    return 1;
  }
  const lab = new Lab();
  lab.onCleanup(() => say(`cleaned up: namespaces ${lab.prefix}* and their processes are gone`));
  try {
    say(`flannel-ts udp demo (namespaces ${lab.prefix}*)`);
    const cluster = await buildCluster(lab, { nodes: 2 });
    const nodes = await startStaticUdpNodes(lab, cluster);
    say();
    for (const [i, n] of cluster.nodes.entries()) {
      say(`node${n.index}: namespace ${n.ns}, underlay ${n.underlayAddress}, ${nodes[i]!.tun} (MTU ${nodes[i]!.mtu}) ` +
        `for subnet ${n.podSubnet.toString()}, datapath on UDP ${n.underlayAddress}:8285`);
      say(`  pod${n.index}: namespace ${n.pod.ns}, address ${n.pod.address}`);
    }
    const [a, b] = [cluster.nodes[0]!, cluster.nodes[1]!];
    say();
    const ok = await ping(lab, a.pod.ns, b.pod.address, 3);
    say(ok ? `pod1 (${a.pod.address}) reaches pod2 (${b.pod.address}) through flannel0: ping ok`
           : `pod1 (${a.pod.address}) could NOT reach pod2 (${b.pod.address})`);
    if (!ok) return 1;
    const t = await tcpTransfer(lab, a.pod.ns, b.pod.ns, b.pod.address, 5201, 50_000_000);
    const intact = t.sentSha256 === t.receivedSha256;
    say(`TCP pod1 -> pod2: ${(t.bytes / 1e6).toFixed(0)} MB in ${t.seconds.toFixed(2)} s ` +
      `(${((t.bytes * 8) / t.seconds / 1e9).toFixed(2)} Gbit/s), sha256 ${intact ? 'matches' : 'DIFFERS'}`);
    const s = await nodes[0]!.stats();
    say(`node1 datapath: ${s.counters.egress_sent_packets} datagrams sent, ${s.counters.ingress_written_packets} packets delivered, ` +
      `${s.routes} route(s), drops: no_route ${s.counters.egress_drop_no_route}, unknown_source ${s.counters.ingress_drop_unknown_source}`);
    if (!intact) return 1;
    if (!once) {
      say();
      say('Try it yourself, e.g.:');
      say(`  ip netns exec ${a.pod.ns} ping ${b.pod.address}`);
      say(`  ip netns exec ${a.ns} ip route; ip netns exec ${a.ns} ip addr show flannel0`);
      say('Press Ctrl-C to stop and clean up.');
      await new Promise<void>((resolve) => {
        process.once('SIGINT', () => resolve());
        process.once('SIGTERM', () => resolve());
      });
    }
    return 0;
  } finally {
    await lab.cleanup();
  }
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`demo failed: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
    process.exit(1);
  },
);
