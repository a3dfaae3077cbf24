/**
 * Per-flow source ports on the wire, with real TUN devices in namespaces
 * (lab/bin/static-udp-node): every datagram goes to Port, from one of
 * Port+1 .. Port+SourcePorts chosen by its inner flow, so one flow always
 * uses one port and many flows use many; SourcePorts 0 sends everything from
 * Port, as upstream; a taken port of the range is a startup error naming the
 * option.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Capture } from '../lab/capture';
import { Lab } from '../lab/netns';
import { ipv4Fields } from '../lab/packets';
import { startStaticUdpNodes } from '../lab/static-udp-nodes';
import { buildCluster, type NodeSpec } from '../lab/topology';
import { sendUdpDatagram, tcpTransfer } from '../lab/traffic';
import { ROOT_SUITE } from './helpers/root';

const PORT = 8285;

/** Outer source port by inner flow ("proto src:sport > dst:dport"), from datagrams captured on the underlay. */
function portsByFlow(datagrams: Buffer[], from: string): Map<string, Set<number>> {
  const flows = new Map<string, Set<number>>();
  for (const outer of datagrams) {
    const o = ipv4Fields(outer);
    if (o.src !== from) continue;
    const udp = outer.subarray(o.headerLen);
    assert.equal(udp.readUInt16BE(2), PORT, 'every datagram goes to Port');
    const inner = udp.subarray(8);
    const i = ipv4Fields(inner);
    const l4 = inner.subarray(i.headerLen);
    const flow = `${i.protocol} ${i.src}:${l4.readUInt16BE(0)} > ${i.dst}:${l4.readUInt16BE(2)}`;
    const ports = flows.get(flow) ?? new Set<number>();
    ports.add(udp.readUInt16BE(0));
    flows.set(flow, ports);
  }
  return flows;
}

async function twoNodes(lab: Lab, sourcePorts?: number) {
  const cluster = await buildCluster(lab, { nodes: 2 });
  const nodes = await startStaticUdpNodes(lab, cluster, sourcePorts === undefined ? {} : { sourcePorts });
  return { nodes, a: cluster.nodes[0]! as NodeSpec, b: cluster.nodes[1]! as NodeSpec };
}

describe('udp per-flow source ports', ROOT_SUITE, () => {
  test('by default each flow leaves from one of Port+1..Port+16, and 40 flows use most of them', { timeout: 60_000 }, async () => {
    const lab = new Lab();
    try {
      const { a, b } = await twoNodes(lab);
      const cap = await Capture.start(lab, a.ns, a.underlayIf, `udp and dst port ${PORT} and src host ${a.underlayAddress}`, 100_000);
      const tcp = tcpTransfer(lab, a.pod.ns, b.pod.ns, b.pod.address, 5001, 2_000_000);
      // 40 one-datagram flows: each send binds a fresh ephemeral port.
      for (let k = 0; k < 40; k++) await sendUdpDatagram(lab, a.pod.ns, a.pod.address, b.pod.address, 7000 + k, Buffer.from(`flow ${k}`));
      assert.equal((await tcp).receivedSha256, (await tcp).sentSha256);
      const flows = portsByFlow(await cap.packets(1000), a.underlayAddress);
      const used = new Set<number>();
      for (const [flow, ports] of flows) {
        assert.equal(ports.size, 1, `${flow} left from one port, not ${[...ports].join(', ')}`);
        for (const p of ports) {
          assert.ok(p > PORT && p <= PORT + 16, `${flow}: source port ${p}`);
          used.add(p);
        }
      }
      assert.ok(flows.size >= 41, `captured ${flows.size} flows`);
      assert.ok(used.size >= 10, `40 flows used only ${used.size} of the 16 ports`);
    } finally {
      await lab.cleanup();
    }
  });

  test('SourcePorts 0: everything from Port, as upstream', async () => {
    const lab = new Lab();
    try {
      const { a, b } = await twoNodes(lab, 0);
      const cap = await Capture.start(lab, a.ns, a.underlayIf, `udp and dst port ${PORT} and src host ${a.underlayAddress}`, 8);
      for (let k = 0; k < 8; k++) await sendUdpDatagram(lab, a.pod.ns, a.pod.address, b.pod.address, 7000 + k, Buffer.from(`flow ${k}`));
      const ports = new Set([...portsByFlow(await cap.packets(2000), a.underlayAddress).values()].flatMap((s) => [...s]));
      assert.deepEqual([...ports], [PORT]);
    } finally {
      await lab.cleanup();
    }
  });

  test('a taken port of the range fails the start with the option to change', async () => {
    const lab = new Lab();
    try {
      const cluster = await buildCluster(lab, { nodes: 2 });
      const a = cluster.nodes[0]!;
      const holder = lab.spawn(a.ns, 'python3', ['-c', `import socket,time\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.bind(("${a.underlayAddress}",${PORT + 5}))\nprint("bound",flush=True)\ntime.sleep(60)`]);
      await new Promise<void>((resolve) => holder.stdout!.once('data', () => resolve()));
      await assert.rejects(
        startStaticUdpNodes(lab, cluster),
        /failed to bind the udp source ports 192\.168\.100\.1:8286-8301: bind source port: .*EADDRINUSE.*set "SourcePorts" in the udp backend config to fewer ports or to 0/s,
      );
    } finally {
      await lab.cleanup();
    }
  });
});
