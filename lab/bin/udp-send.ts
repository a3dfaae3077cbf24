/**
 * Sends one UDP datagram:
 *   node udp-send.js <bind-address> <to-address> <to-port> <payload-hex> [ttl]
 * The source port is chosen by the kernel. Exits 0 once the datagram is sent.
 */
import * as dgram from 'node:dgram';

const [bindAddress, toAddress, toPort, hex, ttl] = process.argv.slice(2);
if (!bindAddress || !toAddress || !toPort || hex === undefined) {
  process.stderr.write('usage: udp-send <bind-address> <to-address> <to-port> <payload-hex>\n');
  process.exit(2);
}
const sock = dgram.createSocket('udp4');
sock.bind(0, bindAddress, () => {
  if (ttl !== undefined) sock.setTTL(Number(ttl));
  sock.send(Buffer.from(hex, 'hex'), Number(toPort), toAddress, (err) => {
    if (err) {
      process.stderr.write(`udp-send: ${err.message}\n`);
      process.exit(1);
    }
    sock.close();
  });
});
