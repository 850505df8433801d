/**
 * The batched UDP path (native/udp.c + udp-batched.ts) where it differs from dgram or can fail
 * on its own: the same replies as dgram for malformed, empty and largest datagrams; replies
 * the kernel refuses (EAGAIN, a full send buffer behind a slow qdisc) dropped and counted
 * without harm; a listener closed in the middle of a batch; SO_REUSEPORT between worker
 * threads, terminated with their sockets open; IPv6 senders; the addon's argument checks.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { Dispatcher, Generation, RouteTarget } from './dispatch.ts';
import { type UdpListener, createUdpListener } from './udp.ts';
import { BatchedUdpListener, ipv6Text } from './udp-batched.ts';
import { UdpIo, loadUdpAddon } from './udp-native.ts';
import { ZoneMatcher } from '../wire/zone-match.ts';
import { getZoneStats } from '../metrics/zone-stats.ts';
import { buildEmptyResponse } from '../wire/message.ts';
import { Rcode } from '../wire/codes.ts';
import type { Request } from './request.ts';
import { createScratchNetns } from '../../test/netns/harness.ts';
import { waitUntil } from '../../test/lib/net.ts';

const { addon, reason } = loadUdpAddon();
const skip = addon === null ? `UDP addon unavailable: ${reason}` : false;
if (addon === null && process.env.NODE_LOCAL_DNS_UDP_IO === UdpIo.BATCHED) throw new Error(`NODE_LOCAL_DNS_UDP_IO=batched: ${reason}`);

/** A dispatcher whose chain is `serve` (routing every name to it). */
function dispatcherWith(serve: (req: Request) => void): Dispatcher {
  const table = new ZoneMatcher<RouteTarget>();
  table.add('.', new RouteTarget({ serve }, getZoneStats('dns://127.0.0.1:0', '.'), null, new Generation(1)));
  return new Dispatcher('dns://127.0.0.1:0', table);
}

const answerNoerror = (req: Request) => {
  const out = buildEmptyResponse(req, Rcode.NOERROR);
  req.reply(out, out.length, 'test');
};

/** A query for www.test (A) with `id`; with EDNS (payload 4096) and `padding` bytes of EDNS padding when given. */
function query(id: number, padding = -1): Buffer {
  const q = Buffer.from([id >> 8, id & 255, 1, 0, 0, 1, 0, 0, 0, 0, 0, padding >= 0 ? 1 : 0, 3, 119, 119, 119, 4, 116, 101, 115, 116, 0, 0, 1, 0, 1]);
  if (padding < 0) return q;
  const opt = Buffer.alloc(11 + 4 + padding);
  opt.writeUInt16BE(41, 1); // type OPT, root owner
  opt.writeUInt16BE(4096, 3);
  opt.writeUInt16BE(4 + padding, 9);
  opt.writeUInt16BE(12, 11); // option PADDING
  opt.writeUInt16BE(padding, 13);
  return Buffer.concat([q, opt]);
}

/** Deterministic PRNG (mulberry32). */
function prng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Datagrams that each carry a distinct ID in their first two bytes (when they have two):
 * empty, one byte, short headers, random bytes, mutated valid queries, the largest IPv4
 * datagram (a valid query padded to 65507 bytes) and one just below.
 */
function corpus(): Buffer[] {
  const rnd = prng(16);
  const out: Buffer[] = [Buffer.alloc(0), Buffer.from([7])];
  let id = 1;
  const withId = (b: Buffer) => {
    if (b.length >= 2) b.writeUInt16BE(id++, 0);
    out.push(b);
  };
  for (let len = 2; len < 14; len++) withId(Buffer.alloc(len, 0x41));
  for (let i = 0; i < 150; i++) {
    const b = Buffer.alloc(2 + Math.floor(rnd() * 600));
    for (let j = 0; j < b.length; j++) b[j] = Math.floor(rnd() * 256);
    withId(b);
  }
  for (let i = 0; i < 150; i++) {
    const b = query(0, rnd() < 0.5 ? -1 : Math.floor(rnd() * 64));
    for (let k = 0; k < 3; k++) b[2 + Math.floor(rnd() * (b.length - 2))] = Math.floor(rnd() * 256);
    withId(b);
  }
  withId(query(0, 65507 - 26 - 15));
  withId(query(0, 65000));
  return out;
}

/** Sends every datagram of `dgrams` to 127.0.0.1:port (paced), returns the replies by ID (hex), after a quiet period. */
async function exchange(port: number, dgrams: Buffer[]): Promise<Map<number, string>> {
  const c = dgram.createSocket('udp4');
  c.bind(0);
  await new Promise((r) => c.once('listening', r));
  c.setRecvBufferSize(8 * 1024 * 1024);
  const replies = new Map<number, string>();
  c.on('message', (m) => {
    if (m.length >= 2) replies.set(m.readUInt16BE(0), m.toString('hex'));
  });
  for (let i = 0; i < dgrams.length; i++) {
    c.send(dgrams[i]!, port, '127.0.0.1');
    if (i % 32 === 31) await new Promise((r) => setTimeout(r, 5));
  }
  await new Promise((r) => setTimeout(r, 700));
  c.close();
  return replies;
}

test('batched and dgram answer the same malformed, empty and largest datagrams with the same bytes', { skip, timeout: 60_000 }, async () => {
  const dgrams = corpus();
  const results: Map<number, string>[] = [];
  for (const io of [UdpIo.DGRAM, UdpIo.BATCHED]) {
    const l = createUdpListener('127.0.0.1', 0, dispatcherWith(answerNoerror), false, io);
    const port = await l.bind();
    results.push(await exchange(port, dgrams));
    assert.equal(l.received, dgrams.length, `${io}: every datagram received`);
    await l.close();
  }
  const [viaDgram, viaBatched] = results as [Map<number, string>, Map<number, string>];
  assert.ok(viaDgram.size > 100, `dgram answered ${viaDgram.size}`);
  // The two largest are answered (NOERROR with the question).
  assert.ok(viaBatched.has(dgrams.length - 3) && viaBatched.has(dgrams.length - 2), 'largest datagrams answered');
  assert.deepEqual([...viaBatched.entries()].sort(), [...viaDgram.entries()].sort());
});

/**
 * Child process (run inside a namespace whose loopback is shaped to 1 Mbit/s): a batched
 * listener with a 4 KiB send buffer answering 600-byte replies to 300 queries. Prints the
 * counters, then whether a query sent after the queue drained is still answered.
 */
const SLOW_SEND_CHILD = `
import dgram from 'node:dgram';
import { Dispatcher, Generation, RouteTarget } from '${fileURLToPath(new URL('./dispatch.ts', import.meta.url))}';
import { createUdpListener } from '${fileURLToPath(new URL('./udp.ts', import.meta.url))}';
import { udpIoStats } from '${fileURLToPath(new URL('./udp-native.ts', import.meta.url))}';
import { ZoneMatcher } from '${fileURLToPath(new URL('../wire/zone-match.ts', import.meta.url))}';
import { getZoneStats } from '${fileURLToPath(new URL('../metrics/zone-stats.ts', import.meta.url))}';
const table = new ZoneMatcher();
table.add('.', new RouteTarget({ serve(req) { const out = Buffer.alloc(600); req.msg.copy(out, 0, 0, 12); out[2] |= 0x80; req.reply(out, 600, 'test'); } }, getZoneStats('dns://x', '.'), null, new Generation(1)));
const l = createUdpListener('127.0.0.1', 0, new Dispatcher('dns://x', table), false, 'batched');
const port = await l.bind();
l.nativeSocket.setBufferSizes(0, 4096);
const c = dgram.createSocket('udp4');
let answered = 0;
c.on('message', () => answered++);
const q = Buffer.from([0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 1, 3, 119, 119, 119, 4, 116, 101, 115, 116, 0, 0, 1, 0, 1, 0, 0, 41, 16, 0, 0, 0, 0, 0, 0, 0]);
for (let i = 0; i < 300; i++) c.send(q, port, '127.0.0.1');
await new Promise((r) => setTimeout(r, 3000));
const flood = { received: l.received, sent: l.sent, sendErrors: l.sendErrors, bufferFull: udpIoStats.sendBufferFull, answered };
answered = 0;
c.send(q, port, '127.0.0.1');
await new Promise((r) => setTimeout(r, 1000));
console.log(JSON.stringify({ ...flood, after: answered }));
c.close();
await l.close();
`;

test('a full send buffer (EAGAIN) drops the rest of the batch, counted; the listener keeps serving', { skip, timeout: 60_000 }, async () => {
  const ns = await createScratchNetns('udpsnd');
  try {
    await ns.exec('tc', ['qdisc', 'add', 'dev', 'lo', 'root', 'tbf', 'rate', '1mbit', 'burst', '1600', 'limit', '3000000']);
    const child = ns.spawn(process.execPath, ['--input-type=module', '-e', SLOW_SEND_CHILD]);
    let out = '';
    let err = '';
    child.stdout!.on('data', (d: Buffer) => (out += d));
    child.stderr!.on('data', (d: Buffer) => (err += d));
    const code = await new Promise((r) => child.once('exit', r));
    assert.equal(code, 0, err);
    const r = JSON.parse(out) as { received: number; sent: number; sendErrors: number; bufferFull: number; answered: number; after: number };
    assert.equal(r.received, 300);
    assert.ok(r.bufferFull > 0, `EAGAIN drops counted: ${out}`);
    assert.equal(r.sent + r.sendErrors, r.received, `every reply sent or counted: ${out}`);
    assert.equal(r.bufferFull, r.sendErrors);
    assert.ok(r.answered > 0 && r.answered <= r.sent, out);
    assert.equal(r.after, 1, 'answered after the queue drained');
  } finally {
    await ns.delete();
  }
});

test('closing the listener in the middle of a batch: the rest of the batch is dropped, replies after the close are ignored', {
  skip,
  timeout: 30_000,
}, async () => {
  const late: Request[] = [];
  let served = 0;
  let l: UdpListener | null = null;
  const dispatcher = dispatcherWith((req) => {
    served++;
    if (served === 3) void l!.close();
    if (served >= 3) late.push(req);
    else answerNoerror(req);
  });
  l = createUdpListener('127.0.0.1', 0, dispatcher, false, UdpIo.BATCHED);
  const port = await l.bind();
  const c = dgram.createSocket('udp4');
  let answered = 0;
  c.on('message', () => answered++);
  for (let i = 0; i < 50; i++) c.send(query(i), port, '127.0.0.1');
  // The sends are on the wire once the client's loop turn ran; then one batch holds them all.
  await waitUntil(() => served >= 3, 'three queries served', 5_000);
  assert.equal(l.received, 3, 'no datagram dispatched after the close');
  for (const req of late) answerNoerror(req); // after the close: ignored, but finished
  assert.equal(dispatcher.inFlight, 0);
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(answered, 2, 'the replies queued before the close were sent');
  await l.close();
  c.close();
});

test('worker threads share a port through SO_REUSEPORT and terminate with their sockets open', { skip, timeout: 60_000 }, async () => {
  const url = new URL('../../test/lib/udp-worker.ts', import.meta.url);
  const first = new Worker(url, { workerData: { port: 0 } });
  const port = await new Promise<number>((resolve, reject) => {
    first.once('message', (m: { port: number }) => resolve(m.port));
    first.once('error', reject);
  });
  const second = new Worker(url, { workerData: { port } });
  await new Promise((resolve, reject) => {
    second.once('message', resolve);
    second.once('error', reject);
  });
  const clients = Array.from({ length: 32 }, () => dgram.createSocket('udp4'));
  let answered = 0;
  for (const c of clients) c.on('message', () => answered++);
  for (let i = 0; i < 320; i++) {
    clients[i % 32]!.send(query(i), port, '127.0.0.1');
    if (i % 32 === 31) await new Promise((r) => setTimeout(r, 2));
  }
  await waitUntil(() => answered === 320, 'every query answered', 10_000);
  const count = (w: Worker) =>
    new Promise<number>((resolve) => {
      w.once('message', (m: { received: number }) => resolve(m.received));
      w.postMessage('count');
    });
  const [a, b] = [await count(first), await count(second)];
  assert.equal(a + b, 320);
  assert.ok(a > 0 && b > 0, `both workers served: ${a}, ${b}`);
  // Terminated with open sockets: the addon's cleanup hook closes them; the process lives on.
  assert.equal(await first.terminate(), 1);
  assert.equal(await second.terminate(), 1);
  for (const c of clients) c.close();
  // The port is free again: a fresh listener binds it without SO_REUSEPORT.
  const again = new BatchedUdpListener('127.0.0.1', port, dispatcherWith(answerNoerror), false, addon!);
  assert.equal(await again.bind(), port);
  await again.close();
});

test('a process exits normally with a batched socket open', { skip, timeout: 30_000 }, async () => {
  const code = `
    import { createUdpListener } from '${fileURLToPath(new URL('./udp.ts', import.meta.url))}';
    const l = createUdpListener('127.0.0.1', 0, { clock: () => 0 }, false, 'batched');
    await l.bind();
    setTimeout(() => process.exit(7), 50);
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d));
  const [exitCode, signal] = await new Promise<[number | null, string | null]>((r) => child.once('exit', (c, s) => r([c, s])));
  assert.equal(signal, null, err);
  assert.equal(exitCode, 7, err);
});

test('IPv6: senders are reported in RFC 5952 text and answered', { skip, timeout: 30_000 }, async () => {
  let from = '';
  const l = createUdpListener(
    '::1',
    0,
    dispatcherWith((req) => {
      from = req.remoteAddress;
      answerNoerror(req);
    }),
    false,
    UdpIo.BATCHED,
  );
  const port = await l.bind();
  const c = dgram.createSocket('udp6');
  const reply = new Promise<Buffer>((r) => c.once('message', r));
  c.send(query(9), port, '::1');
  assert.equal((await reply).readUInt16BE(0), 9);
  assert.equal(from, '::1');
  c.close();
  await l.close();
});

test('ipv6Text matches the WHATWG URL serialisation (RFC 5952) on addresses with zero runs', () => {
  const rnd = prng(5952);
  for (let i = 0; i < 2000; i++) {
    const w = new Int32Array(4);
    const bytes = new Uint8Array(w.buffer);
    for (let j = 0; j < 16; j++) bytes[j] = rnd() < 0.5 ? 0 : Math.floor(rnd() * 256);
    if (bytes.subarray(0, 10).every((x) => x === 0) && bytes[10] === 0xff && bytes[11] === 0xff) continue; // mapped: dotted form
    const groups = Array.from({ length: 8 }, (_, g) => ((bytes[2 * g]! << 8) | bytes[2 * g + 1]!).toString(16));
    const canonical = new URL(`http://[${groups.join(':')}]/`).hostname.slice(1, -1);
    assert.equal(ipv6Text(w), canonical);
  }
});

test('the addon checks its arguments: sizes, counts, addresses and send table entries', { skip }, () => {
  const s = new addon!.UdpSocket(4, false);
  try {
    assert.throws(() => s.bind('not-an-ip', 0), { code: 'EINVAL' });
    assert.throws(() => s.bind('127.0.0.1', 70000), { code: 'EINVAL' });
    s.bind('127.0.0.1', 0);
    const cb = () => {};
    // Arena smaller than slots * slotSize, meta too short, wrong types, slot size out of range.
    assert.throws(() => s.start(4, 512, new Uint8Array(2047), new Int32Array(32), new Uint8Array(64), new Int32Array(8), cb), TypeError);
    assert.throws(() => s.start(4, 512, new Uint8Array(2048), new Int32Array(31), new Uint8Array(64), new Int32Array(8), cb), TypeError);
    assert.throws(() => s.start(4, 512, new Uint8Array(2048), new Int32Array(32), new Int32Array(16) as never, new Int32Array(8), cb), TypeError);
    assert.throws(() => s.start(4, 100, new Uint8Array(2048), new Int32Array(32), new Uint8Array(64), new Int32Array(8), cb), TypeError);
    assert.throws(() => s.start(0, 512, new Uint8Array(2048), new Int32Array(32), new Uint8Array(64), new Int32Array(8), cb), TypeError);
    const sendArena = new Uint8Array(64);
    const sendMeta = new Int32Array(4 * 8);
    s.start(4, 512, new Uint8Array(2048), new Int32Array(32), sendArena, sendMeta, cb);
    assert.throws(() => s.send(5), TypeError, 'more than the table holds');
    assert.throws(() => s.send(-1), TypeError);
    const lo = 0x0100007f; // 127.0.0.1 as stored in memory
    sendMeta.set([60, 8, 9, 4, lo], 0); // past the arena's end
    sendMeta.set([0, 0, 9, 4, lo], 8); // empty
    sendMeta.set([0, 8, 0, 4, lo], 16); // port 0
    sendMeta.set([0, 8, 9, 6, lo], 24); // IPv6 destination on an IPv4 socket
    const r = s.send(4);
    assert.equal(r & 0x7ff, 0, 'none sent');
    assert.equal((r >>> 11) & 0x7ff, 4, 'all dropped');
    assert.equal(r >>> 22, 22, 'EINVAL');
  } finally {
    s.close();
    s.close();
  }
  assert.equal(s.send(0), -9, 'EBADF once closed');
  assert.throws(() => s.bind('127.0.0.1', 0), { code: 'EBADF' });
});

test('a socket error (ICMP port unreachable on a connected socket) does not stop the socket from reading', { skip, timeout: 30_000 }, async () => {
  // A port nothing listens on (yet).
  const probe = dgram.createSocket('udp4');
  await new Promise<void>((r) => probe.bind(0, '127.0.0.1', () => r()));
  const peerPort = probe.address().port;
  await new Promise<void>((r) => probe.close(() => r()));
  const s = new addon!.UdpSocket(4, false);
  let batches = 0;
  const sendArena = new Uint8Array(64);
  const sendMeta = new Int32Array(8);
  try {
    s.bind('127.0.0.1', 0);
    s.start(4, 512, new Uint8Array(2048), new Int32Array(32), sendArena, sendMeta, () => batches++);
    s.connect('127.0.0.1', peerPort);
    sendMeta.set([0, 8, peerPort, 4, 0x0100007f], 0);
    assert.equal(s.send(1) & 0x7ff, 1);
    // The ICMP error is pending (POLLERR) now; libuv stops a poll handle on POLLERR.
    await new Promise((r) => setTimeout(r, 100));
    const peer = dgram.createSocket('udp4');
    await new Promise<void>((r) => peer.bind(peerPort, '127.0.0.1', () => r()));
    sendMeta.set([0, 8, peer.address().port, 4, 0x0100007f], 0);
    // Our own port, learnt from the peer's receipt of a datagram.
    const ourPort = await new Promise<number>((resolve) => {
      peer.once('message', (_m, rinfo) => resolve(rinfo.port));
      s.send(1);
    });
    peer.send(Buffer.from('hello'), ourPort, '127.0.0.1');
    await waitUntil(() => batches > 0, 'the datagram after the error read', 5_000);
    peer.close();
  } finally {
    s.close();
  }
});
