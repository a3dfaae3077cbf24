/**
 * nftables mode (docs/compatibility.md §8.3) through the `nft` tool: the flannel tables,
 * their forward and postrtg chains written in one atomic script each, a
 * check that rewrites a chain whose rules differ (beyond upstream, which
 * never re-checks in this mode), and the removal of the flannel tables.
 */
import { type CommandRunner, runChecked } from '../util/command';
import { type Family, NFT_TABLES, type NftChain, nftChainScript, nftTableScript, parseNftChainRules } from './rules';

export class Nftables {
  constructor(private readonly runner: CommandRunner) {}

  /** Whether `nft` runs at all (iptables mode skips its cleanup otherwise, as upstream). */
  async usable(): Promise<boolean> {
    try {
      return (await this.runner.run('nft', ['--version'])).code === 0;
    } catch {
      return false;
    }
  }

  async initTable(family: Family): Promise<void> {
    await runChecked(this.runner, 'nft', ['-f', '-'], nftTableScript(family));
  }

  /**
   * Whether `masquerade fully-random` is accepted: a dry run (`nft --check`)
   * of a test chain, as upstream does.
   */
  async fullyRandomSupported(family: Family): Promise<boolean> {
    const t = NFT_TABLES[family];
    const at = `${t.family} ${t.name} masqueradeTest`;
    const script = `${nftTableScript(family)}add chain ${at} { type nat hook postrouting priority srcnat; }\nadd rule ${at} masquerade fully-random\n`;
    return (await this.runner.run('nft', ['--check', '-f', '-'], script)).code === 0;
  }

  /** The rules of a chain, or undefined when the chain (or table) does not exist. */
  async chainRules(family: Family, chain: string): Promise<string[] | undefined> {
    const t = NFT_TABLES[family];
    const r = await this.runner.run('nft', ['list', 'chain', t.family, t.name, chain]);
    return r.code === 0 ? parseNftChainRules(r.stdout) : undefined;
  }

  /** Makes the chain hold exactly its rules; returns whether it had to be rewritten. */
  async ensureChain(family: Family, chain: NftChain): Promise<boolean> {
    const now = await this.chainRules(family, chain.name);
    if (now && now.length === chain.rules.length && now.every((r, i) => r === chain.rules[i])) return false;
    await this.writeChain(family, chain);
    return true;
  }

  /** Writes the chain (created if missing, flushed, rules added) in one transaction. */
  async writeChain(family: Family, chain: NftChain): Promise<void> {
    await runChecked(this.runner, 'nft', ['-f', '-'], nftChainScript(family, chain));
  }

  /** Deletes the flannel tables that exist; returns them as `table <family> <name>`. */
  async deleteTables(): Promise<string[]> {
    const listing = await runChecked(this.runner, 'nft', ['list', 'tables']);
    const removed: string[] = [];
    for (const fam of ['ipv4', 'ipv6'] as const) {
      const t = NFT_TABLES[fam];
      const line = `table ${t.family} ${t.name}`;
      if (!listing.split('\n').some((l) => l.trim() === line)) continue;
      await runChecked(this.runner, 'nft', ['delete', 'table', t.family, t.name]);
      removed.push(line);
    }
    return removed;
  }
}
