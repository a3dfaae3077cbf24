/**
 * The README demo: etcd and three nodes in network namespaces, each running
 * the real `bin/flanneld` with the udp backend, and a pod per node attached
 * from its subnet.env; then pod-to-pod traffic through flannel0.
 *
 *   npm run demo             set up, show traffic, wait for Ctrl-C, clean up
 *   npm run demo -- --once   the same without waiting (used by the tests)
 */
import { FlannelCluster } from './flannel-cluster';
import { Lab } from './netns';
import { ping } from './topology';
import { tcpTransfer } from './traffic';

function say(line = ''): void {
  process.stdout.write(line + '\n');
}

const NODES = 3;

async function main(): Promise<number> {
  const once = process.argv.includes('--once');
  if (process.getuid?.() !== 0) {
    say('The demo creates network namespaces and TUN devices: run it as root.');
    return 1;
  }
  const lab = new Lab();
  lab.onCleanup(() => say(`cleaned up: namespaces ${lab.prefix}*, etcd and the flanneld processes are gone`));
  try {
    say(`flannel-ts demo: etcd + ${NODES} nodes with the udp backend (namespaces ${lab.prefix}*)`);
    const config = { Network: '10.5.0.0/16', Backend: { Type: 'udp' } };
    const cluster = await FlannelCluster.create(lab, { nodes: NODES, config });
    say(`etcd at ${cluster.etcdEndpoint}, /coreos.com/network/config = ${JSON.stringify(config)}`);
    for (let i = 1; i <= NODES; i++) cluster.startNode(i);
    for (let i = 1; i <= NODES; i++) await cluster.waitSubnet(i);
    say();
    for (let i = 1; i <= NODES; i++) {
      const spec = cluster.topology.nodes[i - 1]!;
      const pod = await cluster.attachPod(i);
      const env = cluster.nodes[i - 1]!.subnetEnv()!;
      say(`node${i} (namespace ${spec.ns}, ${spec.underlayAddress} on ${spec.underlayIf}): flanneld leased ${spec.podSubnet.toString()}, ` +
        `flannel0 MTU ${env.get('FLANNEL_MTU')}; pod${i} (${pod.ns}) is ${pod.address}`);
    }
    say();
    say('leases in etcd:');
    say((await cluster.etcdctl('get', '--prefix', '/coreos.com/network/subnets')).trim().replace(/^/gm, '  '));
    say();
    const pods = cluster.topology.nodes.map((n) => n.pod);
    let allOk = true;
    for (const [a, ai] of pods.map((p, i) => [p, i + 1] as const)) {
      for (const [b, bi] of pods.map((p, i) => [p, i + 1] as const)) {
        if (a === b) continue;
        const ok = await ping(lab, a.ns, b.address, 2);
        allOk &&= ok;
        say(ok ? `pod${ai} reaches pod${bi} (${b.address}) through flannel0: ping ok` : `pod${ai} could NOT reach pod${bi} (${b.address})`);
      }
    }
    if (!allOk) return 1;
    const t = await tcpTransfer(lab, pods[0]!.ns, pods[1]!.ns, pods[1]!.address, 5201, 50_000_000);
    const intact = t.sentSha256 === t.receivedSha256;
    say(`TCP pod1 -> pod2: ${(t.bytes / 1e6).toFixed(0)} MB in ${t.seconds.toFixed(2)} s ` +
      `(${((t.bytes * 8) / t.seconds / 1e9).toFixed(2)} Gbit/s), sha256 ${intact ? 'matches' : 'DIFFERS'}`);
    if (!intact) return 1;
    if (!once) {
      say();
      say('Try it yourself, e.g.:');
      say(`  ip netns exec ${pods[0]!.ns} ping ${pods[2]!.address}`);
      say(`  ip netns exec ${cluster.topology.nodes[0]!.ns} ip route; ip netns exec ${cluster.topology.nodes[0]!.ns} ip addr show flannel0`);
      say(`  cat ${cluster.subnetFileOf(1)}`);
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
