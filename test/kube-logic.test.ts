/**
 * Kube mode's pure logic (docs/compatibility.md §11.4-§11.8, §11.10-§11.11): annotation
 * prefixes (upstream's Test_newAnnotations table), TestContainsCIDR, node →
 * lease conversion (FuzzNodeToLease seeds), the own node's patch bytes, the
 * condition body, VtepMAC restore, and the node → lease-event tracker.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { annotationKeys, AnnotationPrefixError, normalizeAnnotationPrefix } from '../src/lease/kube/annotations';
import {
  checkOwnSubnets,
  containsCidr,
  type KubeNode,
  networkAvailableConditionPatch,
  NodeLeaseError,
  nodeToLease,
  ownAnnotationPatch,
  ownNodeSubnets,
  publicIpHints,
  storedVtepMac,
} from '../src/lease/kube/node-lease';
import { NodeLeaseTracker, type SkippedNode } from '../src/lease/kube/node-tracker';
import { Ipv4Net } from '../src/util/ipv4';
import { Ipv6Net } from '../src/util/ipv6';
import { formatIpv4, parseIpv4 } from '../src/util/ipv4';
import { kubeNetworkConfig, parseNetworkConfig } from '../src/lease/network-config';
import { RecordingLogger } from '../src/logging';
import { readNetConf } from '../src/lease/kube/kube-subnet-manager';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { RecordChange } from '../src/lease/lease';
import { PeerLeaseGuard } from '../src/lease/peer-lease-guard';

const K = annotationKeys('flannel.alpha.coreos.com');
const V4 = { ipv4: true, ipv6: false };

function node(name: string, podCIDR: string | undefined, annotations: Record<string, string> | null, podCIDRs?: string[]): KubeNode {
  return { metadata: { name, resourceVersion: '1', annotations }, spec: { ...(podCIDR !== undefined ? { podCIDR } : {}), ...(podCIDRs ? { podCIDRs } : {}) } };
}

function flannelNode(name: string, cidr: string, ip: string, type = 'vxlan', data = '{"VNI":1,"VtepMAC":"26:5a:1c:9e:0b:11"}'): KubeNode {
  return node(name, cidr, {
    [K.subnetKubeManaged]: 'true',
    [K.backendType]: type,
    [K.backendData]: data,
    [K.publicIp]: ip,
  });
}

describe('annotation prefix (Test_newAnnotations)', () => {
  const ok: Array<[string, string]> = [
    ['flannel.alpha.coreos.com', 'flannel.alpha.coreos.com/backend-type'],
    ['flannel.alpha.coreos.com/', 'flannel.alpha.coreos.com/backend-type'],
    ['flannel.alpha.coreos.com/prefix', 'flannel.alpha.coreos.com/prefix-backend-type'],
    ['flannel.alpha.coreos.com/prefix-', 'flannel.alpha.coreos.com/prefix-backend-type'],
    ['org.com', 'org.com/backend-type'],
    ['org9.com', 'org9.com/backend-type'],
    ['org.com/9', 'org.com/9-backend-type'],
  ];
  for (const [prefix, key] of ok) {
    test(`${prefix} → ${key}`, () => assert.equal(annotationKeys(prefix).backendType, key));
  }
  for (const bad of ['org', 'org/', 'org/prefix', 'org.COM', 'org.com/PREFIX', 'a/b/c']) {
    test(`${bad} is an error`, () => assert.throws(() => normalizeAnnotationPrefix(bad), AnnotationPrefixError));
  }
  test('upper case anywhere is rejected at once (upstream accepts Foo.example.com and fails every PATCH)', () => {
    assert.throws(() => normalizeAnnotationPrefix('Foo.example.com'), /fqdn\/\[0-9a-z-_\]\*.*Foo\.example\.com/);
  });
  test('every key of the default prefix', () => {
    assert.deepEqual(Object.values(K), [
      'flannel.alpha.coreos.com/kube-subnet-manager',
      'flannel.alpha.coreos.com/backend-type',
      'flannel.alpha.coreos.com/backend-data',
      'flannel.alpha.coreos.com/backend-v6-data',
      'flannel.alpha.coreos.com/public-ip',
      'flannel.alpha.coreos.com/public-ipv6',
      'flannel.alpha.coreos.com/public-ip-overwrite',
      'flannel.alpha.coreos.com/public-ipv6-overwrite',
      'flannel.alpha.coreos.com/node-public-ip',
      'flannel.alpha.coreos.com/node-public-ipv6',
    ]);
  });
});

describe('TestContainsCIDR', () => {
  const n4 = Ipv4Net.parse('10.244.0.0/16');
  test('IPv4', () => {
    for (const c of ['10.244.0.0/16', '10.244.0.0/24', '10.244.255.0/24']) assert.ok(containsCidr(n4, Ipv4Net.parse(c)), c);
    for (const c of ['10.244.0.0/15', '192.168.0.0/24']) assert.ok(!containsCidr(n4, Ipv4Net.parse(c)), c);
  });
  test('IPv6', () => {
    const n6 = Ipv6Net.tryParse('2001:0db8:1234::/48')!;
    for (const c of ['2001:db8:1234::/48', '2001:db8:1234::/64', '2001:db8:1234:ffff::/64']) assert.ok(containsCidr(n6, Ipv6Net.tryParse(c)!), c);
    for (const c of ['2001:db8:1234::/47', 'fe02::/32']) assert.ok(!containsCidr(n6, Ipv6Net.tryParse(c)!), c);
  });
});

describe('node → lease (nodeToLease, FuzzNodeToLease seeds)', () => {
  test('a vxlan peer', () => {
    const l = nodeToLease(flannelNode('node-a', '10.244.1.0/24', '192.168.50.11'), V4, K);
    assert.equal(l.subnet.toString(), '10.244.1.0/24');
    assert.equal(formatIpv4(l.attrs.publicIp), '192.168.50.11');
    assert.equal(l.attrs.backendType, 'vxlan');
    assert.equal(l.attrs.backendData, '{"VNI":1,"VtepMAC":"26:5a:1c:9e:0b:11"}');
  });
  test('a udp peer: backend-type "" and backend-data "null"', () => {
    const l = nodeToLease(flannelNode('node-u', '10.244.2.0/24', '192.168.50.12', '', 'null'), V4, K);
    assert.deepEqual([l.attrs.backendType, l.attrs.backendData], ['', undefined]);
  });
  test('podCIDRs: the first IPv4 entry; podCIDR when podCIDRs is empty', () => {
    const a = flannelNode('n', '10.244.3.0/24', '192.168.50.13');
    a.spec = { podCIDR: 'fd00::/64', podCIDRs: ['fd00::/64', '10.244.3.0/24'] };
    assert.equal(nodeToLease(a, V4, K).subnet.toString(), '10.244.3.0/24');
    a.spec = { podCIDR: '10.244.4.0/24', podCIDRs: [] };
    assert.equal(nodeToLease(a, V4, K).subnet.toString(), '10.244.4.0/24');
  });
  const bad: Array<[string, (n: KubeNode) => void, RegExp]> = [
    ['public-ip not an IP', (n) => (n.metadata!.annotations![K.publicIp] = 'not-an-ip'), /invalid IP address format/],
    ['public-ip IPv6 with IPv4 on', (n) => (n.metadata!.annotations![K.publicIp] = 'fd00::1'), /invalid IP address format/],
    ['public-ip missing', (n) => delete n.metadata!.annotations![K.publicIp], /invalid IP address format/],
    ['podCIDR not a CIDR', (n) => (n.spec = { podCIDR: 'not-a-cidr' }), /invalid CIDR address: not-a-cidr/],
    ['podCIDR empty', (n) => (n.spec = {}), /invalid CIDR address: $/],
    ['only an IPv6 CIDR with IPv4 on', (n) => (n.spec = { podCIDR: 'fd00::/64', podCIDRs: ['fd00::/64'] }), /missing IPv4 address on n\.Spec\.PodCIDRs/],
    ['three podCIDRs', (n) => (n.spec = { podCIDR: '10.1.0.0/24', podCIDRs: ['10.1.0.0/24', 'fd00::/64', '10.2.0.0/24'] }), /pod cidrs should be IPv4\/IPv6 only or dualstack/],
    ['backend-data not JSON', (n) => (n.metadata!.annotations![K.backendData] = '{"VNI":1,'), /is not JSON/],
  ];
  for (const [what, mutate, re] of bad) {
    test(`${what}: NodeLeaseError`, () => {
      const n = flannelNode('n', '10.244.5.0/24', '192.168.50.15');
      mutate(n);
      assert.throws(() => nodeToLease(n, V4, K), (e: unknown) => e instanceof NodeLeaseError && re.test(e.message));
    });
  }
  test('arbitrary strings never throw anything but NodeLeaseError', () => {
    const samples = ['', 'x', '1.2.3.4', '10.0.0.0/8', '::1', 'fd00::/64', '{}', 'null', '999.1.1.1', '1.2.3.4/33', '\u0000', '[]'];
    for (const ip of samples) for (const cidr of samples) for (const t of samples) for (const fam of [V4, { ipv4: true, ipv6: true }, { ipv4: false, ipv6: true }]) {
      const n = node('f', cidr, { [K.subnetKubeManaged]: 'true', [K.publicIp]: ip, [K.publicIpv6]: ip, [K.backendType]: t, [K.backendData]: t }, [cidr]);
      try {
        nodeToLease(n, fam, K);
      } catch (e) {
        assert.ok(e instanceof NodeLeaseError, `${ip} ${cidr} ${t}: ${String(e)}`);
      }
    }
  });
});

describe('own node (AcquireLease)', () => {
  test('pod cidr not assigned, even with podCIDRs set', () => {
    assert.throws(() => ownNodeSubnets(node('me', undefined, {}, ['10.244.1.0/24'])), /node "me" pod cidr not assigned/);
  });
  test('the last IPv4 and the last IPv6 entry win', () => {
    const s = ownNodeSubnets(node('me', '10.244.1.0/24', {}, ['10.244.1.0/24', 'fd00:1::/64']));
    assert.deepEqual([s.subnet?.toString(), s.ipv6Subnet?.toString()], ['10.244.1.0/24', 'fd00:1::/64']);
  });
  test('Network must contain the podCIDR (upstream text; checked before any patch)', () => {
    const own = { subnet: Ipv4Net.parse('10.99.1.0/24'), ipv6Subnet: undefined };
    assert.throws(
      () => checkOwnSubnets('me', own, V4, Ipv4Net.parse('10.244.0.0/16'), undefined, '/etc/kube-flannel/net-conf.json'),
      /subnet "10\.244\.0\.0\/16" specified in the flannel net config doesn't contain "10\.99\.1\.0\/24" PodCIDR of the "me" node/,
    );
    assert.throws(() => checkOwnSubnets('me', own, V4, undefined, undefined, 'x'), /subnet "0\.0\.0\.0\/0"/);
    checkOwnSubnets('me', own, V4, Ipv4Net.parse('10.0.0.0/8'), undefined, 'x');
  });
  test('first vxlan start: upstream\'s patch bytes (docs/compatibility.md §11.3)', () => {
    const p = ownAnnotationPatch(node('node-a', '10.244.1.0/24', { 'node.alpha.kubernetes.io/ttl': '0' }), { backendType: 'vxlan', backendData: '{"VNI":1,"VtepMAC":"26:5a:1c:9e:0b:11"}', publicIp: '192.168.50.11' }, K);
    assert.equal(p.needed, true);
    assert.equal(
      p.body,
      '{"metadata":{"annotations":{"flannel.alpha.coreos.com/backend-data":"{\\"VNI\\":1,\\"VtepMAC\\":\\"26:5a:1c:9e:0b:11\\"}","flannel.alpha.coreos.com/backend-type":"vxlan","flannel.alpha.coreos.com/kube-subnet-manager":"true","flannel.alpha.coreos.com/public-ip":"192.168.50.11"}}}',
    );
  });
  test('first udp start: backend-type "" and backend-data "null"', () => {
    const p = ownAnnotationPatch(node('node-a', '10.244.1.0/24', {}), { backendType: '', backendData: undefined, publicIp: '192.168.50.11' }, K);
    assert.equal(
      p.body,
      '{"metadata":{"annotations":{"flannel.alpha.coreos.com/backend-data":"null","flannel.alpha.coreos.com/backend-type":"","flannel.alpha.coreos.com/kube-subnet-manager":"true","flannel.alpha.coreos.com/public-ip":"192.168.50.11"}}}',
    );
  });
  test('a node without any annotations gets the same patch (upstream panics)', () => {
    const p = ownAnnotationPatch(node('node-a', '10.244.1.0/24', null), { backendType: 'host-gw', backendData: undefined, publicIp: '192.168.50.11' }, K);
    assert.equal(p.needed, true);
    assert.match(p.body, /"flannel.alpha.coreos.com\/backend-type":"host-gw"/);
  });
  test('unchanged: no patch; changed address: only that key', () => {
    const pub = { backendType: 'host-gw', backendData: undefined, publicIp: '192.168.50.11' };
    const annotated = node('n', '10.244.1.0/24', { [K.backendType]: 'host-gw', [K.backendData]: 'null', [K.publicIp]: '192.168.50.11', [K.subnetKubeManaged]: 'true' });
    assert.deepEqual(ownAnnotationPatch(annotated, pub, K), { needed: false, body: '{}', overrides: [] });
    const moved = ownAnnotationPatch(annotated, { ...pub, publicIp: '192.168.50.99' }, K);
    assert.equal(moved.body, '{"metadata":{"annotations":{"flannel.alpha.coreos.com/public-ip":"192.168.50.99"}}}');
  });
  test('public-ip-overwrite: published instead of the local address, and every start patches (maybe {})', () => {
    const n = node('n', '10.244.1.0/24', { [K.publicIpOverwrite]: '172.18.0.2' });
    const p = ownAnnotationPatch(n, { backendType: 'vxlan', backendData: '{"VNI":1,"VtepMAC":"26:5a:1c:9e:0b:11"}', publicIp: '192.168.50.11' }, K);
    assert.match(p.body, /"flannel.alpha.coreos.com\/public-ip":"172.18.0.2"/);
    assert.deepEqual(p.overrides, [{ key: K.publicIpOverwrite, value: '172.18.0.2' }]);
    const after = node('n', '10.244.1.0/24', { ...n.metadata!.annotations!, ...JSON.parse(p.body).metadata.annotations });
    const again = ownAnnotationPatch(after, { backendType: 'vxlan', backendData: '{"VNI":1,"VtepMAC":"26:5a:1c:9e:0b:11"}', publicIp: '192.168.50.11' }, K);
    assert.deepEqual([again.needed, again.body], [true, '{}']);
  });
  test('NetworkUnavailable=False body (docs/compatibility.md §11.3)', () => {
    assert.equal(
      networkAvailableConditionPatch(new Date('2026-08-14T10:00:05.123Z')),
      '{"status":{"conditions":[{"type":"NetworkUnavailable","status":"False","lastHeartbeatTime":"2026-08-14T10:00:05Z","lastTransitionTime":"2026-08-14T10:00:05Z","reason":"FlannelIsUp","message":"Flannel is running on this node"}]}}',
    );
  });
  test('VtepMAC restore reads the JSON (any prefix, not a string split as upstream does)', () => {
    assert.equal(storedVtepMac('{"VNI":1,"VtepMAC":"12:C6:65:89:B4:E3"}'), '12:c6:65:89:b4:e3');
    assert.equal(storedVtepMac('{"VtepMAC":"12:c6:65:89:b4:e3","VNI":1}'), '12:c6:65:89:b4:e3');
    for (const none of [undefined, 'null', '', '{"VNI":1}', '{"VtepMAC":"nope"}', '12:c6:65:89:b4:e3']) assert.equal(storedVtepMac(none), undefined, String(none));
    const custom = annotationKeys('example.com/pfx');
    assert.equal(custom.backendData, 'example.com/pfx-backend-data');
  });
  test('node-public-ip annotations are hints; empty ones are not', () => {
    assert.deepEqual(publicIpHints(node('n', '', { [K.nodePublicIp]: '10.1.1.1', [K.nodePublicIpv6]: '' }), K), { publicIp: '10.1.1.1', publicIpv6: undefined });
    assert.deepEqual(publicIpHints(node('n', '', null), K), { publicIp: undefined, publicIpv6: undefined });
  });
});

describe('net-conf.json (kube mode: parse only)', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'netconf-'));
  const file = (name: string, body: string): string => {
    const f = path.join(dir, name);
    fs.writeFileSync(f, body);
    return f;
  };
  test('no docs/compatibility.md §2.3 validation: SubnetLen and friends are not checked', () => {
    const c = readNetConf(file('a.json', '{"Network":"10.244.0.0/16","SubnetLen":31,"Backend":{"Type":"UDP"}}'));
    assert.deepEqual([c.network?.toString(), c.backendType], ['10.244.0.0/16', 'udp']);
  });
  test('missing, unreadable and bad files: upstream\'s words and the fix', () => {
    assert.throws(() => readNetConf(path.join(dir, 'none.json')), /failed to read net conf: open .*none\.json: no such file or directory \(mount the kube-flannel-cfg ConfigMap/);
    assert.throws(() => readNetConf(dir), /failed to read net conf: .*is a directory/);
    assert.throws(() => readNetConf(file('b.json', '{"Network": 5}')), /error parsing subnet config: json: cannot unmarshal number/);
    assert.throws(() => readNetConf(file('c.json', '{nope')), /error parsing subnet config: the config is not valid JSON/);
  });
});

describe('other nodes → lease records (NodeLeaseTracker)', () => {
  const make = () => {
    const skipped: SkippedNode[] = [];
    return { t: new NodeLeaseTracker('me', V4, K, (s) => skipped.push(s)), skipped };
  };
  const kinds = (changes: RecordChange[]) => changes.map((c) => (c.type === 'put' ? `put ${c.record.id} ${c.record.lease.subnet.toString()}` : `delete ${c.id}`));

  test('gate, add, unchanged update, relevant update, delete; the own node never appears', () => {
    const { t } = make();
    assert.deepEqual(t.upsert(flannelNode('me', '10.244.9.0/24', '192.168.50.9')), []);
    assert.deepEqual(t.upsert(node('plain', '10.244.8.0/24', { dummy: 'value' })), [], 'no gate, no lease');
    const a = flannelNode('a', '10.244.1.0/24', '192.168.50.11');
    assert.deepEqual(kinds(t.upsert(a)), ['put a 10.244.1.0/24']);
    assert.deepEqual(t.upsert({ ...a, metadata: { ...a.metadata, resourceVersion: '2', annotations: { ...a.metadata!.annotations!, unrelated: 'x' } } }), [], 'labels or unrelated annotations emit nothing');
    const moved = flannelNode('a', '10.244.1.0/24', '192.168.50.21');
    const put = t.upsert(moved);
    assert.deepEqual(kinds(put), ['put a 10.244.1.0/24']);
    assert.equal(put[0]!.type === 'put' && formatIpv4(put[0]!.record.lease.attrs.publicIp), '192.168.50.21');
    assert.deepEqual(kinds(t.delete(node('a', '', null))), ['delete a']);
    assert.deepEqual(t.delete(node('a', '', null)), []);
  });

  test('a malformed node is skipped and keeps nothing else from working; a later fix adds it', () => {
    const { t, skipped } = make();
    assert.equal(t.upsert(flannelNode('a', '10.244.1.0/24', '192.168.50.11')).length, 1);
    assert.deepEqual(t.upsert(flannelNode('b', '10.244.2.0/24', 'garbage')), []);
    assert.equal(skipped.length, 1);
    assert.match(skipped[0]!.reason, /invalid IP address format/);
    assert.equal(t.size, 1);
    assert.deepEqual(t.upsert(flannelNode('a', '10.244.1.0/24', 'garbage')), [], 'a bad update keeps the known route');
    assert.equal(t.size, 1);
    assert.deepEqual(kinds(t.upsert(flannelNode('b', '10.244.2.0/24', '192.168.50.12'))), ['put b 10.244.2.0/24']);
  });

  test('fixed on purpose: gate removal withdraws; a podCIDR change moves the record; records carry the creation time', () => {
    const { t } = make();
    const a = flannelNode('a', '10.244.1.0/24', '192.168.50.11');
    a.metadata!.creationTimestamp = new Date('2026-08-14T10:00:00Z');
    t.upsert(a);
    const movedNode = flannelNode('a', '10.244.7.0/24', '192.168.50.11');
    movedNode.metadata!.creationTimestamp = '2026-08-14T10:00:00Z';
    const moved = t.upsert(movedNode);
    assert.deepEqual(kinds(moved), ['put a 10.244.7.0/24']);
    assert.equal(moved[0]!.type === 'put' && moved[0]!.record.since, Date.parse('2026-08-14T10:00:00Z'));
    assert.deepEqual(kinds(t.upsert(node('a', '10.244.7.0/24', { dummy: 'value' }))), ['delete a']);
  });

  test('dual stack: a change confined to IPv6 is not ignored (upstream ignores it)', () => {
    const t = new NodeLeaseTracker('me', { ipv4: true, ipv6: true }, K, () => undefined);
    const base = { [K.subnetKubeManaged]: 'true', [K.backendType]: 'host-gw', [K.backendData]: 'null', [K.backendV6Data]: 'null', [K.publicIp]: '192.168.50.11', [K.publicIpv6]: 'fd00::11' };
    assert.equal(t.upsert(node('a', '10.244.1.0/24', base, ['10.244.1.0/24', 'fd00:1::/64'])).length, 1);
    assert.equal(t.upsert(node('a', '10.244.1.0/24', { ...base, [K.publicIpv6]: 'fd00::99' }, ['10.244.1.0/24', 'fd00:1::/64'])).length, 1);
  });

  test('snapshot lists what is known', () => {
    const { t } = make();
    t.upsert(flannelNode('a', '10.244.1.0/24', '192.168.50.11'));
    t.upsert(flannelNode('b', '10.244.2.0/24', '192.168.50.12', 'host-gw', 'null'));
    assert.deepEqual(t.snapshot().map((r) => `${r.id} ${r.lease.subnet.toString()}`), ['a 10.244.1.0/24', 'b 10.244.2.0/24']);
  });
});

describe('kube peers pass the same guard as etcd leases', () => {
  const network = kubeNetworkConfig(parseNetworkConfig('{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}}'));
  const own = { subnet: Ipv4Net.parse('10.244.9.0/24'), ipv6Subnet: undefined };
  const aged = (n: KubeNode, iso: string): KubeNode => ({ ...n, metadata: { ...n.metadata, creationTimestamp: iso } });
  const older = aged(flannelNode('zz-older', '10.244.5.0/24', '192.168.50.15'), '2026-01-01T00:00:00Z');
  const newer = aged(flannelNode('aa-newer', '10.244.5.0/24', '192.168.50.25'), '2026-06-01T00:00:00Z');
  const bad = [
    aged(flannelNode('default', '0.0.0.0/0', '192.168.50.30'), '2025-01-01T00:00:00Z'),
    aged(flannelNode('outside', '10.99.1.0/24', '192.168.50.31'), '2025-01-01T00:00:00Z'),
    aged(flannelNode('alias', '10.244.9.0/24', '192.168.50.32'), '2025-01-01T00:00:00Z'),
    aged(flannelNode('self-ip', '10.244.6.0/24', '192.168.50.9'), '2025-01-01T00:00:00Z'),
  ];

  /** Feeds nodes in `order` through a tracker and a guard; returns what is routed, subnet -> PublicIP. */
  function route(order: KubeNode[], relist = false): Map<string, string> {
    const tracker = new NodeLeaseTracker('me', V4, K, () => undefined);
    const routed = new Map<string, string>();
    const log = new RecordingLogger();
    const guard = new PeerLeaseGuard({ network, own, local: { ipv4: [parseIpv4('192.168.50.9')], ipv6: [], directedBroadcasts: [] } }, (evs) => {
      for (const e of evs) {
        if (e.type === 'added') routed.set(e.lease.subnet.toString(), formatIpv4(e.lease.attrs.publicIp));
        else routed.delete(e.lease.subnet.toString());
      }
    }, log);
    guard.apply({ kind: 'snapshot', records: [] });
    for (const n of order) guard.apply({ kind: 'changes', changes: tracker.upsert(n) });
    if (relist) guard.apply({ kind: 'snapshot', records: tracker.snapshot().reverse() });
    return routed;
  }

  test('two Nodes with the same podCIDR: the older creationTimestamp wins, whatever the order, also after a relist', () => {
    const want = new Map([['10.244.5.0/24', '192.168.50.15']]);
    assert.deepEqual(route([older, newer, ...bad]), want);
    assert.deepEqual(route([newer, ...bad, older]), want);
    assert.deepEqual(route([...bad, newer, older], true), want);
  });

  test('a podCIDR of 0.0.0.0/0, outside the Network or equal to ours, or our own address as public-ip: never routed', () => {
    assert.deepEqual([...route(bad).keys()], []);
  });
});
