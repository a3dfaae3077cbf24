/**
 * Pure and local parts of the daemon: subnet.env bytes and file handling
 * (docs/compatibility.md §4.1-4.2), the udp backend's lease-event mapping (docs/compatibility.md §5.7), the
 * health endpoints (docs/compatibility.md §8.5) and the systemd notification (docs/compatibility.md §8.8).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { PARTIAL_CHECKSUMS, parseUdpCapabilities, udpBackendData } from '../src/backends/udp/capabilities';
import { UdpRouteSync } from '../src/backends/udp/route-sync';
import { HealthServer } from '../src/daemon/health';
import { START_EXTEND_BY_USEC, StartTimeoutExtender, SystemdNotifier } from '../src/daemon/sd-notify';
import { formatSubnetEnv, writeSubnetEnv } from '../src/lease/subnet-file';
import type { Lease } from '../src/lease/lease';
import { RecordingLogger } from '../src/logging';
import { Ipv4Net } from '../src/util/ipv4';
import { Ipv6Net, tryParseIpv6 } from '../src/util/ipv6';
import { testLease } from './helpers/leases';

test('subnet.env: exact lines and order (v4, dual stack)', () => {
  assert.equal(
    formatSubnetEnv({ network: Ipv4Net.parse('10.5.0.0/16'), subnet: Ipv4Net.parse('10.5.72.0/24'), ipv6Network: undefined, ipv6Subnet: undefined, mtu: 1472, ipMasq: false }),
    'FLANNEL_NETWORK=10.5.0.0/16\nFLANNEL_SUBNET=10.5.72.1/24\nFLANNEL_MTU=1472\nFLANNEL_IPMASQ=false\n',
  );
  assert.equal(
    formatSubnetEnv({
      network: Ipv4Net.parse('10.244.0.0/16'),
      subnet: Ipv4Net.parse('10.244.1.0/24'),
      ipv6Network: Ipv6Net.tryParse('2001:cafe:42::/56')!,
      ipv6Subnet: Ipv6Net.tryParse('2001:cafe:42::/64')!,
      mtu: 1450,
      ipMasq: true,
    }),
    'FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.1.1/24\nFLANNEL_IPV6_NETWORK=2001:cafe:42::/56\nFLANNEL_IPV6_SUBNET=2001:cafe:42::1/64\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n',
  );
});

test('subnet.env: created with its directories and mode 0644 whatever the umask; an existing mode is kept', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'senv-'));
  const old = process.umask(0o077);
  try {
    const file = path.join(dir, 'run', 'flannel', 'subnet.env');
    const e = { network: Ipv4Net.parse('10.5.0.0/16'), subnet: Ipv4Net.parse('10.5.1.0/24'), ipv6Network: undefined, ipv6Subnet: undefined, mtu: 1472, ipMasq: false };
    writeSubnetEnv(file, e);
    assert.equal(fs.statSync(file).mode & 0o777, 0o644);
    fs.chmodSync(file, 0o600);
    writeSubnetEnv(file, { ...e, mtu: 1400 });
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    assert.match(fs.readFileSync(file, 'utf8'), /FLANNEL_MTU=1400/);
    assert.deepEqual(fs.readdirSync(path.dirname(file)), ['subnet.env'], 'no temporary file left');
  } finally {
    process.umask(old);
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

const lease = testLease;

const plain = (address: string) => ({ address, partialChecksums: false });

test('udp: lease events become routes to PublicIP:Port and the peer set', () => {
  const r = new UdpRouteSync(8285);
  const a = r.apply([
    { type: 'added', lease: lease('10.5.2.0/24', '192.168.1.2') },
    { type: 'added', lease: lease('10.5.3.0/24', '192.168.1.3', 'vxlan') }, // any backend type, as upstream
  ]);
  assert.deepEqual(a.set.map((x) => `${x.subnet} ${x.peer}:${x.port}`), ['10.5.2.0/24 192.168.1.2:8285', '10.5.3.0/24 192.168.1.3:8285']);
  assert.deepEqual(a.peers, [plain('192.168.1.2'), plain('192.168.1.3')]);
  const b = r.apply([{ type: 'added', lease: lease('10.5.2.0/24', '192.168.1.9') }]);
  assert.deepEqual(b.set.map((x) => x.peer), ['192.168.1.9']);
  assert.deepEqual(b.peers, [plain('192.168.1.3'), plain('192.168.1.9')]);
  const c = r.apply([{ type: 'added', lease: lease('10.5.3.0/24', '192.168.1.3') }]);
  assert.equal(c.peers, undefined, 'unchanged peer set is not pushed again');
  const d = r.apply([{ type: 'removed', lease: lease('10.5.2.0/24', '192.168.1.9') }, { type: 'removed', lease: lease('10.5.99.0/24', '1.1.1.1') }]);
  assert.deepEqual(d.remove.map(String), ['10.5.2.0/24']);
  assert.deepEqual(d.peers, [plain('192.168.1.3')]);
  assert.equal(r.size, 1);
});

test('udp: a lease that gains or loses the partial-checksums capability switches its route and peer at once', () => {
  const capable = '{"Capabilities":["partial-checksums","something-later"]}';
  const r = new UdpRouteSync(8285);
  const a = r.apply([
    { type: 'added', lease: lease('10.5.2.0/24', '192.168.1.2', '', capable) },
    { type: 'added', lease: lease('10.5.3.0/24', '192.168.1.3') },
  ]);
  assert.deepEqual(a.set.map((x) => x.partialChecksums), [true, false]);
  assert.deepEqual(a.peers, [{ address: '192.168.1.2', partialChecksums: true }, plain('192.168.1.3')]);
  const lost = r.apply([{ type: 'added', lease: lease('10.5.2.0/24', '192.168.1.2') }]);
  assert.deepEqual(lost.set.map((x) => x.partialChecksums), [false], 'replaced by upstream flanneld: complete checksums again');
  assert.deepEqual(lost.peers, [plain('192.168.1.2'), plain('192.168.1.3')]);
  const gained = r.apply([{ type: 'added', lease: lease('10.5.3.0/24', '192.168.1.3', '', capable) }]);
  assert.deepEqual(gained.peers, [plain('192.168.1.2'), { address: '192.168.1.3', partialChecksums: true }]);
  // A second lease with that address (a stale lease, a rogue record): each route keeps its own
  // lease's flags; the address speaks with its newest lease (for its host's own traffic).
  const second = r.apply([{ type: 'added', lease: lease('10.5.4.0/24', '192.168.1.3'), since: 9 }]);
  assert.deepEqual(second.set.map((x) => `${x.subnet} ${x.partialChecksums}`), ['10.5.4.0/24 false']);
  assert.deepEqual(second.peers, [plain('192.168.1.2'), plain('192.168.1.3')]);
  assert.deepEqual(r.current.filter((x) => x.peer === '192.168.1.3').map((x) => `${x.subnet} ${x.partialChecksums}`), ['10.5.3.0/24 true', '10.5.4.0/24 false']);
  // The older record is the newest again once the other goes: its flags speak for the address.
  const back = r.apply([{ type: 'removed', lease: lease('10.5.4.0/24', '192.168.1.3') }]);
  assert.deepEqual(back.peers, [plain('192.168.1.2'), { address: '192.168.1.3', partialChecksums: true }]);
});

test('udp with IPv6: a lease\'s v6 subnet goes to its PublicIP, carrying IPv6 only when the lease says "ipv6"; a moved v6 part moves its route', () => {
  const capable = '{"Capabilities":["ipv6"]}';
  const v6 = (cidr: string, ip: string, cidr6: string, data?: string): Lease => ({ ...testLease(cidr, ip, '', data), ipv6Subnet: Ipv6Net.tryParse(cidr6)! });
  const r = new UdpRouteSync(8285, { ipv6: true });
  const a = r.apply([
    { type: 'added', lease: v6('10.5.2.0/24', '192.168.1.2', 'fd00:5:0:2::/64', capable) },
    { type: 'added', lease: v6('10.5.3.0/24', '192.168.1.3', 'fd00:5:0:3::/64') }, // upstream: a v6 subnet, no IPv6 datapath
    { type: 'added', lease: lease('10.5.4.0/24', '192.168.1.4', '', capable) }, // no v6 part
  ]);
  assert.deepEqual(
    a.set.map((x) => `${x.subnet} ${x.peer} ${x.ipv6 ? 'ipv6' : '-'}`),
    ['10.5.2.0/24 192.168.1.2 ipv6', 'fd00:5:0:2::/64 192.168.1.2 ipv6', '10.5.3.0/24 192.168.1.3 -', 'fd00:5:0:3::/64 192.168.1.3 -', '10.5.4.0/24 192.168.1.4 ipv6'],
  );
  assert.deepEqual(a.peers, [
    { address: '192.168.1.2', partialChecksums: false, ipv6: true },
    { address: '192.168.1.3', partialChecksums: false, ipv6: false },
    { address: '192.168.1.4', partialChecksums: false, ipv6: true },
  ]);
  assert.equal(r.size, 5);
  const moved = r.apply([{ type: 'added', lease: v6('10.5.2.0/24', '192.168.1.2', 'fd00:5:0:22::/64', capable) }]);
  assert.deepEqual(moved.remove.map(String), ['fd00:5:0:2::/64']);
  assert.deepEqual(moved.set.map((x) => String(x.subnet)), ['10.5.2.0/24', 'fd00:5:0:22::/64']);
  const lost = r.apply([{ type: 'added', lease: lease('10.5.2.0/24', '192.168.1.2') }]); // replaced by upstream, no v6 part
  assert.deepEqual(lost.remove.map(String), ['fd00:5:0:22::/64']);
  assert.deepEqual(lost.peers?.[0], { address: '192.168.1.2', partialChecksums: false, ipv6: false });
  const gone = r.apply([{ type: 'removed', lease: v6('10.5.3.0/24', '192.168.1.3', 'fd00:5:0:3::/64') }]);
  assert.deepEqual(gone.remove.map(String).sort(), ['10.5.3.0/24', 'fd00:5:0:3::/64']);
  assert.equal(r.size, 2);
  // IPv6 off: v6 parts are ignored, peers carry no ipv6 field.
  const off = new UdpRouteSync(8285).apply([{ type: 'added', lease: v6('10.5.2.0/24', '192.168.1.2', 'fd00:5:0:2::/64', capable) }]);
  assert.deepEqual(off.set.map((x) => String(x.subnet)), ['10.5.2.0/24']);
  assert.deepEqual(off.peers, [plain('192.168.1.2')]);
});

test('udp underlays: a peer is its PublicIP when both ends have one, else its PublicIPv6; IPv6 only routes no IPv4 part; no common underlay is reported', () => {
  const capable = '{"Capabilities":["ipv6"]}';
  const dual = (cidr: string, ip: string, cidr6: string, ip6: string | undefined, v4data?: string, v6data?: string): Lease => {
    const l = testLease(cidr, ip, '', v4data);
    return { ...l, ipv6Subnet: Ipv6Net.tryParse(cidr6)!, attrs: { ...l.attrs, publicIpv6: ip6 === undefined ? undefined : tryParseIpv6(ip6)!, backendV6Data: v6data } };
  };
  const both = new UdpRouteSync(8285, { ipv6: true, underlay6: true });
  const a = both.apply([
    { type: 'added', lease: dual('10.5.2.0/24', '192.168.1.2', 'fd00:5:0:2::/64', 'fd99::2', capable, capable) },
    { type: 'added', lease: dual('0.0.0.0/0', '0.0.0.0', 'fd00:5:0:3::/64', 'fd99::3', undefined, capable) }, // no PublicIP
    { type: 'added', lease: dual('0.0.0.0/0', '0.0.0.0', 'fd00:5:0:4::/64', undefined) }, // neither
  ]);
  assert.deepEqual(a.set.map((x) => `${x.subnet} ${x.peer} ${x.ipv6 ? 'ipv6' : '-'}`), [
    '10.5.2.0/24 192.168.1.2 ipv6',
    'fd00:5:0:2::/64 192.168.1.2 ipv6',
    '0.0.0.0/0 fd99::3 ipv6', // dual stack routes a v4 part as it comes; the guard refuses 0.0.0.0/0 before it gets here
    'fd00:5:0:3::/64 fd99::3 ipv6',
  ]);
  assert.deepEqual(a.unreachable.map((l) => l.ipv6Subnet!.toString()), ['fd00:5:0:4::/64']);
  // IPv6 only: the capability comes from BackendV6Data, no IPv4 part is routed, every peer is a PublicIPv6.
  const v6only = new UdpRouteSync(8285, { ipv4: false, ipv6: true, underlay4: false, underlay6: true });
  const b = v6only.apply([
    { type: 'added', lease: dual('0.0.0.0/0', '0.0.0.0', 'fd00:5:0:3::/64', 'fd99::3', undefined, capable) },
    { type: 'added', lease: dual('0.0.0.0/0', '0.0.0.0', 'fd00:5:0:5::/64', 'fd99::5', undefined, capable) },
  ]);
  assert.deepEqual(b.set.map((x) => `${x.subnet} ${x.peer}`), ['fd00:5:0:3::/64 fd99::3', 'fd00:5:0:5::/64 fd99::5']);
  assert.deepEqual(b.peers, [
    { address: 'fd99::3', partialChecksums: false, ipv6: true },
    { address: 'fd99::5', partialChecksums: false, ipv6: true },
  ]);
  // Keyed by the lease's IPv6 subnet there: removing one keeps the other.
  const c = v6only.apply([{ type: 'removed', lease: dual('0.0.0.0/0', '0.0.0.0', 'fd00:5:0:3::/64', 'fd99::3') }]);
  assert.deepEqual(c.remove.map(String), ['fd00:5:0:3::/64']);
  assert.equal(v6only.size, 1);
});

test('udp capabilities: the BackendData object and what is read from leases', () => {
  assert.equal(udpBackendData([]), undefined, 'none: no BackendData, upstream\'s bytes');
  assert.equal(udpBackendData([PARTIAL_CHECKSUMS]), '{"Capabilities":["partial-checksums"]}');
  for (const none of [undefined, 'null', '{}', '{"VNI":1,"VtepMAC":"aa:bb:cc:dd:ee:ff"}', 'not json', '[]', '{"Capabilities":"partial-checksums"}']) {
    assert.deepEqual([...parseUdpCapabilities(none)], [], String(none));
  }
  assert.deepEqual([...parseUdpCapabilities('{"Capabilities":["partial-checksums",7,"ipv6"]}')], ['partial-checksums', 'ipv6']);
});

function get(port: number, p: string, method = 'GET'): Promise<{ status: number; body: string; type: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: p, method }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, type: String(res.headers['content-type']) }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('health endpoints: upstream\'s bodies and codes', async () => {
  let ready = false;
  let live: string | undefined;
  const srv = await HealthServer.start(
    '127.0.0.1',
    0,
    { ready: async () => (ready ? [] : ['starting']), live: async () => live, metrics: async () => ({ contentType: 'text/plain; version=0.0.4; charset=utf-8', body: 'm 1\n' }) },
    new RecordingLogger(),
  );
  try {
    assert.deepEqual(await get(srv.port, '/healthz'), { status: 200, body: 'flanneld is running', type: 'text/plain; charset=utf-8' });
    assert.deepEqual(await get(srv.port, '/healthz', 'POST'), { status: 200, body: 'flanneld is running', type: 'text/plain; charset=utf-8' });
    assert.deepEqual(await get(srv.port, '/readyz'), { status: 503, body: 'flanneld is not ready yet', type: 'text/plain; charset=utf-8' });
    ready = true;
    assert.deepEqual(await get(srv.port, '/readyz'), { status: 200, body: 'flanneld is ready', type: 'text/plain; charset=utf-8' });
    assert.equal((await get(srv.port, '/metricz')).status, 404);
    assert.deepEqual(await get(srv.port, '/metrics'), { status: 200, body: 'm 1\n', type: 'text/plain; version=0.0.4; charset=utf-8' });
    live = 'a datapath thread has made no progress for 6.0 s';
    assert.deepEqual(await get(srv.port, '/healthz'), { status: 500, body: 'flanneld is not healthy: a datapath thread has made no progress for 6.0 s', type: 'text/plain; charset=utf-8' });
  } finally {
    await srv.close();
  }
});

test('READY=1 reaches a real $NOTIFY_SOCKET (path and abstract)', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'notify-'));
  try {
    for (const name of [path.join(dir, 'notify.sock'), `@flannel-ts-test-${process.pid}`]) {
      // Python's socket module binds the AF_UNIX datagram socket Node cannot.
      const py = spawn('python3', ['-c', [
        'import socket,sys',
        'n=sys.argv[1]',
        's=socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)',
        "s.bind('\\0'+n[1:] if n.startswith('@') else n)",
        "print('bound', flush=True)",
        's.settimeout(10)',
        "print(s.recv(100).decode(), flush=True)",
      ].join('\n'), name]);
      let out = '';
      py.stdout.on('data', (d: Buffer) => (out += d.toString()));
      const exited = new Promise<void>((resolve) => py.once('exit', () => resolve()));
      while (!out.includes('bound')) await new Promise((r) => setTimeout(r, 20));
      assert.equal(new SystemdNotifier(name, new RecordingLogger()).notify('READY=1'), true);
      await exited;
      assert.match(out, /bound\nREADY=1\n/, name);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('without $NOTIFY_SOCKET nothing is sent; a send failure is only logged', () => {
  const log = new RecordingLogger();
  assert.equal(new SystemdNotifier(undefined, log).notify('READY=1'), false);
  assert.equal(new SystemdNotifier('/nonexistent/notify.sock', log).notify('READY=1'), false);
  assert.ok(log.records.some((r) => r.level === 'warn' && /failed to notify systemd/.test(r.msg)));
});

/** The kube-related modules a fresh node process has loaded after requiring `entry`. */
async function kubeModulesLoadedBy(entry: string): Promise<string[]> {
  const script = `require(${JSON.stringify(entry)}); process.stdout.write(JSON.stringify(Object.keys(require.cache).filter((k) => k.includes('@kubernetes') || k.includes('kube-subnet-manager'))));`;
  const out = await new Promise<string>((resolve, reject) => {
    const p = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let s = '';
    p.stdout.on('data', (d: Buffer) => (s += d.toString()));
    p.on('error', reject);
    p.on('exit', (code) => (code === 0 ? resolve(s) : reject(new Error(`exit ${code}`))));
  });
  return JSON.parse(out) as string[];
}

test('etcd mode does not load @kubernetes/client-node (it would add ~0.6 s to every start, and to a udp restart\'s gap)', async () => {
  assert.deepEqual(await kubeModulesLoadedBy(path.resolve(__dirname, '..', 'src', 'daemon', 'daemon.js')), []);
  // The check would see it: the kube manager's module does pull it in.
  assert.ok((await kubeModulesLoadedBy(path.resolve(__dirname, '..', 'src', 'lease', 'kube', 'kube-subnet-manager.js'))).length > 0);
});

test('while starting: EXTEND_TIMEOUT_USEC at once and then periodically, STATUS= on each new wait, nothing after stop', async () => {
  const sent: string[] = [];
  const notifier = new SystemdNotifier('/run/test.sock', new RecordingLogger(), (_p, m) => void sent.push(m));
  const ext = new StartTimeoutExtender(notifier, 30);
  ext.start('connecting to etcd');
  ext.status('connecting to etcd');
  ext.status('waiting for the network config in etcd (/coreos.com/network/config)');
  await new Promise((r) => setTimeout(r, 100));
  ext.stop();
  const after = sent.length;
  await new Promise((r) => setTimeout(r, 80));
  assert.equal(sent.length, after, 'nothing after stop');
  assert.deepEqual(sent.slice(0, 3), ['STATUS=connecting to etcd', `EXTEND_TIMEOUT_USEC=${START_EXTEND_BY_USEC}`, 'STATUS=waiting for the network config in etcd (/coreos.com/network/config)']);
  assert.ok(sent.filter((m) => m.startsWith('EXTEND_TIMEOUT_USEC=')).length >= 3, sent.join(' | '));
  // Without $NOTIFY_SOCKET: nothing at all.
  const quiet: string[] = [];
  const none = new StartTimeoutExtender(new SystemdNotifier(undefined, new RecordingLogger(), (_p, m) => void quiet.push(m)), 10);
  none.start('x');
  await new Promise((r) => setTimeout(r, 30));
  none.stop();
  assert.deepEqual(quiet, []);
});
