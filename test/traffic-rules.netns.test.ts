/**
 * Traffic rules with the real iptables (iptables-nft) and nft, each test in
 * a namespace of its own (iptables and nftables state is per namespace):
 * the goldens of docs/compatibility.md §8.1-8.3 exactly, a rule deleted by hand restored
 * within one resync, no duplicates on a second start, the other mode's
 * state removed at start, the old network's rules removed.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Lab } from '../lab/netns';
import { RecordingLogger } from '../src/logging';
import type { RtNetlink } from '../src/routing/rtnetlink';
import { SystemCommandRunner } from '../src/util/command';
import { type FamilyNetworks, TrafficRules, type TrafficOptions } from '../src/traffic/traffic-manager';
import { eventually } from './helpers/eventually';
import { ROOT_SUITE } from './helpers/root';
import { filterGolden, natGolden } from './helpers/traffic-goldens';

const RESYNC_MS = 300;
const NET = '10.5.0.0/16';
const POD = '10.5.72.0/24';

const FILTER_GOLDEN = filterGolden(NET);

const NFT_GOLDEN = [
  'table ip flannel-ipv4 {',
  '\tcomment "rules for flannel-ipv4"',
  '\tchain postrtg {',
  '\t\tcomment "chain to manage traffic masquerading by flannel"',
  '\t\ttype nat hook postrouting priority srcnat; policy accept;',
  '\t\tmeta mark 0x00004000 return',
  '\t\tip saddr 10.5.72.0/24 ip daddr 10.5.0.0/16 return',
  '\t\tip saddr 10.5.0.0/16 ip daddr 10.5.72.0/24 return',
  '\t\tip saddr != 10.5.72.0/24 ip daddr 10.5.0.0/16 return',
  '\t\tip saddr 10.5.0.0/16 ip daddr != 224.0.0.0/4 masquerade fully-random',
  '\t\tip saddr != 10.5.0.0/16 ip daddr 10.5.0.0/16 masquerade fully-random',
  '\t}',
  '',
  '\tchain forward {',
  '\t\tcomment "chain to accept flannel traffic"',
  '\t\ttype filter hook forward priority filter; policy accept;',
  '\t\tip saddr 10.5.0.0/16 accept',
  '\t\tip daddr 10.5.0.0/16 accept',
  '\t}',
  '}',
  'table ip6 flannel-ipv6 {',
  '\tcomment "rules for flannel-ipv6"',
  '}',
];

/** The blackhole route needs a netlink socket; these tests leave it off, so none is used. */
const NO_NETLINK = {} as RtNetlink;

describe('traffic rules with real iptables and nft', ROOT_SUITE, () => {
  let lab: Lab;
  const running: TrafficRules[] = [];

  before(() => {
    lab = new Lab();
  });
  after(async () => {
    for (const t of running) await t.stop();
    await lab?.cleanup();
  });

  function v4(net = NET, pod = POD, previous?: { net: string; pod: string }): FamilyNetworks {
    return { family: 'ipv4', network: net, subnet: pod, previousNetwork: previous?.net, previousSubnet: previous?.pod };
  }

  async function start(ns: string, opts: Partial<TrafficOptions>, log = new RecordingLogger()): Promise<TrafficRules> {
    const t = await TrafficRules.start(
      { nftables: false, ipMasq: true, fullyRandomDisable: false, forwardRules: true, blackholeRoute: false, resyncMs: RESYNC_MS, families: [v4()], blackholeSubnets: [], ...opts },
      new SystemCommandRunner(['ip', 'netns', 'exec', ns]),
      NO_NETLINK,
      log,
    );
    running.push(t);
    return t;
  }
  async function stop(t: TrafficRules): Promise<void> {
    await t.stop();
    running.splice(running.indexOf(t), 1);
  }
  const lines = async (ns: string, tool: string, ...args: string[]): Promise<string[]> =>
    (await lab.exec(ns, tool, args)).stdout.trimEnd().split('\n');
  const flannelNft = async (ns: string): Promise<string[]> => {
    const all = await lines(ns, 'nft', 'list', 'ruleset');
    const start = all.findIndex((l) => l.startsWith('table ip flannel-ipv4'));
    return start < 0 ? [] : all.slice(start);
  };

  test('iptables mode: exactly the goldens of docs/compatibility.md §8.1 and §8.2', async () => {
    const ns = await lab.addNamespace('ipt1');
    const t = await start(ns, {});
    assert.equal(t.inPlace, true);
    assert.deepEqual(await lines(ns, 'iptables', '-S'), FILTER_GOLDEN);
    assert.deepEqual(await lines(ns, 'iptables', '-t', 'nat', '-S'), natGolden(NET, POD));
    await stop(t);
  });

  test('a rule deleted by hand is restored within one resync, in order', async () => {
    const ns = await lab.addNamespace('ipt2');
    const log = new RecordingLogger();
    const t = await start(ns, {}, log);
    await lab.exec(ns, 'iptables', ['-t', 'nat', '-D', 'FLANNEL-POSTRTG', '-s', POD, '-d', NET, '-m', 'comment', '--comment', 'flanneld masq', '-j', 'RETURN']);
    await lab.exec(ns, 'iptables', ['-D', 'FORWARD', '-m', 'comment', '--comment', 'flanneld forward', '-j', 'FLANNEL-FWD']);
    assert.notDeepEqual(await lines(ns, 'iptables', '-t', 'nat', '-S'), natGolden(NET, POD));
    const started = Date.now();
    await eventually(() => lines(ns, 'iptables', '-t', 'nat', '-S'), (l) => JSON.stringify(l) === JSON.stringify(natGolden(NET, POD)), 4 * RESYNC_MS, 'the masquerade rules restored');
    await eventually(() => lines(ns, 'iptables', '-S'), (l) => JSON.stringify(l) === JSON.stringify(FILTER_GOLDEN), 4 * RESYNC_MS, 'the forward jump restored');
    assert.ok(Date.now() - started < 4 * RESYNC_MS);
    assert.ok((t.reconciler.stats.repairsByKind['iptables'] ?? 0) >= 2, JSON.stringify(t.reconciler.stats));
    assert.ok(log.records.some((r) => r.level === 'warn' && /repaired: re-appended the ipv4 masquerade rules \(missing: -t nat -A FLANNEL-POSTRTG -s 10\.5\.72\.0\/24/.test(r.msg)), 'the repair is logged with what was missing');
    await stop(t);
  });

  test('a second start adds no duplicates; a changed network replaces the old rules', async () => {
    const ns = await lab.addNamespace('ipt3');
    await stop(await start(ns, {}));
    await stop(await start(ns, {}));
    assert.deepEqual(await lines(ns, 'iptables', '-S'), FILTER_GOLDEN);
    assert.deepEqual(await lines(ns, 'iptables', '-t', 'nat', '-S'), natGolden(NET, POD));
    // The network changed since the last run (subnet.env has the old values).
    const t = await start(ns, { families: [v4('10.7.0.0/16', '10.7.9.0/24', { net: NET, pod: POD })] });
    const nat = await lines(ns, 'iptables', '-t', 'nat', '-S');
    assert.deepEqual(nat, natGolden('10.7.0.0/16', '10.7.9.0/24'));
    await stop(t);
  });

  test('-ip-masq-fully-random-disable gives plain MASQUERADE; -ip-masq=false and forward rules off install nothing', async () => {
    const ns = await lab.addNamespace('ipt4');
    await stop(await start(ns, { fullyRandomDisable: true, forwardRules: false }));
    assert.deepEqual(await lines(ns, 'iptables', '-t', 'nat', '-S'), natGolden(NET, POD, 'MASQUERADE'));
    assert.deepEqual(await lines(ns, 'iptables', '-S'), FILTER_GOLDEN.slice(0, 3));
    const ns2 = await lab.addNamespace('ipt5');
    await stop(await start(ns2, { ipMasq: false, forwardRules: false }));
    assert.deepEqual(await lines(ns2, 'iptables', '-S'), FILTER_GOLDEN.slice(0, 3));
    assert.deepEqual(await lines(ns2, 'iptables', '-t', 'nat', '-S'), natGolden(NET, POD).slice(0, 4));
  });

  test('nftables mode: exactly the tables of docs/compatibility.md §8.3, the iptables state removed, a deleted rule restored, no duplicates', async () => {
    const ns = await lab.addNamespace('nft1');
    await stop(await start(ns, {})); // iptables mode first: its state must go
    const log = new RecordingLogger();
    const t = await start(ns, { nftables: true }, log);
    assert.deepEqual(await flannelNft(ns), NFT_GOLDEN);
    assert.deepEqual(await lines(ns, 'iptables', '-S'), FILTER_GOLDEN.slice(0, 3));
    assert.deepEqual(await lines(ns, 'iptables', '-t', 'nat', '-S'), natGolden(NET, POD).slice(0, 4));
    assert.ok(log.records.some((r) => /removed \d+ iptables rule\(s\) and chain\(s\) of flannel/.test(r.msg)));

    const listing = (await lab.exec(ns, 'nft', ['-a', 'list', 'chain', 'ip', 'flannel-ipv4', 'postrtg'])).stdout;
    const handle = /ip saddr != 10\.5\.72\.0\/24 .* # handle (\d+)/.exec(listing)![1]!;
    await lab.exec(ns, 'nft', ['delete', 'rule', 'ip', 'flannel-ipv4', 'postrtg', 'handle', handle]);
    assert.notDeepEqual(await flannelNft(ns), NFT_GOLDEN);
    await eventually(() => flannelNft(ns), (l) => JSON.stringify(l) === JSON.stringify(NFT_GOLDEN), 4 * RESYNC_MS, 'the nft chain restored');
    // The chain is back before the run that rewrote it ends and counts the repair: wait for the count.
    await eventually(() => t.reconciler.stats.repairsByKind['nftables'] ?? 0, (n) => n >= 1, 4 * RESYNC_MS, 'the nftables repair counted');
    await stop(t);
    await stop(await start(ns, { nftables: true }));
    assert.deepEqual(await flannelNft(ns), NFT_GOLDEN);

    // Back to iptables mode: the flannel tables go.
    await stop(await start(ns, {}));
    assert.deepEqual(await flannelNft(ns), []);
    assert.deepEqual(await lines(ns, 'iptables', '-t', 'nat', '-S'), natGolden(NET, POD));
  });
});
