/**
 * The README's performance headline, generated from bench/RESULTS.md: three
 * lines (udp against the upstream-style forwarder and kernel vxlan) and the
 * run they come from, between two markers in README.md. `npm run bench`
 * rewrites it after RESULTS.md; `test/docs.test.ts` checks that the README
 * says what RESULTS.md says.
 *
 * Pure except for `updateReadmeHeadline`, which reads and writes the files.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

export const HEADLINE_BEGIN = '<!-- performance headline: generated from bench/RESULTS.md by `npm run bench`; do not edit -->';
export const HEADLINE_END = '<!-- end of performance headline -->';

/** One metric of RESULTS.md's Headline table: medians and the ratios as printed. */
export interface HeadlineRow {
  udp: string;
  vxlan: string;
  udpVsVxlan: string;
  upstream: string;
  udpVsUpstream: string;
}

export interface HeadlineFacts {
  date: string;
  machine: string;
  /** By the table's metric heading, e.g. "TCP 1 stream (Gbit/s)". */
  rows: Map<string, HeadlineRow>;
}

export class HeadlineError extends Error {}

const cells = (line: string): string[] =>
  line
    .trim()
    .replace(/^\||\|$/g, '')
    .split('|')
    .map((c) => c.trim());

/** The median of a cell such as "11.25 (11.11–11.68)". */
const median = (cell: string): string => cell.split(' ')[0]!;

/** Reads the facts the headline needs from RESULTS.md's text. */
export function parseResultsHeadline(resultsMd: string): HeadlineFacts {
  const date = /^- Date: (\S+)$/m.exec(resultsMd)?.[1];
  const machine = /^- Machine: (.+)$/m.exec(resultsMd)?.[1];
  const section = /^## Headline\n([\s\S]*?)(?=\n## )/m.exec(resultsMd)?.[1];
  if (!date || !machine || !section) throw new HeadlineError('bench/RESULTS.md has no Date, Machine or "## Headline" section: run `npm run bench`');
  const lines = section.split('\n').filter((l) => l.startsWith('|'));
  const header = cells(lines[0] ?? '');
  const col = (name: string): number => {
    const i = header.indexOf(name);
    if (i < 0) throw new HeadlineError(`bench/RESULTS.md's headline table has no "${name}" column: run \`npm run bench\` with the udp, vxlan and upstream modes`);
    return i;
  };
  const at = { udp: col('udp'), vxlan: col('vxlan'), udpVsVxlan: col('udp / vxlan'), upstream: col('upstream'), udpVsUpstream: col('udp / upstream') };
  const rows = new Map<string, HeadlineRow>();
  for (const line of lines.slice(2)) {
    const c = cells(line);
    rows.set(c[0]!, {
      udp: median(c[at.udp]!),
      vxlan: median(c[at.vxlan]!),
      udpVsVxlan: c[at.udpVsVxlan]!,
      upstream: median(c[at.upstream]!),
      udpVsUpstream: c[at.udpVsUpstream]!,
    });
  }
  return { date, machine, rows };
}

/** The block between the markers (markers included). */
export function readmeHeadline(facts: HeadlineFacts): string {
  const row = (heading: string): HeadlineRow => {
    const r = facts.rows.get(heading);
    if (!r) throw new HeadlineError(`bench/RESULTS.md's headline table has no "${heading}" row`);
    return r;
  };
  const tcp1 = row('TCP 1 stream (Gbit/s)');
  const tcp4 = row('TCP 4 streams (Gbit/s)');
  const pps = row('UDP 64 B (pps)');
  const rtt = row('RTT p50 (µs, lower is better)');
  return [
    HEADLINE_BEGIN,
    `- **TCP, one stream:** ${tcp1.udp} Gbit/s, **${tcp1.udpVsUpstream}** the upstream-style udp forwarder (${tcp1.upstream}); ${tcp1.udpVsVxlan} kernel vxlan (${tcp1.vxlan}).`,
    `- **TCP, four streams:** ${tcp4.udp} Gbit/s, **${tcp4.udpVsUpstream}** upstream-style (${tcp4.upstream}); ${tcp4.udpVsVxlan} vxlan (${tcp4.vxlan}).`,
    `- **Small packets and latency:** ${pps.udp} 64-byte packets/s, ${pps.udpVsUpstream} upstream-style (${pps.upstream}), ${pps.udpVsVxlan} vxlan (${pps.vxlan}); round trip p50 ${rtt.udp} µs (upstream-style ${rtt.upstream}, vxlan ${rtt.vxlan}).`,
    '',
    `Medians, pod to pod across two nodes in network namespaces, measured by \`npm run bench\` at ${facts.date}` +
      ` on one machine, ${facts.machine}. Every number, the spread and the analysis: [bench/RESULTS.md](bench/RESULTS.md).`,
    HEADLINE_END,
  ].join('\n');
}

/** The README with its headline block replaced. */
export function withReadmeHeadline(readme: string, block: string): string {
  const begin = readme.indexOf(HEADLINE_BEGIN);
  const end = readme.indexOf(HEADLINE_END);
  if (begin < 0 || end < begin) throw new HeadlineError(`README.md lacks the headline markers ${HEADLINE_BEGIN} ... ${HEADLINE_END}`);
  return readme.slice(0, begin) + block + readme.slice(end + HEADLINE_END.length);
}

/** The block as README.md has it now (markers included), or undefined. */
export function currentReadmeHeadline(readme: string): string | undefined {
  const begin = readme.indexOf(HEADLINE_BEGIN);
  const end = readme.indexOf(HEADLINE_END);
  return begin < 0 || end < begin ? undefined : readme.slice(begin, end + HEADLINE_END.length);
}

/** Rewrites `<root>/README.md`'s headline from `<root>/bench/RESULTS.md`. */
export function updateReadmeHeadline(root: string): void {
  const resultsMd = fs.readFileSync(path.join(root, 'bench', 'RESULTS.md'), 'utf8');
  const readmePath = path.join(root, 'README.md');
  const readme = fs.readFileSync(readmePath, 'utf8');
  const next = withReadmeHeadline(readme, readmeHeadline(parseResultsHeadline(resultsMd)));
  if (next !== readme) fs.writeFileSync(readmePath, next);
}
