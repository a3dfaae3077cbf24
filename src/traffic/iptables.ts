/**
 * iptables mode (docs/compatibility.md §8.1-8.2) through the system's `iptables` /
 * `ip6tables` and their `-restore` tools: existence checks with `-C`, the
 * `--noflush` bootstrap that re-appends the whole flannel rule set in
 * order, the teardown of rules built from old values, and the removal of
 * everything flannel put into iptables (for nftables mode and `flanneld
 * cleanup`).
 */
import { type CommandRunner, runChecked } from '../util/command';
import {
  atLeast162,
  bootstrapPayload,
  FORWARD_CHAIN,
  type Family,
  flannelChainOf,
  formatRule,
  type IptRule,
  MASQ_CHAIN,
  parseIptablesVersion,
  teardownPayload,
} from './rules';

const TOOLS: Record<Family, { cmd: string; restore: string; save: string }> = {
  ipv4: { cmd: 'iptables', restore: 'iptables-restore', save: 'iptables-save' },
  ipv6: { cmd: 'ip6tables', restore: 'ip6tables-restore', save: 'ip6tables-save' },
};

/** The comments that mark flannel's rules (docs/compatibility.md §8.1, §8.2). */
const FLANNEL_COMMENT = /--comment "?flanneld (masq|forward)"?/;

export class Iptables {
  private version: [number, number, number] | undefined;
  private probed = false;

  constructor(
    private readonly runner: CommandRunner,
    readonly family: Family,
  ) {}

  private get tools(): { cmd: string; restore: string; save: string } {
    return TOOLS[this.family];
  }

  /** Reads `iptables --version` once; throws CommandError when the tool is missing. */
  async probe(): Promise<void> {
    if (this.probed) return;
    this.version = parseIptablesVersion(await runChecked(this.runner, this.tools.cmd, ['--version']));
    this.probed = true;
  }

  /** `--random-fully` and `iptables-restore --wait` need iptables ≥ 1.6.2 (docs/compatibility.md §8.2). */
  get hasRandomFully(): boolean {
    return atLeast162(this.version);
  }

  async chainExists(table: string, chain: string): Promise<boolean> {
    const r = await this.runner.run(this.tools.cmd, ['--wait', '-t', table, '-S', chain]);
    return r.code === 0;
  }

  /** `iptables -C`: the rule is present (its flannel chain must exist too). */
  async ruleExists(rule: IptRule, chainPresent: (chain: string) => boolean = () => true): Promise<boolean> {
    const chain = flannelChainOf(rule);
    if (chain && !chainPresent(chain)) return false;
    const r = await this.runner.run(this.tools.cmd, ['--wait', '-t', rule.table, '-C', rule.chain, ...rule.spec]);
    return r.code === 0;
  }

  private async flannelChains(rules: readonly IptRule[]): Promise<Set<string>> {
    const present = new Set<string>();
    const seen = new Set<string>();
    for (const r of rules) {
      const c = flannelChainOf(r);
      if (!c || seen.has(`${r.table}/${c}`)) continue;
      seen.add(`${r.table}/${c}`);
      if (await this.chainExists(r.table, c)) present.add(c);
    }
    return present;
  }

  /** Which of `rules` exist now, and which flannel chains they need exist. */
  async existing(rules: readonly IptRule[]): Promise<{ exists: boolean[]; chains: Set<string> }> {
    const chains = await this.flannelChains(rules);
    const exists: boolean[] = [];
    for (const r of rules) exists.push(await this.ruleExists(r, (c) => chains.has(c)));
    return { exists, chains };
  }

  private async restore(payload: string): Promise<void> {
    if (payload === '') return;
    const args = ['--noflush', ...(this.hasRandomFully ? ['--wait'] : [])];
    await runChecked(this.runner, this.tools.restore, args, payload);
  }

  /**
   * Makes sure every rule exists (docs/compatibility.md §8.2 ensure): nothing is done when
   * all do; otherwise the whole set is rebuilt in order in one restore.
   * Returns the rules that were missing.
   */
  async ensure(rules: readonly IptRule[]): Promise<IptRule[]> {
    const { exists, chains } = await this.existing(rules);
    const missing = rules.filter((_, i) => !exists[i]);
    if (missing.length === 0) return [];
    const missingChains = new Set<string>();
    for (const r of rules) {
      const c = flannelChainOf(r);
      if (c && !chains.has(c)) missingChains.add(c);
    }
    await this.restore(bootstrapPayload(rules, (i) => exists[i]!, missingChains));
    return missing;
  }

  /** Deletes the rules of `rules` that exist (docs/compatibility.md §8.2 teardown); returns them. */
  async teardown(rules: readonly IptRule[]): Promise<IptRule[]> {
    const { exists } = await this.existing(rules);
    await this.restore(teardownPayload(rules, (i) => exists[i]!));
    return rules.filter((_, i) => exists[i]);
  }

  /** Creates `chain` or flushes it (upstream's ClearChain). */
  async clearChain(table: string, chain: string): Promise<void> {
    const op = (await this.chainExists(table, chain)) ? '-F' : '-N';
    await runChecked(this.runner, this.tools.cmd, ['--wait', '-t', table, op, chain]);
  }

  /**
   * Removes every rule that carries a flannel comment or jumps to a flannel
   * chain, in the nat and filter tables, then the flannel chains
   * themselves; returns what was removed as `iptables -S` lines. (Upstream's
   * nftables-mode cleanup misses filter/FLANNEL-FWD and fails to delete a
   * chain still referenced; this does both right.)
   */
  async removeAll(): Promise<string[]> {
    const removed: string[] = [];
    let payload = '';
    for (const table of ['nat', 'filter']) {
      const r = await this.runner.run(this.tools.cmd, ['--wait', '-t', table, '-S']);
      if (r.code !== 0) continue; // the table is not there: nothing of ours in it
      const lines = r.stdout.split('\n');
      const chains = lines.filter((l) => l === `-N ${MASQ_CHAIN}` || l === `-N ${FORWARD_CHAIN}`).map((l) => l.slice(3));
      const rules = lines.filter((l) => l.startsWith('-A ') && (FLANNEL_COMMENT.test(l) || / -j FLANNEL-(POSTRTG|FWD)\b/.test(l)));
      // Rules inside our chains go with the flush; delete the others one by one.
      const outside = rules.filter((l) => !chains.includes(l.split(' ')[1]!));
      if (outside.length === 0 && chains.length === 0) continue;
      payload += `*${table}\n`;
      for (const l of outside) payload += `-D${l.slice(2)}\n`;
      for (const c of chains) payload += `-F ${c}\n`;
      for (const c of chains) payload += `-X ${c}\n`;
      payload += 'COMMIT\n';
      removed.push(...rules.map((l) => `${this.tools.cmd} -t ${table} ${l}`), ...chains.map((c) => `${this.tools.cmd} -t ${table} -N ${c}`));
    }
    await this.restore(payload);
    return removed;
  }
}

export function describeRules(rules: readonly IptRule[]): string[] {
  return rules.map((r) => `-t ${r.table} ${formatRule(r)}`);
}
