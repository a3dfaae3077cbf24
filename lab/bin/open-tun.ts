/**
 * Tries to create a TUN device with our datapath and prints the outcome as
 * JSON: {"ok":true,"name":"flannel0"} or {"ok":false,"name":"TunOpenError",
 * "code":"EPERM","op":"ioctl TUNSETIFF","message":"..."}. Used by tests that
 * run it without /dev/net/tun or without CAP_NET_ADMIN.
 */
import { DatapathError } from '../../src/forwarder/errors';
import { UdpForwarder } from '../../src/forwarder/udp-forwarder';
import { errorText } from '../../src/util/errors';

const fwd = new UdpForwarder();
try {
  const name = fwd.openTun(process.argv[2] ?? 'flannel%d');
  process.stdout.write(JSON.stringify({ ok: true, name }) + '\n');
} catch (e) {
  const d = e instanceof DatapathError ? e : undefined;
  process.stdout.write(
    JSON.stringify({ ok: false, name: e instanceof Error ? e.name : 'unknown', code: d?.code, op: d?.op, message: errorText(e) }) + '\n',
  );
} finally {
  fwd.close();
}
