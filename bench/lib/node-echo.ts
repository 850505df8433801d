/**
 * The Node.js floor, a reference for `npm run bench` and not a DNS server: a bare `dgram`
 * responder that sets QR on every query and sends it back, doing no parsing, caching,
 * forwarding or counting. It costs what any Node.js UDP server pays per datagram (receive
 * buffer, `rinfo`, the callback, one send) and nothing more, so node-local-dns / node-echo
 * shows how much of the per-query cost is node-local-dns's own work.
 *
 * Usage: node bench/lib/node-echo.ts ADDRESS PORT [TAG]   (loopback addresses only; TAG, e.g. the
 * harness's instance directory, only marks the command line)
 */
import dgram from 'node:dgram';
import { assertLoopback } from './net.ts';

const [address, portText] = process.argv.slice(2);
if (address === undefined || portText === undefined) {
  process.stderr.write('usage: node-echo.ts ADDRESS PORT\n');
  process.exit(2);
}
assertLoopback(address);
const socket = dgram.createSocket({
  type: address.includes(':') ? 'udp6' : 'udp4',
  // IP literals only: answer in the same tick instead of dgram's deferred default lookup.
  lookup: ((a: string, _o: unknown, cb: (e: null, a: string, f: number) => void) => cb(null, a, address.includes(':') ? 6 : 4)) as never,
});
socket.on('message', (msg, rinfo) => {
  // RFC 1035 §4.1.1: the 12-byte header carries QR in the high bit of byte 2.
  if (msg.length < 12) return;
  msg[2] = msg[2]! | 0x80;
  socket.send(msg, rinfo.port, rinfo.address);
});
socket.bind(Number(portText), address);
process.on('SIGTERM', () => socket.close(() => process.exit(0)));
