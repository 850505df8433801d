/**
 * Listening-socket hand-over through SCM_RIGHTS (native/fdpass.c, src/agent/standby.ts `fds`,
 * src/server/udp-adopt.ts). A child process plays the primary: it registers in a peer
 * directory as a serving primary and holds a UDP socket bound with SO_REUSEPORT that it never
 * reads. This process fetches that socket over the child's peer unix socket, the child is
 * SIGKILLed, and the datagrams sent to the child's socket before and after the kill are read
 * here. Without the addon these tests are skipped (adoption needs it).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Dispatcher, Generation, RouteTarget } from './dispatch.ts';
import { createUdpListener } from './udp.ts';
import { adopt, adoptedListeners, releaseOwner } from './udp-adopt.ts';
import { loadUdpAddon } from './udp-native.ts';
import { type ScriptPrimary, killPrimary, startScriptPrimary } from '../../test/lib/script-primary.ts';
import { udpIoPaths } from '../../test/lib/udp-io.ts';
import { ZoneMatcher } from '../wire/zone-match.ts';
import { getZoneStats } from '../metrics/zone-stats.ts';
import { buildEmptyResponse } from '../wire/message.ts';
import { Rcode } from '../wire/codes.ts';
import type { Request } from './request.ts';

const { addon, reason } = loadUdpAddon();
const skip = addon === null || typeof addon.recvFds !== 'function' ? `UDP addon with fdpass unavailable (${reason || 'old build'})` : undefined;
const ROOT = new URL('../../', import.meta.url).pathname;

/** The "primary": a serving peer registration and an unread reuseport UDP socket; prints {port, path}. */
const PRIMARY = `
import { PeerRegistry, PeerPhase } from '${ROOT}src/agent/standby.ts';
import { loadUdpAddon } from '${ROOT}src/server/udp-native.ts';
const [dir, portArg] = process.argv.slice(1);
const { addon } = loadUdpAddon();
const s = new addon.UdpSocket(4, true);
const port = s.bind('127.0.0.1', Number(portArg));
const quiet = { info() {}, warn() {}, error() {} };
const reg = await PeerRegistry.join({ dir, role: 'primary', scope: 'abcdef01', version: 'test', log: quiet });
reg.phase = PeerPhase.SERVING;
console.log(JSON.stringify({ port, path: reg.path }));
setInterval(() => {}, 1000);
`;

function startPrimary(dir: string, port = 0): Promise<ScriptPrimary> {
  return startScriptPrimary(PRIMARY, [dir, String(port)]);
}

function sendAll(port: number, payloads: Buffer[]): Promise<void> {
  return Promise.all(
    payloads.map(
      (b) =>
        new Promise<void>((resolve) => {
          const c = dgram.createSocket('udp4');
          c.send(b, port, '127.0.0.1', () => {
            c.close();
            resolve();
          });
        }),
    ),
  ).then(() => undefined);
}

test('fdpass: a SIGKILLed peer socket is read by the process it was passed to', { skip }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'nld-fdpass-'));
  const primary = await startPrimary(dir);
  t.after(async () => {
    await killPrimary(primary);
    await rm(dir, { recursive: true, force: true });
  });
  const before = [0, 1, 2].map((i) => Buffer.from(`before-${i}`));
  await sendAll(primary.port, before);
  const got = addon!.recvFds(primary.path, 'fds\n', 2000);
  assert.equal(got.text, 'fds 1\n');
  assert.equal(got.fds.length, 1);
  const fd = got.fds[0]!;
  assert.equal(addon!.udpListenerName(fd), `4|127.0.0.1|${primary.port}`);
  await killPrimary(primary);
  const after = [0, 1].map((i) => Buffer.from(`after-${i}`));
  await sendAll(primary.port, after);

  const sock = new addon!.UdpSocket(4, true, fd);
  const slots = 8;
  const slotSize = 2048;
  const recvArena = new Uint8Array(slots * slotSize);
  const recvMeta = new Int32Array(slots * 8);
  const received: string[] = [];
  const all = new Promise<void>((resolve) => {
    sock.start(slots, slotSize, recvArena, recvMeta, new Uint8Array(2048), new Int32Array(8), (n) => {
      for (let i = 0; i < n; i++) received.push(Buffer.from(recvArena.subarray(i * slotSize, i * slotSize + recvMeta[i * 8]!)).toString());
      if (received.length >= before.length + after.length) resolve();
    });
  });
  const timer = setTimeout(() => undefined, 5000);
  await Promise.race([all, new Promise((r) => setTimeout(r, 5000))]);
  clearTimeout(timer);
  sock.close();
  assert.deepEqual(received.sort(), [...before, ...after].map((b) => b.toString()).sort());
});

test('fdpass: argument, socket-kind and timeout checks', { skip }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'nld-fdpass-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const a = addon!;
  assert.throws(() => a.recvFds(join(dir, 'none.sock'), 'fds\n', 100), { code: 'ENOENT' });
  assert.throws(() => a.recvFds(join(dir, 'x'.repeat(120)), 'fds\n', 100), TypeError);
  assert.throws(() => a.recvFds(join(dir, 'a.sock'), 'fds\n', 0), TypeError);
  assert.throws(() => a.recvFds(join(dir, 'a.sock'), 'fds\n', 60_000), TypeError);
  // A server that accepts (the kernel does, from the backlog) but never answers: bounded wait.
  const path = join(dir, 'silent.sock');
  const server = createServer(() => undefined);
  await new Promise<void>((r) => server.listen(path, r));
  const t0 = performance.now();
  assert.throws(() => a.recvFds(path, 'fds\n', 200), { code: 'ETIMEDOUT' });
  const waitedMs = performance.now() - t0;
  assert.ok(waitedMs >= 150, `returned after ${waitedMs} ms`);
  await new Promise((r) => server.close(r));

  const u = dgram.createSocket({ type: 'udp4', reuseAddr: true, reusePort: true });
  await new Promise<void>((r) => u.bind(0, '127.0.0.1', r));
  const name = `4|127.0.0.1|${u.address().port}`;
  const ufd = readdirSync('/proc/self/fd')
    .map(Number)
    .find((fd) => a.udpListenerName(fd) === name);
  assert.ok(ufd !== undefined, `no descriptor named ${name}`);
  // Our descriptors go to unix stream sockets only.
  assert.throws(() => a.sendFds(ufd, [ufd], 'x'), { code: 'ENOTSOCK' });
  assert.throws(() => a.sendFds(ufd, [], 'x'), TypeError);
  assert.throws(() => a.sendFds(ufd, new Array(129).fill(ufd), 'x'), TypeError);
  assert.throws(() => a.sendFds(ufd, [ufd], ''), TypeError);
  assert.throws(() => new a.UdpSocket(6, true, ufd), { code: 'EINVAL' });
  // A connected socket (a forwarder's, or a listener handing over) is not a listener.
  u.connect(1, '127.0.0.1');
  await new Promise((r) => u.once('connect', r));
  assert.equal(a.udpListenerName(ufd), '');
  u.close();
  assert.equal(a.udpListenerName(-1), '');
  assert.equal(a.udpListenerName(0), '');
});

/** Every query answered NOERROR at once. */
function answeringDispatcher(): Dispatcher {
  const table = new ZoneMatcher<RouteTarget>();
  const chain = {
    serve(req: Request) {
      const out = buildEmptyResponse(req, Rcode.NOERROR);
      req.reply(out, out.length, 'test');
    },
  };
  table.add('.', new RouteTarget(chain, getZoneStats('dns://127.0.0.1:0', '.'), null, new Generation(1)));
  return new Dispatcher('dns://127.0.0.1:0', table);
}

/** `n` queries from fresh sockets (so the reuseport hash spreads them); resolves with the number answered within 2 s. */
function query(port: number, n: number): Promise<number> {
  const q = (id: number) => Buffer.from([id >> 8, id & 255, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, 119, 119, 119, 4, 116, 101, 115, 116, 0, 0, 1, 0, 1]);
  return Promise.all(
    Array.from(
      { length: n },
      (_, i) =>
        new Promise<number>((resolve) => {
          const c = dgram.createSocket('udp4');
          const timer = setTimeout(() => {
            c.close();
            resolve(0);
          }, 2000);
          c.on('message', () => {
            clearTimeout(timer);
            c.close();
            resolve(1);
          });
          c.send(q(i + 1), port, '127.0.0.1');
        }),
    ),
  ).then((r) => r.reduce((x, y) => x + y, 0));
}

for (const io of skip ? [] : udpIoPaths()) {
  test(`adoption (${io}): a listener serves the killed primary's queued queries, then hands the socket over`, async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'nld-adopt-'));
    const primary = await startPrimary(dir);
    const own = createUdpListener('127.0.0.1', primary.port, answeringDispatcher(), true, io);
    t.after(async () => {
      await killPrimary(primary);
      await own.close();
      await rm(dir, { recursive: true, force: true });
    });
    await own.bind();
    assert.equal(await adopt(primary.path, primary.path), 1);
    assert.equal(await adopt(primary.path, primary.path), 0, 'adopted once per owner');
    assert.deepEqual(
      adoptedListeners().map((a) => [a.owner, a.port]),
      [[primary.path, primary.port]],
    );
    // The primary never reads: what the kernel steers to its socket is read by the adopted
    // sibling, before the kill and after it (the socket stays open and in the group).
    const beforeKill = query(primary.port, 40);
    await killPrimary(primary);
    const afterKill = query(primary.port, 40);
    assert.equal(await beforeKill, 40);
    assert.equal(await afterKill, 40);
    const viaAdopted = adoptedListeners()[0]!.received;
    assert.ok(viaAdopted > 0 && own.received > 0, `adopted socket read ${viaAdopted}, own ${own.received}`);
    await releaseOwner(primary.path, true);
    assert.deepEqual(adoptedListeners(), []);
    // After the hand-over everything goes to our own socket.
    assert.equal(await query(primary.port, 10), 10);
  });
}

/** Every query answered NOERROR after `delayMs` (a cache miss in flight meanwhile). */
function delayedDispatcher(delayMs: number): Dispatcher {
  const table = new ZoneMatcher<RouteTarget>();
  const chain = {
    serve(req: Request) {
      setTimeout(() => {
        const out = buildEmptyResponse(req, Rcode.NOERROR);
        req.reply(out, out.length, 'test');
      }, delayMs);
    },
  };
  table.add('.', new RouteTarget(chain, getZoneStats('dns://127.0.0.1:0', '.'), null, new Generation(1)));
  return new Dispatcher('dns://127.0.0.1:0', table);
}

for (const io of skip ? [] : udpIoPaths()) {
  test(`adoption (${io}): closing the adopted sockets of a live owner still answers what they were resolving`, async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'nld-adopt-'));
    const primary = await startPrimary(dir);
    const own = createUdpListener('127.0.0.1', primary.port, delayedDispatcher(300), true, io);
    t.after(async () => {
      await killPrimary(primary);
      await own.close();
      await rm(dir, { recursive: true, force: true });
    });
    await own.bind();
    assert.equal(await adopt(primary.path, primary.path), 1);
    const answered = query(primary.port, 40);
    // Wait until every query was read (by our own socket or the adopted one; the owner never reads).
    const deadline = Date.now() + 5000;
    while (own.received + (adoptedListeners()[0]?.received ?? 0) < 40 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    const viaAdopted = adoptedListeners()[0]!.received;
    assert.ok(viaAdopted > 0, 'the adopted socket read some queries');
    // The owner is alive: our copies are closed (never connected away) while those are in flight.
    await releaseOwner(primary.path, false);
    assert.deepEqual(adoptedListeners(), []);
    assert.equal(await answered, 40);
  });
}
