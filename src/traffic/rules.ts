/**
 * The traffic rules of docs/compatibility.md §8.1-8.3 as data: what iptables and nftables
 * must hold for a network, independent of how it gets there. Everything
 * here is pure, so the rule text is checked against the spec's goldens
 * without root.
 */

export type Family = 'ipv4' | 'ipv6';

/** One iptables rule: table, chain and the argument vector after `-A <chain>`. */
export interface IptRule {
  table: 'filter' | 'nat';
  chain: string;
  spec: readonly string[];
}

/** The flannel chains (docs/compatibility.md §8.1, §8.2). */
export const FORWARD_CHAIN = 'FLANNEL-FWD';
export const MASQ_CHAIN = 'FLANNEL-POSTRTG';
const FORWARD_COMMENT = 'flanneld forward';
const MASQ_COMMENT = 'flanneld masq';
/** kube-proxy's masquerade mark: traffic it marks is not masqueraded twice (docs/compatibility.md §8.2). */
export const KUBE_PROXY_MARK = '0x4000/0x4000';
const MULTICAST: Record<Family, string> = { ipv4: '224.0.0.0/4', ipv6: 'ff00::/8' };

/** docs/compatibility.md §8.1: the FORWARD jump and two ACCEPT rules for the Network. */
export function forwardRules(network: string): IptRule[] {
  const c = ['-m', 'comment', '--comment', FORWARD_COMMENT];
  return [
    { table: 'filter', chain: 'FORWARD', spec: [...c, '-j', FORWARD_CHAIN] },
    { table: 'filter', chain: FORWARD_CHAIN, spec: ['-s', network, ...c, '-j', 'ACCEPT'] },
    { table: 'filter', chain: FORWARD_CHAIN, spec: ['-d', network, ...c, '-j', 'ACCEPT'] },
  ];
}

export interface MasqInput {
  family: Family;
  /** The flannel Network, e.g. "10.5.0.0/16". */
  cluster: string;
  /** The own lease's subnet in network form, e.g. "10.5.72.0/24". */
  pod: string;
  /** `MASQUERADE --random-fully` instead of `MASQUERADE`. */
  fullyRandom: boolean;
}

/** docs/compatibility.md §8.2: the POSTROUTING jump and the six rules of FLANNEL-POSTRTG, in order. */
export function masqRules(m: MasqInput): IptRule[] {
  const c = ['-m', 'comment', '--comment', MASQ_COMMENT];
  const masq = m.fullyRandom ? ['-j', 'MASQUERADE', '--random-fully'] : ['-j', 'MASQUERADE'];
  const r = (spec: string[]): IptRule => ({ table: 'nat', chain: MASQ_CHAIN, spec });
  return [
    { table: 'nat', chain: 'POSTROUTING', spec: [...c, '-j', MASQ_CHAIN] },
    r(['-m', 'mark', '--mark', KUBE_PROXY_MARK, ...c, '-j', 'RETURN']),
    r(['-s', m.pod, '-d', m.cluster, ...c, '-j', 'RETURN']),
    r(['-s', m.cluster, '-d', m.pod, ...c, '-j', 'RETURN']),
    r(['!', '-s', m.cluster, '-d', m.pod, ...c, '-j', 'RETURN']),
    r(['-s', m.cluster, '!', '-d', MULTICAST[m.family], ...c, ...masq]),
    r(['!', '-s', m.cluster, '-d', m.cluster, ...c, ...masq]),
  ];
}

/** The flannel-owned chain a rule lives in or jumps to (the chain that must exist for it). */
export function flannelChainOf(rule: IptRule): string | undefined {
  if (rule.chain === FORWARD_CHAIN || rule.chain === MASQ_CHAIN) return rule.chain;
  const j = rule.spec.indexOf('-j');
  const target = j >= 0 ? rule.spec[j + 1] : undefined;
  return target === FORWARD_CHAIN || target === MASQ_CHAIN ? target : undefined;
}

/** Arguments joined by single spaces, the one after `--comment` in double quotes (docs/compatibility.md §8.2). */
export function formatSpec(spec: readonly string[]): string {
  return spec.map((a, i) => (spec[i - 1] === '--comment' ? `"${a}"` : a)).join(' ');
}

/** A rule as `iptables -S` prints it. */
export function formatRule(rule: IptRule): string {
  return `-A ${rule.chain} ${formatSpec(rule.spec)}`;
}

/**
 * The `iptables-restore --noflush` payload that rebuilds `rules`
 * (docs/compatibility.md §8.2 bootstrap): per table, the missing flannel chains first, then for
 * every rule in order `-D` when it exists and `-A`, so the whole set ends
 * up at the end of each chain in order. `exists(i)` says whether rules[i]
 * is present now; `missingChains` are flannel chains to create.
 */
export function bootstrapPayload(rules: readonly IptRule[], exists: (i: number) => boolean, missingChains: ReadonlySet<string>): string {
  const byTable = new Map<string, string[]>();
  const lines = (t: string): string[] => {
    let l = byTable.get(t);
    if (!l) byTable.set(t, (l = []));
    return l;
  };
  const declared = new Set<string>();
  for (const r of rules) {
    const chain = flannelChainOf(r);
    if (chain && missingChains.has(chain) && !declared.has(`${r.table}/${chain}`)) {
      declared.add(`${r.table}/${chain}`);
      lines(r.table).push(`:${chain} - [0:0]`);
    }
  }
  rules.forEach((r, i) => {
    if (exists(i)) lines(r.table).push(`-D ${r.chain} ${formatSpec(r.spec)}`);
    lines(r.table).push(formatRule(r));
  });
  return restoreText(byTable);
}

/** The payload that deletes the rules of `rules` that exist (docs/compatibility.md §8.2 teardown). */
export function teardownPayload(rules: readonly IptRule[], exists: (i: number) => boolean): string {
  const byTable = new Map<string, string[]>();
  rules.forEach((r, i) => {
    if (!exists(i)) return;
    let l = byTable.get(r.table);
    if (!l) byTable.set(r.table, (l = []));
    l.push(`-D ${r.chain} ${formatSpec(r.spec)}`);
  });
  return restoreText(byTable);
}

function restoreText(byTable: Map<string, string[]>): string {
  let out = '';
  for (const [table, lines] of byTable) {
    if (lines.length === 0) continue;
    out += `*${table}\n${lines.join('\n')}\nCOMMIT\n`;
  }
  return out;
}

/** `iptables --version` text → [major, minor, patch]; undefined when unreadable. */
export function parseIptablesVersion(text: string): [number, number, number] | undefined {
  const m = /v(\d+)\.(\d+)\.(\d+)/.exec(text);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : undefined;
}

/** iptables ≥ 1.6.2 has `--random-fully` and `iptables-restore --wait` (docs/compatibility.md §8.2). */
export function atLeast162(v: [number, number, number] | undefined): boolean {
  if (!v) return false;
  const [a, b, c] = v;
  return a > 1 || (a === 1 && (b > 6 || (b === 6 && c >= 2)));
}

// ---------------------------------------------------------------- nftables

/** docs/compatibility.md §8.3: table names per family. */
export const NFT_TABLES: Record<Family, { family: 'ip' | 'ip6'; name: string }> = {
  ipv4: { family: 'ip', name: 'flannel-ipv4' },
  ipv6: { family: 'ip6', name: 'flannel-ipv6' },
};

export interface NftChain {
  name: 'forward' | 'postrtg';
  comment: string;
  /** The chain's base declaration, as `nft list` prints it. */
  hook: string;
  rules: string[];
}

/** docs/compatibility.md §8.3: the forward chain for `network`. */
export function nftForwardChain(family: Family, network: string): NftChain {
  const ip = family === 'ipv4' ? 'ip' : 'ip6';
  return {
    name: 'forward',
    comment: 'chain to accept flannel traffic',
    hook: 'type filter hook forward priority filter; policy accept;',
    rules: [`${ip} saddr ${network} accept`, `${ip} daddr ${network} accept`],
  };
}

/**
 * docs/compatibility.md §8.3: the masquerade chain, copied verbatim from upstream's
 * goldens: the mark match is exact (not masked) and rule 4 negates the pod
 * CIDR, unlike iptables mode.
 */
export function nftMasqChain(m: MasqInput): NftChain {
  const ip = m.family === 'ipv4' ? 'ip' : 'ip6';
  const masq = m.fullyRandom ? 'masquerade fully-random' : 'masquerade';
  return {
    name: 'postrtg',
    comment: 'chain to manage traffic masquerading by flannel',
    hook: 'type nat hook postrouting priority srcnat; policy accept;',
    rules: [
      'meta mark 0x00004000 return',
      `${ip} saddr ${m.pod} ${ip} daddr ${m.cluster} return`,
      `${ip} saddr ${m.cluster} ${ip} daddr ${m.pod} return`,
      `${ip} saddr != ${m.pod} ${ip} daddr ${m.cluster} return`,
      `${ip} saddr ${m.cluster} ${ip} daddr != ${MULTICAST[m.family]} ${masq}`,
      `${ip} saddr != ${m.cluster} ${ip} daddr ${m.cluster} ${masq}`,
    ],
  };
}

/** The table declaration (always created at init, docs/compatibility.md §8.3). */
export function nftTableScript(family: Family): string {
  const t = NFT_TABLES[family];
  return `add table ${t.family} ${t.name} { comment "rules for ${t.name}" ; }\n`;
}

/**
 * One atomic `nft -f` script that makes `chain` hold exactly its rules:
 * create the chain if missing, flush it, add the rules in order.
 */
export function nftChainScript(family: Family, chain: NftChain): string {
  const t = NFT_TABLES[family];
  const at = `${t.family} ${t.name} ${chain.name}`;
  let s = nftTableScript(family);
  s += `add chain ${at} { ${chain.hook} comment "${chain.comment}" ; }\n`;
  s += `flush chain ${at}\n`;
  for (const r of chain.rules) s += `add rule ${at} ${r}\n`;
  return s;
}

/**
 * The rule lines of one chain in `nft list chain` output (what follows the
 * comment and the hook line), trimmed, handles dropped.
 */
export function parseNftChainRules(listing: string): string[] {
  const out: string[] = [];
  let inChain = false;
  for (const raw of listing.split('\n')) {
    const line = raw.replace(/\s+# handle \d+$/, '').trim();
    if (/^chain \S+ \{$/.test(line)) {
      inChain = true;
      continue;
    }
    if (!inChain) continue;
    if (line === '}') break;
    if (line === '' || line.startsWith('comment ') || line.startsWith('type ')) continue;
    out.push(line);
  }
  return out;
}
