/**
 * Startup failures of the real bin/flanneld say what to do: no usable
 * interface (the candidates), etcd unreachable (which endpoint), TUN not
 * openable (what is missing), bad config (the key and an example), unknown
 * backend; and a signal during startup is a clean exit 0.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { FlannelCluster, FLANNELD, PREFIX } from '../lab/flannel-cluster';
import { notifyListener } from '../lab/daemon-probes';
import { Lab } from '../lab/netns';
import { eventually } from './helpers/eventually';
import { ROOT_SUITE } from './helpers/root';

describe('flanneld startup errors', ROOT_SUITE, () => {
  let lab: Lab;
  let cluster: FlannelCluster;

  before(async () => {
    lab = new Lab();
    cluster = await FlannelCluster.create(lab, { nodes: 1, config: { Network: '10.6.0.0/16', Backend: { Type: 'udp' } } });
  });
  after(async () => {
    await lab?.cleanup();
  });

  test('no usable interface: exit 1, listing the candidates', async () => {
    const node = cluster.startNode(1, ['-iface=nosuch0', '-iface-regex=^wlan']);
    assert.equal(await node.waitExit(15_000), 1);
    const msgs = node.messages().join('\n');
    assert.match(msgs, /Could not find valid interface matching nosuch0/);
    assert.match(msgs, /Failed to find interface to use that matches the interfaces and\/or regexes provided \(interfaces: lo:\[127\.0\.0\.1 ::1\], \w+:\[192\.168\.100\.1 /);
  });

  test('etcd unreachable: says which endpoint, keeps trying (systemd is told to wait, and what for), a signal ends it cleanly', async () => {
    const notify = await notifyListener(lab);
    const node = cluster.startNode(1, ['-etcd-endpoints=http://127.0.0.1:1'], { NOTIFY_SOCKET: notify.path });
    await eventually(() => node.messages(), (m) => m.some((x) => /Couldn't fetch network config: etcd is unreachable \(get \/coreos\.com\/network\/config; endpoints http:\/\/127\.0\.0\.1:1\)/.test(x)), 15_000, 'the unreachable message');
    // Type=notify with systemd's default start timeout would kill it after 90 s; it extends the timeout instead.
    const got = notify.received();
    assert.match(got, /^EXTEND_TIMEOUT_USEC=60000000$/m);
    assert.match(got, /^STATUS=waiting for the network config in etcd \(\/coreos\.com\/network\/config\)$/m);
    assert.doesNotMatch(got, /^READY=1$/m);
    assert.equal(await node.stop('SIGTERM'), 0);
  });

  test('a bad config names the key and shows an example; fixing it lets startup go on', { timeout: 60_000 }, async () => {
    await cluster.etcdctl('put', `${PREFIX}/config`, '{"Network":"10.6.0.0/16","SubnetLen":31}');
    const node = cluster.startNode(1);
    try {
      await eventually(() => node.messages(), (m) => m.some((x) => /SubnetLen must be less than \/31 \(in \/coreos\.com\/network\/config; fix it with e\.g\. ETCDCTL_API=3 etcdctl put \/coreos\.com\/network\/config/.test(x)), 10_000, 'the config error');
      assert.ok(node.running);
      await cluster.etcdctl('put', `${PREFIX}/config`, '{"Network":"10.6.0.0/16","Backend":{"Type":"udp"}}');
      await cluster.waitSubnet(1, 20_000);
    } finally {
      assert.equal(await node.stop('SIGTERM'), 0);
    }
  });

  test('an unknown backend type: exit 1 with upstream\'s message', async () => {
    await cluster.etcdctl('put', `${PREFIX}/config`, '{"Network":"10.6.0.0/16","Backend":{"Type":"IPSec"}}');
    try {
      const node = cluster.startNode(1);
      assert.equal(await node.waitExit(15_000), 1);
      assert.ok(node.messages().some((m) => m === 'unknown backend type: ipsec'));
    } finally {
      await cluster.etcdctl('put', `${PREFIX}/config`, '{"Network":"10.6.0.0/16","Backend":{"Type":"udp"}}');
    }
  });

  test('a bad FLANNEL_TS_OFFLOAD: exit 1 naming the value and what is accepted', async () => {
    const node = cluster.startNode(1, [], { FLANNEL_TS_OFFLOAD: 'gso,turbo' });
    assert.equal(await node.waitExit(15_000), 1);
    assert.ok(
      node.messages().some((m) => /Error registering network: FLANNEL_TS_OFFLOAD="gso,turbo": unknown offload "turbo"; use "off", "on", or a comma list of tso, uso, gso, gro/.test(m)),
      node.messages().slice(-5).join('\n'),
    );
  });

  test('the kernel fast path where it cannot run: "ebpf" refused naming the fix, "auto" falls back saying why, a bad mode named', { timeout: 60_000 }, async () => {
    const spec = cluster.topology.nodes[0]!;
    const sysctl = `net.ipv4.conf.${spec.underlayIf}.forwarding`;
    await lab.exec(spec.ns, 'sysctl', ['-qw', `${sysctl}=0`]);
    try {
      const ebpf = cluster.startNode(1, [], { FLANNEL_TS_DATAPATH: 'ebpf' });
      assert.equal(await ebpf.waitExit(15_000), 1);
      const why = `IPv4 forwarding is off on ${spec.underlayIf}: set net.ipv4.ip_forward=1`;
      assert.ok(ebpf.messages().some((m) => m === `Error registering network: "Datapath": "ebpf": the kernel fast path cannot run on this node: ${why} (a flannel node forwards pod traffic anyway)`), ebpf.messages().slice(-3).join('\n'));
      const auto = cluster.startNode(1, [], { FLANNEL_TS_DATAPATH: 'auto' });
      // subnet.env of an earlier test may be there already: wait for the daemon itself.
      await eventually(() => auto.messages(), (m) => m.some((x) => x.startsWith('flanneld is running')), 20_000, 'flanneld running');
      assert.equal(auto.messages().filter((m) => m.startsWith(`udp datapath: user space only (Datapath auto: the kernel fast path cannot run here: ${why}`)).length, 1);
      assert.equal(await auto.stop('SIGTERM'), 0);
    } finally {
      await lab.exec(spec.ns, 'sysctl', ['-qw', `${sysctl}=1`]);
    }
    const bad = cluster.startNode(1, [], { FLANNEL_TS_DATAPATH: 'turbo' });
    assert.equal(await bad.waitExit(15_000), 1);
    assert.ok(bad.messages().some((m) => m === 'Error registering network: FLANNEL_TS_DATAPATH=turbo is not one of user, ebpf, auto'));
  });

  test('no CAP_NET_ADMIN: the TUN error says what is missing', async () => {
    const spec = cluster.topology.nodes[0]!;
    const proc = lab.spawn(spec.ns, 'setpriv', [
      '--inh-caps=-net_admin',
      '--bounding-set=-net_admin',
      process.execPath,
      FLANNELD,
      `-etcd-endpoints=${cluster.etcdEndpoint}`,
      `-iface=${spec.underlayIf}`,
      `-subnet-file=${cluster.subnetFileOf(1)}.nocap`,
    ]);
    let err = '';
    proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const code = await new Promise<number | null>((resolve) => proc.once('exit', (c) => resolve(c)));
    assert.equal(code, 1, err);
    assert.match(err, /Error registering network: failed to open TUN device: ioctl TUNSETIFF: Operation not permitted \(EPERM\)\. Fix: creating a TUN device needs CAP_NET_ADMIN/);
    // The default log format is klog's line shape, as upstream's.
    assert.match(err, /^I\d{4} \d\d:\d\d:\d\d\.\d{6} +\d+ flanneld\] CLI flags config config=\{"etcd":/m);
    assert.match(err, /^E\d{4} [\d:.]+ +\d+ flanneld\] Error registering network: /m);
  });
});
