/**
 * The ipip backend on the in-memory kernel (this kernel has no ipip module:
 * the e2e is test/ipip.netns.test.ts), the netlink request for flannel.ipip
 * decoded and compared with what upstream's library sends, and the pure
 * parts of the extension backend: Go's strings.Fields and os.Expand, Go's
 * JSON string encoding, its options, and its commands run for real.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import type { BackendNetwork } from '../src/backends/backend';
import { runCommandLine } from '../src/backends/extension/commands';
import { parseExtensionConfig } from '../src/backends/extension/extension-backend';
import { IpipBackend, parseIpipConfig } from '../src/backends/ipip/ipip-backend';
import type { KernelBackendNetwork } from '../src/backends/kernel-network';
import type { LeaseEvent } from '../src/lease/lease';
import {
  decodeAttrs,
  decodeIptunLinkInfo,
  encodeIpipLinkInfo,
  IFLA_INFO_DATA,
  IFLA_INFO_KIND,
  IFLA_IPTUN_ENCAP_DPORT,
  IFLA_IPTUN_ENCAP_FLAGS,
  IFLA_IPTUN_ENCAP_SPORT,
  IFLA_IPTUN_ENCAP_TYPE,
  IFLA_IPTUN_LOCAL,
  IFLA_IPTUN_PMTUDISC,
  IFLA_IPTUN_PROTO,
  IFLA_IPTUN_TOS,
  IFLA_IPTUN_TTL,
} from '../src/routing/nlattr';
import { goExpand, goFields } from '../src/util/go-expand';
import { goJsonString } from '../src/util/go-json';
import { formatIp } from '../src/util/ip';
import { Ipv4Net, parseIpv4 } from '../src/util/ipv4';
import { eventually } from './helpers/eventually';
import { testLease } from './helpers/leases';
import { MemoryKernel } from './helpers/memory-kernel';
import { memoryBackendSetup, UNDERLAY_ADDRESS as UNDERLAY } from './helpers/backend-context';

function setup(config = '{"Network":"10.5.0.0/16","Backend":{"Type":"ipip"}}') {
  return memoryBackendSetup(config);
}

const added = (cidr: string, ip: string, type = 'ipip'): LeaseEvent => ({ type: 'added', lease: testLease(cidr, ip, type) });
const apply = (bn: BackendNetwork, events: LeaseEvent[]) => (bn as KernelBackendNetwork).engine.applyLeases(events);
const routes = (k: MemoryKernel) =>
  k.routes.filter((r) => r.gateway !== undefined).map((r) => `${r.dst} via ${formatIp(r.gateway!)} dev ${k.links.find((l) => l.index === r.oif)?.name}${r.onlink ? ' onlink' : ''}`).sort();

describe('ipip on an in-memory kernel', () => {
  test('flannel.ipip as upstream makes it; the lease is {PublicIP, BackendType "ipip"}; FLANNEL_MTU is the device MTU', async () => {
    const { kernel, ctx, published } = setup();
    const bn = await new IpipBackend().register(ctx, kernel);
    const dev = kernel.link('flannel.ipip')!;
    assert.deepEqual([dev.kind, dev.iptun?.local, dev.iptun?.remote, dev.mtu, dev.up], ['ipip', UNDERLAY, 0, 1480, true]);
    assert.deepEqual(kernel.addresses.filter((a) => a.index === dev.index).map((a) => `${formatIp(a.address)}/${a.prefixLen}`), ['10.5.1.0/32']);
    assert.deepEqual(published, [{ publicIp: UNDERLAY, publicIpv6: undefined, backendType: 'ipip', backendData: undefined, backendV6Data: undefined }]);
    assert.equal(bn.mtu, 1480);
    await bn.stop();
  });

  test('a route via the PublicIP through flannel.ipip, onlink, per ipip lease; other types ignored with upstream\'s words; removal', async () => {
    const { kernel, ctx, log } = setup();
    const bn = await new IpipBackend().register(ctx, kernel);
    bn.start();
    await apply(bn, [added('10.5.2.0/24', '10.99.0.2'), added('10.5.3.0/24', '192.168.1.3', 'host-gw')]);
    assert.deepEqual(routes(kernel), ['10.5.2.0/24 via 10.99.0.2 dev flannel.ipip onlink']);
    assert.ok(log.records.some((r) => r.msg === 'Ignoring non-ipip subnet: type=host-gw'));
    await apply(bn, [{ type: 'removed', lease: testLease('10.5.2.0/24', '10.99.0.2', 'ipip') }]);
    assert.deepEqual(routes(kernel), []);
    await bn.stop();
  });

  test('DirectRouting: a peer on the interface\'s subnet is routed straight out of it, others through the tunnel', async () => {
    const { kernel, ctx } = setup('{"Network":"10.5.0.0/16","Backend":{"Type":"ipip","DirectRouting":true}}');
    const bn = await new IpipBackend().register(ctx, kernel);
    bn.start();
    await apply(bn, [added('10.5.2.0/24', '192.168.1.2'), added('10.5.3.0/24', '10.99.0.3')]);
    assert.deepEqual(routes(kernel), ['10.5.2.0/24 via 192.168.1.2 dev eth0 onlink', '10.5.3.0/24 via 10.99.0.3 dev flannel.ipip onlink']);
    await bn.stop();
  });

  test('self-healing: a route deleted, the MTU raised, the device deleted by hand all come back; an MTU lowered by hand stays', async () => {
    const { kernel, ctx } = setup();
    const bn = await new IpipBackend().register(ctx, kernel);
    bn.start();
    await apply(bn, [added('10.5.2.0/24', '10.99.0.2')]);
    kernel.outOfBand({ op: 'deleteRoute', route: { dst: Ipv4Net.parse('10.5.2.0/24') } });
    await eventually(() => routes(kernel), (r) => r.length === 1, 2000, 'the route back');
    kernel.outOfBand({ op: 'setLinkMtu', ifindex: kernel.link('flannel.ipip')!.index, mtu: 1500 });
    await eventually(() => kernel.link('flannel.ipip')!.mtu, (m) => m === 1480, 2000, 'the MTU lowered again');
    kernel.outOfBand({ op: 'setLinkMtu', ifindex: kernel.link('flannel.ipip')!.index, mtu: 1400 });
    await (bn as KernelBackendNetwork).engine.reconciler.runNow();
    assert.equal(kernel.link('flannel.ipip')!.mtu, 1400, 'a lower MTU is the operator\'s (upstream lowers only)');
    kernel.outOfBand({ op: 'deleteLink', ifindex: kernel.link('flannel.ipip')!.index });
    await eventually(() => routes(kernel), (r) => r.length === 1, 2000, 'device recreated and the route replayed');
    assert.equal(kernel.link('flannel.ipip')!.iptun?.local, UNDERLAY);
    await bn.stop();
  });

  test('an existing device: an ipip one with another local end is recreated with a warning; another kind is refused, not deleted', async () => {
    const a = setup();
    a.kernel.outOfBand({ op: 'createIpip', link: { name: 'flannel.ipip', local: parseIpv4('192.168.1.77'), mtu: 1480 } });
    const bn = await new IpipBackend().register(a.ctx, a.kernel);
    assert.equal(a.kernel.link('flannel.ipip')!.iptun?.local, UNDERLAY);
    assert.ok(a.log.records.some((r) => r.msg === '"flannel.ipip" already exists with incompatible attributes: local=192.168.1.77 remote=0.0.0.0; recreating device'));
    await bn.stop();

    const b = setup();
    b.kernel.addLink('flannel.ipip');
    await assert.rejects(new IpipBackend().register(b.ctx, b.kernel), /^BackendError: flannel\.ipip isn't an ipip mode device, please remove device and try again$/);
    assert.ok(b.kernel.link('flannel.ipip'), 'the operator\'s device stays');
  });

  test('refused at start, before any lease is taken: a kernel without the ipip module; EnableIPv6', async () => {
    const a = setup();
    a.kernel.missingLinkKinds.add('ipip');
    await assert.rejects(new IpipBackend().register(a.ctx, a.kernel), (e: Error) => {
      assert.match(e.message, /the ipip backend needs the kernel's ipip module \(CONFIG_NET_IPIP\).*ENOTSUP.*modprobe ipip/);
      return true;
    });
    assert.deepEqual(a.published, [], 'no lease taken');
    const b = setup('{"Network":"10.5.0.0/16","EnableIPv6":true,"IPv6Network":"fd00:5::/48","Backend":{"Type":"ipip"}}');
    await assert.rejects(new IpipBackend().register(b.ctx, b.kernel), /carries IPv4 only .* remove EnableIPv6/);
    assert.deepEqual(b.published, []);
  });

  test('options: DirectRouting in Go\'s words', () => {
    assert.deepEqual(parseIpipConfig({ directrouting: true }), { directRouting: true });
    assert.throws(() => parseIpipConfig({ DirectRouting: 'yes' }), /^IpipConfigError: error decoding IPIP backend config: json: cannot unmarshal string into Go struct field \.DirectRouting of type bool$/);
  });
});

test("the netlink request for flannel.ipip: kind ipip and upstream's IFLA_IPTUN_* attributes (decoded)", () => {
  const top = decodeAttrs(encodeIpipLinkInfo(UNDERLAY));
  assert.deepEqual(top.map((a) => a.type), [IFLA_INFO_KIND, IFLA_INFO_DATA]);
  assert.equal(top[0]!.value.toString('latin1'), 'ipip\0');
  const data = decodeAttrs(top[1]!.value).map((a) => [a.type, [...a.value]]);
  assert.deepEqual(data, [
    [IFLA_IPTUN_LOCAL, [192, 168, 1, 1]],
    [IFLA_IPTUN_PMTUDISC, [0]],
    [IFLA_IPTUN_TTL, [0]],
    [IFLA_IPTUN_TOS, [0]],
    [IFLA_IPTUN_ENCAP_TYPE, [0, 0]],
    [IFLA_IPTUN_ENCAP_FLAGS, [0, 0]],
    [IFLA_IPTUN_ENCAP_SPORT, [0, 0]],
    [IFLA_IPTUN_ENCAP_DPORT, [0, 0]],
    [IFLA_IPTUN_PROTO, [0]],
  ]);
  assert.deepEqual(decodeIptunLinkInfo(encodeIpipLinkInfo(UNDERLAY)), { local: UNDERLAY, remote: 0, ttl: 0, pmtudisc: false });
});

describe('extension: Go\'s command line rules', () => {
  test('strings.Fields: any white space, none kept', () => {
    assert.deepEqual(goFields('  a\tb\n c\u00a0d  '), ['a', 'b', 'c', 'd']);
    assert.deepEqual(goFields('x\ufeffy'), ['x\ufeffy'], 'U+FEFF is no space to Go');
  });

  test('os.Expand: $NAME, ${NAME}, specials, bad syntax eaten, a lone $ kept', () => {
    const env: Record<string, string> = { SUBNET: '10.5.2.0/24', A_1: 'v', '1': 'one' };
    const x = (s: string) => goExpand(s, (n) => env[n] ?? '');
    assert.equal(x('add $SUBNET via ${A_1}!'), 'add 10.5.2.0/24 via v!');
    assert.equal(x('$1x $$ ${}y ${unclosed'), 'onex  y unclosed');
    assert.equal(x('cost$'), 'cost$');
    assert.equal(x('$-'), '');
    assert.equal(x('no dollars'), 'no dollars');
  });

  test("json.Marshal of a string: HTML characters and U+2028/9 escaped, lone surrogates replaced", () => {
    assert.equal(goJsonString('a<b>&"c"\n\u2028'), '"a\\u003cb\\u003e\\u0026\\"c\\"\\n\\u2028"');
    assert.equal(goJsonString('x\ud800y'), '"x\ufffdy"');
  });

  test('options: the four commands, our CommandTimeoutSeconds, Go\'s type errors', () => {
    assert.deepEqual(parseExtensionConfig({ Type: 'extension', prestartupcommand: 'a', SubnetAddCommand: 'b' }), {
      preStartupCommand: 'a',
      postStartupCommand: '',
      subnetAddCommand: 'b',
      subnetRemoveCommand: '',
      commandTimeoutSeconds: 60,
    });
    assert.throws(() => parseExtensionConfig({ SubnetAddCommand: 1 }), /error decoding backend config: json: cannot unmarshal number 1 into Go struct field \.SubnetAddCommand of type string/);
    assert.throws(() => parseExtensionConfig({ CommandTimeoutSeconds: 0 }), /at least 1/);
  });
});

describe('extension: commands run for real', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ext-cmd-'));
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  const script = (name: string, body: string): string => {
    const file = path.join(dir, name);
    fs.writeFileSync(file, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
    return file;
  };

  test('no shell: a value with shell syntax is one literal argument; stdin gets the input and a newline; output trimmed', async () => {
    const out = path.join(dir, 'args');
    const record = script('record.sh', 'printf "%s|" "$@" > "$OUT"; cat; echo " done "');
    const r = await runCommandLine(`${record} $SUBNET x\${PUBLIC_IP}`, { OUT: out, SUBNET: '10.5.2.0/24;rm -rf /', PUBLIC_IP: '$(id)' }, 'peer-data', 5000);
    assert.equal(r.ok, true);
    assert.equal(r.output, 'peer-data\n done');
    assert.equal(fs.readFileSync(out, 'utf8'), '10.5.2.0/24;rm -rf /|x$(id)|');
  });

  test("failures in Go's words: exit status, a missing program", async () => {
    const r = await runCommandLine(`${script('exit7.sh', 'echo out; echo err >&2; exit 7')}`, {}, '', 5000);
    assert.deepEqual([r.ok, r.error, r.output], [false, 'exit status 7', 'out\nerr']);
    assert.deepEqual(await runCommandLine('no-such-program-here x', {}, '', 5000).then((x) => x.error), 'exec: "no-such-program-here": executable file not found in $PATH');
  });

  test('a command over its time limit is killed with what it started', async () => {
    const pidFile = path.join(dir, 'child.pid');
    const started = Date.now();
    const r = await runCommandLine(script('sleeper.sh', 'sleep 30 & echo $! > "$PIDFILE"; wait'), { PIDFILE: pidFile }, '', 300);
    assert.deepEqual([r.ok, r.error], [false, 'timed out after 0.3 s (killed)']);
    assert.ok(Date.now() - started < 5000);
    const child = Number(fs.readFileSync(pidFile, 'utf8'));
    // Gone, or a zombie its new parent has not reaped yet.
    const ended = () => {
      try {
        return fs.readFileSync(`/proc/${child}/stat`, 'utf8').split(') ')[1]!.startsWith('Z');
      } catch {
        return true;
      }
    };
    await eventually(ended, Boolean, 2000, 'the sleep it started ended too');
  });
});

test("json.RawMessage as Marshal writes it: white space out, HTML characters escaped, other escapes as written", async () => {
  const { goCompactJson } = await import('../src/util/go-json');
  assert.equal(goCompactJson(' { "a" : "x <&> \\u0041 \\" y" , "b" : [ 1, 2 ] } '), '{"a":"x \\u003c\\u0026\\u003e \\u0041 \\" y","b":[1,2]}');
  assert.throws(() => goCompactJson('{"a":'));
});
