/**
 * The traffic rules as data (docs/compatibility.md §8.1-8.3): the rule text equals the
 * spec's goldens, and the iptables-restore payloads follow upstream's
 * bootstrap and teardown mechanics. Pure; no root.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  atLeast162,
  bootstrapPayload,
  forwardRules,
  formatRule,
  masqRules,
  nftChainScript,
  nftForwardChain,
  nftMasqChain,
  parseIptablesVersion,
  parseNftChainRules,
  teardownPayload,
} from '../src/traffic/rules';

const NET = '10.5.0.0/16';
const POD = '10.5.72.0/24';

describe('iptables rules (docs/compatibility.md §8.1, §8.2)', () => {
  test('forward rules are the golden of docs/compatibility.md §8.1', () => {
    assert.deepEqual(forwardRules(NET).map(formatRule), [
      '-A FORWARD -m comment --comment "flanneld forward" -j FLANNEL-FWD',
      '-A FLANNEL-FWD -s 10.5.0.0/16 -m comment --comment "flanneld forward" -j ACCEPT',
      '-A FLANNEL-FWD -d 10.5.0.0/16 -m comment --comment "flanneld forward" -j ACCEPT',
    ]);
  });

  test('masquerade rules are the golden of docs/compatibility.md §8.2, in order, with --random-fully', () => {
    assert.deepEqual(masqRules({ family: 'ipv4', cluster: NET, pod: POD, fullyRandom: true }).map(formatRule), [
      '-A POSTROUTING -m comment --comment "flanneld masq" -j FLANNEL-POSTRTG',
      '-A FLANNEL-POSTRTG -m mark --mark 0x4000/0x4000 -m comment --comment "flanneld masq" -j RETURN',
      '-A FLANNEL-POSTRTG -s 10.5.72.0/24 -d 10.5.0.0/16 -m comment --comment "flanneld masq" -j RETURN',
      '-A FLANNEL-POSTRTG -s 10.5.0.0/16 -d 10.5.72.0/24 -m comment --comment "flanneld masq" -j RETURN',
      '-A FLANNEL-POSTRTG ! -s 10.5.0.0/16 -d 10.5.72.0/24 -m comment --comment "flanneld masq" -j RETURN',
      '-A FLANNEL-POSTRTG -s 10.5.0.0/16 ! -d 224.0.0.0/4 -m comment --comment "flanneld masq" -j MASQUERADE --random-fully',
      '-A FLANNEL-POSTRTG ! -s 10.5.0.0/16 -d 10.5.0.0/16 -m comment --comment "flanneld masq" -j MASQUERADE --random-fully',
    ]);
  });

  test('without --random-fully the target is plain MASQUERADE; IPv6 uses ff00::/8', () => {
    const rules = masqRules({ family: 'ipv6', cluster: 'fc00::/48', pod: 'fc00:0:0:1::/64', fullyRandom: false }).map(formatRule);
    assert.equal(rules[5], '-A FLANNEL-POSTRTG -s fc00::/48 ! -d ff00::/8 -m comment --comment "flanneld masq" -j MASQUERADE');
    assert.ok(rules.every((r) => !r.includes('random-fully')));
  });

  test('bootstrap: missing chains first, then -D for each existing rule and -A for every rule, in order', () => {
    const rules = masqRules({ family: 'ipv4', cluster: NET, pod: POD, fullyRandom: false });
    const payload = bootstrapPayload(rules, (i) => i === 0, new Set(['FLANNEL-POSTRTG']));
    const lines = payload.trimEnd().split('\n');
    assert.equal(lines[0], '*nat');
    assert.equal(lines[1], ':FLANNEL-POSTRTG - [0:0]');
    assert.equal(lines[2], '-D POSTROUTING -m comment --comment "flanneld masq" -j FLANNEL-POSTRTG');
    assert.equal(lines[3], '-A POSTROUTING -m comment --comment "flanneld masq" -j FLANNEL-POSTRTG');
    assert.deepEqual(lines.slice(4, -1), rules.slice(1).map(formatRule));
    assert.equal(lines.at(-1), 'COMMIT');
    // One table block per table, forward rules go to *filter.
    const both = bootstrapPayload([...rules, ...forwardRules(NET)], () => false, new Set());
    assert.equal(both.match(/^\*nat$/gm)?.length, 1);
    assert.equal(both.match(/^\*filter$/gm)?.length, 1);
    assert.equal(both.match(/^COMMIT$/gm)?.length, 2);
  });

  test('teardown emits -D only for the rules that exist', () => {
    const rules = forwardRules(NET);
    assert.equal(teardownPayload(rules, () => false), '');
    assert.equal(
      teardownPayload(rules, (i) => i === 2),
      '*filter\n-D FLANNEL-FWD -d 10.5.0.0/16 -m comment --comment "flanneld forward" -j ACCEPT\nCOMMIT\n',
    );
  });

  test('iptables version: --random-fully and --wait from 1.6.2', () => {
    assert.deepEqual(parseIptablesVersion('iptables v1.8.9 (nf_tables)'), [1, 8, 9]);
    assert.equal(atLeast162(parseIptablesVersion('iptables v1.6.2')), true);
    assert.equal(atLeast162(parseIptablesVersion('iptables v1.6.1')), false);
    assert.equal(atLeast162(parseIptablesVersion('iptables v1.4.21')), false);
    assert.equal(atLeast162(parseIptablesVersion('garbage')), false);
  });
});

describe('nftables rules (docs/compatibility.md §8.3)', () => {
  test('masquerade chain: exact mark, rule 4 negates the pod CIDR, fully-random', () => {
    assert.deepEqual(nftMasqChain({ family: 'ipv4', cluster: NET, pod: POD, fullyRandom: true }).rules, [
      'meta mark 0x00004000 return',
      'ip saddr 10.5.72.0/24 ip daddr 10.5.0.0/16 return',
      'ip saddr 10.5.0.0/16 ip daddr 10.5.72.0/24 return',
      'ip saddr != 10.5.72.0/24 ip daddr 10.5.0.0/16 return',
      'ip saddr 10.5.0.0/16 ip daddr != 224.0.0.0/4 masquerade fully-random',
      'ip saddr != 10.5.0.0/16 ip daddr 10.5.0.0/16 masquerade fully-random',
    ]);
    assert.deepEqual(nftForwardChain('ipv6', 'fc00::/48').rules, ['ip6 saddr fc00::/48 accept', 'ip6 daddr fc00::/48 accept']);
  });

  test('a chain script creates the table and chain, flushes, and adds the rules in order', () => {
    const s = nftChainScript('ipv4', nftForwardChain('ipv4', NET));
    assert.equal(
      s,
      'add table ip flannel-ipv4 { comment "rules for flannel-ipv4" ; }\n' +
        'add chain ip flannel-ipv4 forward { type filter hook forward priority filter; policy accept; comment "chain to accept flannel traffic" ; }\n' +
        'flush chain ip flannel-ipv4 forward\n' +
        'add rule ip flannel-ipv4 forward ip saddr 10.5.0.0/16 accept\n' +
        'add rule ip flannel-ipv4 forward ip daddr 10.5.0.0/16 accept\n',
    );
  });

  test('the rules of a listed chain are read back without comment, hook and handles', () => {
    const listing = [
      'table ip flannel-ipv4 {',
      '\tchain postrtg { # handle 1',
      '\t\tcomment "chain to manage traffic masquerading by flannel"',
      '\t\ttype nat hook postrouting priority srcnat; policy accept;',
      '\t\tmeta mark 0x00004000 return # handle 2',
      '\t\tip saddr 10.5.72.0/24 ip daddr 10.5.0.0/16 return # handle 3',
      '\t}',
      '}',
    ].join('\n');
    assert.deepEqual(parseNftChainRules(listing), ['meta mark 0x00004000 return', 'ip saddr 10.5.72.0/24 ip daddr 10.5.0.0/16 return']);
  });
});
