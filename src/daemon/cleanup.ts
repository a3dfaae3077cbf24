/**
 * `flanneld cleanup` (beyond upstream): removes from this node everything
 * flannel-ts creates and leaves behind on purpose when it stops
 * (docs/compatibility.md §8.7): the vxlan devices flannel.<VNI> and flannel-v6.<VNI> (their
 * neighbours and FDB entries go with them), a leftover flannel<N> TUN, the
 * WireGuard devices flannel-wg and flannel-wg-v6 (a wireguard-go running one ends with it), every route of ours
 * of either family (RTPROT_FLANNEL_TS: host-gw and DirectRouting routes, the blackhole
 * route), the iptables rules
 * and chains of docs/compatibility.md §8.1-8.2 for both families and the nftables tables of docs/compatibility.md §8.3.
 * Returns one line per thing removed. Run it with flanneld stopped.
 */
import type { Backend } from '../backends/backend';
import { allBackends } from '../backends/index';
import { describeRoute, type RouteInfo, type RouteSpec, RT_TABLE_MAIN, RTPROT_FLANNEL_TS, RTPROT_KERNEL, type RtNetlink } from '../routing/rtnetlink';
import type { IpNet } from '../util/ip';
import { CommandError, type CommandRunner } from '../util/command';
import { Iptables } from '../traffic/iptables';
import { Nftables } from '../traffic/nftables';
import { KernelFastPath } from '../forwarder/fast-path';
import { errorText } from '../util/errors';

export interface CleanupResult {
  removed: string[];
  /** Parts that could not be cleaned, with the reason (the rest was still done). */
  problems: string[];
}

/** `backends` say which devices are theirs (default: every backend flannel-ts has). */
export async function cleanupNode(nl: RtNetlink, runner: CommandRunner, backends: readonly Backend[] = allBackends()): Promise<CleanupResult> {
  const removed: string[] = [];
  const problems: string[] = [];
  const attempt = async (what: string, f: () => Promise<void>): Promise<void> => {
    try {
      await f();
    } catch (e) {
      if (e instanceof CommandError && e.code === 'ENOENT') return; // no such tool: nothing of ours there
      problems.push(`${what}: ${errorText(e)}`);
    }
  };

  await attempt('devices', async () => {
    const names = new Map((await nl.listLinks()).map((l) => [l.index, l.name]));
    // IPv6: not the kernel's own routes (RTPROT_KERNEL, e.g. fe80::/64 on every device with a MAC).
    const routes: Array<{ oif: number | undefined }> = [...(await nl.listRoutes(RT_TABLE_MAIN)), ...(await nl.listRoutes6(RT_TABLE_MAIN)).filter((r) => r.protocol !== RTPROT_KERNEL)];
    for (const link of await nl.listLinkDetails()) {
      const owner = backends.find((b) => b.ownsDevice(link));
      if (!owner) continue;
      const vxlan = link.kind === 'vxlan';
      const neighbors = vxlan ? [...(await nl.listNeighbors(link.index)), ...(await nl.listNeighbors6(link.index))].filter((n) => n.permanent).length : 0;
      const fdb = vxlan ? (await nl.listFdb(link.index)).filter((f) => f.permanent && f.self).length : 0;
      const through = routes.filter((r) => r.oif === link.index).length;
      const also = owner.removeDevice ? await owner.removeDevice(link, () => nl.deleteLink(link.index)) : (await nl.deleteLink(link.index), []);
      const withWhat = vxlan ? ` with ${neighbors} neighbour(s), ${fdb} FDB entr${fdb === 1 ? 'y' : 'ies'} and ${through} route(s)` : ` with ${through} route(s)`;
      removed.push(`device ${names.get(link.index) ?? link.name} (${link.kind})${withWhat}`, ...also);
    }
  });

  // The udp backend's kernel fast path: its egress program goes with flannel0;
  // its ingress program on the external interface stays if flanneld died
  // without detaching it, and would hand datagrams to a flannel0 that is gone.
  await attempt('tc filters', async () => {
    for (const link of await nl.listLinks()) {
      if (KernelFastPath.removeFilter(link.index, 'ingress')) removed.push(`tc ingress filter flannel_ingress on ${link.name}`);
      if (KernelFastPath.removeFilter(link.index, 'egress')) removed.push(`tc egress filter flannel_egress on ${link.name}`);
    }
  });

  await attempt('routes', async () => {
    const names = new Map((await nl.listLinks()).map((l) => [l.index, l.name]));
    const ours: Array<RouteInfo<IpNet>> = [...(await nl.listRoutes(RT_TABLE_MAIN)), ...(await nl.listRoutes6(RT_TABLE_MAIN))];
    for (const r of ours) {
      if (r.protocol !== RTPROT_FLANNEL_TS) continue;
      const spec = { dst: r.dst, type: r.type === 'other' ? undefined : r.type, priority: r.priority, ...(r.gateway !== undefined ? { gateway: r.gateway } : {}), ...(r.oif !== undefined ? { oif: r.oif } : {}) } as RouteSpec;
      await nl.deleteRoute(spec);
      removed.push(`route ${describeRoute(spec, r.oif !== undefined ? names.get(r.oif) : undefined)} proto ${RTPROT_FLANNEL_TS}`);
    }
  });

  for (const family of ['ipv4', 'ipv6'] as const) {
    await attempt(`${family} iptables rules`, async () => {
      for (const line of await new Iptables(runner, family).removeAll()) removed.push(`rule ${line}`);
    });
  }
  await attempt('nftables tables', async () => {
    const nft = new Nftables(runner);
    if (!(await nft.usable())) return;
    for (const t of await nft.deleteTables()) removed.push(`nftables ${t}`);
  });
  return { removed, problems };
}
