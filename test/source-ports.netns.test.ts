/**
 * Per-flow source ports on the wire, with real TUN devices in namespaces
 * (lab/bin/static-udp-node): every datagram goes to Port, from one of
 * Port+1 .. Port+SourcePorts chosen by its inner flow, so one flow always
 * uses one port and many flows use many; SourcePorts 0 sends everything from
 * Port, as upstream; a port of the range that another socket holds is left
 * out (fewer ports, never a failed start); nothing sent to the source ports
 * is read or queued: their socket filter discards it, and it is counted.
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

  test('a port of the range another socket holds is left out: the node starts and never sends from it', { timeout: 60_000 }, async () => {
    const lab = new Lab();
    try {
      const cluster = await buildCluster(lab, { nodes: 2 });
      const [a, b] = cluster.nodes as [NodeSpec, NodeSpec];
      const taken = PORT + 5;
      const holder = lab.spawn(a.ns, 'python3', ['-c', `import socket,time\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.bind(("${a.underlayAddress}",${taken}))\nprint("bound",flush=True)\ntime.sleep(60)`]);
      await new Promise<void>((resolve) => holder.stdout!.once('data', () => resolve()));
      const [nodeA] = await startStaticUdpNodes(lab, cluster);
      assert.deepEqual(nodeA!.busySourcePorts, [taken]);
      const cap = await Capture.start(lab, a.ns, a.underlayIf, `udp and dst port ${PORT} and src host ${a.underlayAddress}`, 100_000);
      for (let k = 0; k < 60; k++) await sendUdpDatagram(lab, a.pod.ns, a.pod.address, b.pod.address, 7000 + k, Buffer.from(`flow ${k}`));
      const used = new Set([...portsByFlow(await cap.packets(1000), a.underlayAddress).values()].flatMap((ports) => [...ports]));
      assert.ok(!used.has(taken), `a datagram left from the taken port ${taken}`);
      assert.ok(used.size >= 10, `60 flows used only ${used.size} of the 15 free ports`);
    } finally {
      await lab.cleanup();
    }
  });

  test('datagrams sent to the source ports are never queued, and are counted', { timeout: 60_000 }, async () => {
    const lab = new Lab();
    try {
      const { nodes, a, b } = await twoNodes(lab);
      const before = (await nodes[0]!.stats()).counters.ingress_drop_source_port;
      for (let k = 1; k <= 16; k++) {
        for (let i = 0; i < 5; i++) await sendUdpDatagram(lab, b.ns, b.underlayAddress, a.underlayAddress, PORT + k, Buffer.alloc(1200, k));
      }
      const after = (await nodes[0]!.stats()).counters.ingress_drop_source_port;
      assert.equal(after - before, 80, 'every datagram to Port+1..Port+16 is discarded and counted');
      // Nothing waits in any socket's receive queue (ss: Recv-Q is the first number after the state).
      const ss = (await lab.exec(a.ns, 'ss', ['-uanH', `sport >= :${PORT + 1} and sport <= :${PORT + 16}`])).stdout;
      const queued = ss.split('\n').filter((l) => l.trim() !== '').map((l) => Number(l.trim().split(/\s+/)[1]));
      assert.equal(queued.length, 16, ss);
      assert.deepEqual(queued.filter((q) => q !== 0), [], ss);
    } finally {
      await lab.cleanup();
    }
  });
});
