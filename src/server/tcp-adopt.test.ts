/**
 * Listening TCP sockets passed through SCM_RIGHTS (native/fdpass.c tcpListenerName,
 * src/agent/standby.ts `fds`, src/server/udp-adopt.ts, TcpListener.acceptFrom in tcp.ts). A
 * child process plays the primary: a serving peer registration and a DNS listener pair on one
 * port (a UDP socket it never reads, a TCP listener that answers every query REFUSED, so its
 * answers are told apart from ours, NOERROR). This process holds a TcpListener of the same
 * address and port and adopts the child's TCP socket. The child is SIGSTOPped so that it
 * accepts nothing: connections the kernel queues in its socket then wait there, SYN-ACKed and
 * not accepted, until someone accepts them (us) or the socket closes (reset).
 * Without the addon these tests are skipped (adoption needs it).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import dgram from 'node:dgram';
import { closeSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Dispatcher, Generation, RouteTarget } from './dispatch.ts';
import { DEFAULT_TCP_LIMITS, TcpBudget, TcpCloseReason, TcpListener, TcpRefuseReason } from './tcp.ts';
import { adopt, adoptedListeners, releaseOwner, tcpListenerName } from './udp-adopt.ts';
import { loadUdpAddon } from './udp-native.ts';
import { type ScriptPrimary, killPrimary, startScriptPrimary } from '../../test/lib/script-primary.ts';
import { ZoneMatcher } from '../wire/zone-match.ts';
import { getZoneStats } from '../metrics/zone-stats.ts';
import { buildEmptyResponse } from '../wire/message.ts';
import { Rcode } from '../wire/codes.ts';
import type { Request } from './request.ts';

const { addon, reason } = loadUdpAddon();
const skip =
  addon === null || typeof (addon as { tcpListenerName?: unknown }).tcpListenerName !== 'function'
    ? `UDP addon with tcpListenerName unavailable (${reason || 'old build'})`
    : undefined;
const ROOT = new URL('../../', import.meta.url).pathname;

/** The "primary": a serving registration, an unread UDP socket and a REFUSED-answering TCP listener on one port; prints {port, path}. */
const PRIMARY = `
import net from 'node:net';
import { PeerRegistry, PeerPhase } from '${ROOT}src/agent/standby.ts';
import { loadUdpAddon } from '${ROOT}src/server/udp-native.ts';
const [dir, address] = process.argv.slice(1);
const { addon } = loadUdpAddon();
const server = net.createServer((c) => {
  let buf = Buffer.alloc(0);
  c.on('error', () => c.destroy());
  c.on('data', (d) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
      const r = Buffer.from(buf.subarray(0, 2 + buf.readUInt16BE(0)));
      buf = buf.subarray(r.length);
      r[4] |= 0x80;
      r[5] = (r[5] & 0x70) | 5;
      c.write(r);
    }
  });
});
await new Promise((r) => server.listen({ host: address, port: 0, reusePort: true, backlog: 1024 }, r));
const port = server.address().port;
const s = new addon.UdpSocket(address.includes(':') ? 6 : 4, true);
s.bind(address, port);
const quiet = { info() {}, warn() {}, error() {} };
const reg = await PeerRegistry.join({ dir, role: 'primary', scope: 'abcdef01', version: 'test', log: quiet });
reg.phase = PeerPhase.SERVING;
console.log(JSON.stringify({ port, path: reg.path }));
setInterval(() => {}, 1000);
`;

function startPrimary(dir: string, address = '127.0.0.1'): Promise<ScriptPrimary> {
  return startScriptPrimary(PRIMARY, [dir, address]);
}

/** SIGSTOP, and wait until the child is stopped (it accepts nothing from then on). */
async function stop(p: ScriptPrimary): Promise<void> {
  p.child.kill('SIGSTOP');
  for (let i = 0; i < 500; i++) {
    const state = readFileSync(`/proc/${p.pid}/stat`, 'utf8').replace(/^.*\) /s, '')[0];
    if (state === 'T') return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error('the primary did not stop');
}

/** Accept-queue length (connections established, not accepted) of each listening socket on `port`, by socket inode. */
function acceptQueues(port: number): Map<string, number> {
  const out = execFileSync('ss', ['-Hltne', `sport = :${port}`], { encoding: 'utf8' });
  const queues = new Map<string, number>();
  for (const line of out.split('\n')) {
    const m = /^LISTEN\s+(\d+)\s.*\bino:(\d+)/.exec(line.trim());
    if (m) queues.set(m[2]!, Number(m[1]));
  }
  return queues;
}

/** Inodes of the sockets process `pid` holds. */
function socketInodes(pid: number | 'self'): Set<string> {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]!);
    } catch {
      // closed meanwhile
    }
  }
  return inodes;
}

/** Our descriptors that are listening TCP sockets named `name` (tcpListenerName). */
function ownListeningFds(name: string): number[] {
  return readdirSync('/proc/self/fd')
    .map(Number)
    .filter((fd) => tcpListenerName(addon!, fd) === name);
}

function dispatcherWith(serve: (req: Request) => void): Dispatcher {
  const table = new ZoneMatcher<RouteTarget>();
  table.add('.', new RouteTarget({ serve }, getZoneStats('dns://127.0.0.1:0', '.'), null, new Generation(1)));
  return new Dispatcher('dns://127.0.0.1:0', table);
}

/** Every query answered NOERROR at once. */
function answeringDispatcher(): Dispatcher {
  return dispatcherWith((req) => {
    const out = buildEmptyResponse(req, Rcode.NOERROR);
    req.reply(out, out.length, 'test');
  });
}

function query(id: number): Buffer {
  const q = Buffer.from([id >> 8, id & 255, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, 119, 119, 119, 4, 116, 101, 115, 116, 0, 0, 1, 0, 1]);
  const framed = Buffer.alloc(q.length + 2);
  framed.writeUInt16BE(q.length, 0);
  q.copy(framed, 2);
  return framed;
}

/** What a one-query connection got: the answer's rcode, or how it failed. */
type Outcome = number | 'reset' | 'refused' | 'closed' | 'timeout';

/**
 * Opens a connection, writes one query at once (buffered until connected) and resolves with the
 * outcome. The connect() itself runs in a nextTick: a caller that schedules a nextTick after
 * this one runs it after the SYN was sent, before any event-loop turn (so before we accept).
 */
function tcpQuery(port: number, id: number, address = '127.0.0.1', timeoutMs = 5000): Promise<Outcome> {
  return new Promise((resolve) => {
    const c = net.connect({ port, host: address });
    let buf = Buffer.alloc(0);
    let done = false;
    const finish = (o: Outcome) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      c.destroy();
      resolve(o);
    };
    const timer = setTimeout(() => finish('timeout'), timeoutMs);
    c.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) finish(buf[5]! & 0x0f);
    });
    c.on('error', (err: NodeJS.ErrnoException) =>
      finish(err.code === 'ECONNRESET' || err.code === 'EPIPE' ? 'reset' : err.code === 'ECONNREFUSED' ? 'refused' : 'closed'),
    );
    c.on('close', () => finish('closed'));
    c.write(query(id));
  });
}

function tally(outcomes: Outcome[]): Record<string, number> {
  const t: Record<string, number> = {};
  for (const o of outcomes) {
    const k = typeof o === 'number' ? (o === Rcode.NOERROR ? 'NOERROR' : o === Rcode.REFUSED ? 'REFUSED' : `rcode ${o}`) : o;
    t[k] = (t[k] ?? 0) + 1;
  }
  return t;
}

interface Scene {
  dir: string;
  primary: ScriptPrimary;
  own: TcpListener;
}

async function scene(t: { after: (fn: () => Promise<void>) => void }, dispatcher = answeringDispatcher(), budget?: TcpBudget): Promise<Scene> {
  const dir = await mkdtemp(join(tmpdir(), 'nld-tcp-adopt-'));
  const primary = await startPrimary(dir);
  const own = new TcpListener('127.0.0.1', primary.port, dispatcher, true, budget);
  t.after(async () => {
    await releaseOwner(primary.path, false);
    await killPrimary(primary);
    own.destroyAll();
    await own.close();
    await rm(dir, { recursive: true, force: true });
  });
  await own.listen();
  return { dir, primary, own };
}

/**
 * `n` connections, each with one query, created in one synchronous step; the SIGKILL of the
 * (stopped) primary follows in the same step, after every SYN was sent and the accept queues
 * were read: nothing is accepted by anyone before the kill. Returns the outcomes and how many
 * connections waited in the primary's socket at the kill.
 */
async function connectThenKill(s: Scene, n: number): Promise<{ outcomes: Outcome[]; queuedInOwner: number; queued: number }> {
  const ownerInodes = socketInodes(s.primary.pid);
  let queuedInOwner = -1;
  let queued = -1;
  const answers = Array.from({ length: n }, (_, i) => tcpQuery(s.primary.port, i + 1));
  process.nextTick(() => {
    const q = acceptQueues(s.primary.port);
    queued = [...q.values()].reduce((a, b) => a + b, 0);
    queuedInOwner = [...q].filter(([ino]) => ownerInodes.has(ino)).reduce((a, [, len]) => a + len, 0);
    s.primary.child.kill('SIGKILL');
  });
  const outcomes = await Promise.all(answers);
  await s.primary.exited;
  return { outcomes, queuedInOwner, queued };
}

test('tcpListenerName: a listening SO_REUSEPORT TCP socket only', { skip }, async (t) => {
  const a = addon!;
  const reuse = net.createServer();
  const plain = net.createServer();
  const six = net.createServer();
  await new Promise<void>((r) => reuse.listen({ host: '127.0.0.1', port: 0, reusePort: true }, r));
  await new Promise<void>((r) => plain.listen({ host: '127.0.0.1', port: 0 }, r));
  await new Promise<void>((r) => six.listen({ host: '::1', port: 0, reusePort: true, ipv6Only: true }, r));
  const u = dgram.createSocket({ type: 'udp4', reuseAddr: true, reusePort: true });
  await new Promise<void>((r) => u.bind(0, '127.0.0.1', r));
  const client = net.connect((reuse.address() as net.AddressInfo).port, '127.0.0.1');
  await new Promise((r) => client.once('connect', r));
  t.after(() => {
    client.destroy();
    u.close();
    for (const s of [reuse, plain, six]) s.close();
  });
  const rport = (reuse.address() as net.AddressInfo).port;
  const fds = readdirSync('/proc/self/fd').map(Number);
  const named = (name: string) => fds.filter((fd) => tcpListenerName(a, fd) === name);
  assert.equal(named(`4|127.0.0.1|${rport}`).length, 1, 'the reuseport listener is named; the two ends of a connection to it are not');
  assert.equal(named(`6|::1|${(six.address() as net.AddressInfo).port}`).length, 1, 'IPv6 too');
  // Not named: a listener without SO_REUSEPORT (a peer's could not share the port) and a UDP listener.
  assert.deepEqual(named(`4|127.0.0.1|${(plain.address() as net.AddressInfo).port}`), []);
  const udpFd = fds.find((fd) => a.udpListenerName(fd) === `4|127.0.0.1|${u.address().port}`);
  assert.ok(udpFd !== undefined);
  assert.equal(tcpListenerName(a, udpFd), '');
  assert.equal(a.udpListenerName(named(`4|127.0.0.1|${rport}`)[0]!), '', 'a TCP listener is not a UDP one');
  assert.equal(tcpListenerName(a, -1), '');
  assert.equal(tcpListenerName(a, 0), '');
  assert.throws(() => (a as unknown as { tcpListenerName(fd: unknown): string }).tcpListenerName('3'), TypeError);
});

test('TCP adoption: the adopter accepts from the owner socket; releasing it with a live owner leaves the owner its socket and queue', { skip }, async (t) => {
  const s = await scene(t);
  assert.equal(await adopt(s.primary.path, s.primary.path), 1, 'the TCP socket (the UDP one is not ours: no UDP listener here)');
  assert.equal(await adopt(s.primary.path, s.primary.path), 0, 'adopted once per owner');
  assert.deepEqual(
    adoptedListeners().map((a) => [a.proto, a.port]),
    [['tcp', s.primary.port]],
  );
  await stop(s.primary);
  // The owner accepts nothing now: connections steered to its socket are accepted by us.
  const stopped = await Promise.all(Array.from({ length: 40 }, (_, i) => tcpQuery(s.primary.port, i + 1)));
  assert.deepEqual(tally(stopped), { NOERROR: 40 });
  const viaAdopted = adoptedListeners()[0]!.received;
  assert.ok(viaAdopted > 0 && viaAdopted < 40, `adopted socket accepted ${viaAdopted} of 40`);
  assert.equal(s.own.accepted, 40, 'connections accepted on the adopted socket are the listener own');

  await releaseOwner(s.primary.path, false);
  assert.deepEqual(adoptedListeners(), []);
  assert.deepEqual(ownListeningFds(`4|127.0.0.1|${s.primary.port}`).length, 1, 'our copy is closed, our own listener is left');
  // The owner (still stopped) keeps its socket listening: what the kernel steers there waits in
  // its queue and is answered (REFUSED) once it runs again; nothing is reset.
  const later = Promise.all(Array.from({ length: 40 }, (_, i) => tcpQuery(s.primary.port, i + 100)));
  await new Promise((r) => setTimeout(r, 200));
  s.primary.child.kill('SIGCONT');
  const got = tally(await later);
  assert.equal((got.NOERROR ?? 0) + (got.REFUSED ?? 0), 40, JSON.stringify(got));
  assert.ok((got.REFUSED ?? 0) > 0, `the owner answered what waited in its socket: ${JSON.stringify(got)}`);
});

test('TCP adoption: connections queued in the owner socket when it is SIGKILLed are answered by the adopter, then the socket is handed over', {
  skip,
}, async (t) => {
  const s = await scene(t);
  assert.equal(await adopt(s.primary.path, s.primary.path), 1);
  await stop(s.primary);
  const { outcomes, queuedInOwner, queued } = await connectThenKill(s, 40);
  assert.equal(queued, 40, 'every connection was established and waiting in an accept queue at the kill');
  assert.ok(queuedInOwner > 0, 'some waited in the owner socket');
  assert.deepEqual(tally(outcomes), { NOERROR: 40 }, `with ${queuedInOwner} queued in the killed owner's socket`);
  const viaAdopted = adoptedListeners()[0]!.received;
  assert.equal(viaAdopted, queuedInOwner, 'the adopter accepted exactly what was queued in the dead owner socket');

  // A connection accepted on the adopted socket outlives it: it is the listener's.
  let held: net.Socket | undefined;
  for (let i = 0; i < 64 && held === undefined; i++) {
    const before = adoptedListeners()[0]!.received;
    const c = net.connect(s.primary.port, '127.0.0.1');
    await new Promise((r) => c.once('connect', r));
    const deadline = Date.now() + 2000;
    while (s.own.connectionCount <= 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    await new Promise((r) => setTimeout(r, 20));
    if (adoptedListeners()[0]!.received > before) held = c;
    else c.destroy();
  }
  assert.ok(held !== undefined, 'a connection landed on the adopted socket');
  t.after(() => held!.destroy());

  // The owner is gone: our copy was the last; release closes it after an accept pass.
  await releaseOwner(s.primary.path, true);
  assert.deepEqual(adoptedListeners(), []);
  assert.equal(acceptQueues(s.primary.port).size, 1, 'only our own listening socket is left on the port');
  const answer = new Promise<number>((resolve) => held!.once('data', (d: Buffer) => resolve(d[5]! & 0x0f)));
  held!.write(query(7));
  assert.equal(await answer, Rcode.NOERROR, 'the connection accepted on the released socket is still served');
  assert.deepEqual(tally(await Promise.all(Array.from({ length: 20 }, (_, i) => tcpQuery(s.primary.port, i + 300)))), { NOERROR: 20 });
});

/**
 * After the owner's death our copy of its socket is the last one: `n` connections are queued in
 * the sockets of the port in one synchronous step, and the release runs in that same step,
 * before our event loop accepted any of them. Returns the outcomes and how many waited in the
 * released socket.
 */
async function connectThenRelease(s: Scene, n: number, handOver: boolean): Promise<{ outcomes: Outcome[]; queuedInReleased: number }> {
  const ownerInodes = socketInodes(s.primary.pid);
  await stop(s.primary);
  await killPrimary(s.primary);
  let queuedInReleased = -1;
  let released: Promise<void> = Promise.resolve();
  const answers = Array.from({ length: n }, (_, i) => tcpQuery(s.primary.port, i + 1));
  process.nextTick(() => {
    queuedInReleased = [...acceptQueues(s.primary.port)].filter(([ino]) => ownerInodes.has(ino)).reduce((a, [, len]) => a + len, 0);
    released = releaseOwner(s.primary.path, handOver);
  });
  const outcomes = await Promise.all(answers);
  await released;
  return { outcomes, queuedInReleased };
}

test("TCP adoption: releasing a dead owner's socket serves what is queued in it (accept until EAGAIN, then close)", { skip }, async (t) => {
  const s = await scene(t);
  assert.equal(await adopt(s.primary.path, s.primary.path), 1);
  const { outcomes, queuedInReleased } = await connectThenRelease(s, 40, true);
  assert.ok(queuedInReleased > 0, 'some connections waited in the released socket');
  assert.deepEqual(tally(outcomes), { NOERROR: 40 });
  assert.equal(s.own.accepted, 40);
  assert.deepEqual(adoptedListeners(), []);
  assert.equal(acceptQueues(s.primary.port).size, 1, 'only our own listening socket is left on the port');
});

test("TCP adoption: a plain close of a dead owner's socket resets what is queued in it (what the release avoids)", { skip }, async (t) => {
  const s = await scene(t);
  assert.equal(await adopt(s.primary.path, s.primary.path), 1);
  // handOver false is meant for a live owner; with a dead one it shows what a plain close costs.
  const { outcomes, queuedInReleased } = await connectThenRelease(s, 40, false);
  assert.ok(queuedInReleased > 0);
  assert.deepEqual(tally(outcomes), { NOERROR: 40 - queuedInReleased, reset: queuedInReleased });
});

test('TCP without adoption: the same connections queued in the killed owner socket are reset (what adoption saves)', { skip }, async (t) => {
  const s = await scene(t);
  await stop(s.primary);
  const { outcomes, queuedInOwner, queued } = await connectThenKill(s, 40);
  assert.equal(queued, 40);
  assert.ok(queuedInOwner > 0);
  assert.deepEqual(tally(outcomes), { NOERROR: 40 - queuedInOwner, reset: queuedInOwner });
});

test('TCP adoption: adopted connections count against the listener bounds', { skip }, async (t) => {
  // Queries are never answered (in flight): no connection is idle, so none can be evicted.
  const budget = new TcpBudget({ ...DEFAULT_TCP_LIMITS, maxConnections: 4, maxConnectionsPerClient: 4 });
  const s = await scene(
    t,
    dispatcherWith(() => undefined),
    budget,
  );
  assert.equal(await adopt(s.primary.path, s.primary.path), 1);
  await stop(s.primary);
  const conns = await Promise.all(
    Array.from(
      { length: 24 },
      () =>
        new Promise<net.Socket>((resolve) => {
          const c = net.connect(s.primary.port, '127.0.0.1', () => resolve(c));
          c.on('error', () => undefined);
          c.write(query(1));
        }),
    ),
  );
  t.after(() => {
    for (const c of conns) c.destroy();
  });
  const deadline = Date.now() + 5000;
  while (s.own.accepted < 24 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  assert.equal(s.own.accepted, 24);
  assert.ok(adoptedListeners()[0]!.received > 0, 'some came through the adopted socket');
  // A connection is idle until its query is read, so a newer one may evict it instead of being refused.
  const st = budget.stats;
  assert.equal(budget.connections, 4);
  assert.equal(
    st.refusedBy(TcpRefuseReason.CLIENT_SHARE) +
      st.refusedBy(TcpRefuseReason.CONNECTION_LIMIT) +
      st.closedBy(TcpCloseReason.CLIENT_SHARE) +
      st.closedBy(TcpCloseReason.CONNECTION_LIMIT),
    20,
  );
});

test('TCP adoption: a socket of an address that is not ours is closed at once', { skip }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'nld-tcp-adopt-'));
  const primary = await startPrimary(dir, '127.0.0.2');
  // Ours: the same port on another address.
  const own = new TcpListener('127.0.0.1', primary.port, answeringDispatcher(), true);
  t.after(async () => {
    await killPrimary(primary);
    await own.close();
    await rm(dir, { recursive: true, force: true });
  });
  await own.listen();
  assert.equal(await adopt(primary.path, primary.path), 0);
  assert.deepEqual(adoptedListeners(), []);
  assert.deepEqual(ownListeningFds(`4|127.0.0.2|${primary.port}`), [], 'the received descriptor was closed');
  // The owner's socket is untouched: it answers.
  assert.equal(await tcpQuery(primary.port, 1, '127.0.0.2'), Rcode.REFUSED);
});

test('TCP adoption: an owner that does not answer is given up after a bounded number of attempts', { skip }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'nld-tcp-adopt-'));
  const path = join(dir, 'silent.sock');
  const accepted: net.Socket[] = [];
  const silent = net.createServer((c) => {
    accepted.push(c);
    c.on('error', () => undefined);
  });
  await new Promise<void>((r) => silent.listen(path, r));
  const own = new TcpListener('127.0.0.1', 0, answeringDispatcher(), true);
  await own.listen();
  t.after(async () => {
    await own.close();
    for (const c of accepted) c.destroy();
    await new Promise((r) => silent.close(r));
    await rm(dir, { recursive: true, force: true });
  });
  for (let i = 0; i < 5; i++) assert.equal(await adopt(path, path), 0);
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(accepted.length, 3, 'asked 3 times, then left alone');
  assert.deepEqual(adoptedListeners(), []);
});

test('TcpListener.acceptFrom: a closed listener refuses a received descriptor and closes it', { skip }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'nld-tcp-adopt-'));
  const primary = await startPrimary(dir);
  const own = new TcpListener('127.0.0.1', primary.port, answeringDispatcher(), true);
  t.after(async () => {
    await killPrimary(primary);
    await rm(dir, { recursive: true, force: true });
  });
  await own.listen();
  await own.close();
  const name = `4|127.0.0.1|${primary.port}`;
  const got = addon!.recvFds(primary.path, 'fds\n', 2000);
  assert.equal(got.text, 'fds 2\n', 'the UDP socket and its TCP twin');
  const fd = got.fds.find((f) => tcpListenerName(addon!, f) === name);
  assert.ok(fd !== undefined);
  for (const f of got.fds) if (f !== fd) closeSync(f);
  await assert.rejects(own.acceptFrom(fd), /listener closed/);
  assert.deepEqual(ownListeningFds(name), []);
});
