/**
 * Fault injection for the panic tests, loaded into the real agent with Node's own preload flag
 * (`node --import ./test/fault/lib/panic-inject.ts src/main.ts ...`); nothing in the shipped
 * code knows about it. Node runs a preload in the main thread and in every worker thread, so
 * each thread gets one UDP socket on 127.0.0.1 (its port announced on stderr as
 * `panic-inject thread=<threadId> main=<bool> port=<port>`). A datagram `throw` makes that
 * socket's message callback throw; `reject` makes it leave a rejected promise unhandled: the
 * two ways an exception escapes an OS-boundary callback outside any query's handling.
 */
import dgram from 'node:dgram';
import { isMainThread, threadId } from 'node:worker_threads';

const sock = dgram.createSocket('udp4');
sock.on('message', (msg) => {
  const what = msg.toString('utf8');
  if (what === 'throw') throw new Error(`injected fault: thrown from a dgram callback (thread ${threadId})`);
  if (what === 'reject') void Promise.reject(new Error(`injected fault: unhandled rejection (thread ${threadId})`));
});
sock.bind(0, '127.0.0.1', () => {
  sock.unref();
  process.stderr.write(`panic-inject thread=${threadId} main=${isMainThread} port=${sock.address().port}\n`);
});
