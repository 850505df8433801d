/**
 * TcpListener's bounds with real loopback sockets and a handler that answers at once with a
 * reply of a chosen size (like a cache hit) or holds queries until released (like a forward):
 * read pause on unsent replies and on queries in flight, close on a write stall, on the
 * per-connection unsent cap and on the buffered-bytes budget, per-client shares and idle-LRU
 * eviction at the global cap, and replies to queries sent before a half-close.
 */
import { afterEach, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { Dispatcher, Generation, RouteTarget } from './dispatch.ts';
import {
  DEFAULT_TCP_LIMITS,
  TcpBudget,
  TcpCloseReason,
  TcpListener,
  TcpPauseReason,
  TcpRefuseReason,
  openFilesLimit,
  tcpLimitsFor,
  type TcpLimits,
} from './tcp.ts';
import { ZoneMatcher } from '../wire/zone-match.ts';
import { getZoneStats } from '../metrics/zone-stats.ts';
import type { Request } from './request.ts';
import { waitUntil } from '../../test/lib/net.ts';

/** Answers every query with `replyBytes` bytes now, or holds it (`held`) when `hold` is set or `holdId` says so. */
class TestHandler {
  replyBytes = 100;
  hold = false;
  holdId: (id: number) => boolean = () => false;
  served = 0;
  readonly held: Request[] = [];

  serve(req: Request): void {
    this.served++;
    if (this.hold || this.holdId(req.id)) this.held.push(req);
    else this.answer(req);
  }

  answer(req: Request): void {
    const out = Buffer.alloc(this.replyBytes);
    req.msg.copy(out, 0, 0, 12);
    out[2] = out[2]! | 0x80;
    req.reply(out, out.length, 'test');
  }

  releaseAll(): void {
    for (const r of this.held.splice(0)) this.answer(r);
  }
}

function dispatcherFor(h: TestHandler): Dispatcher {
  const table = new ZoneMatcher<RouteTarget>();
  table.add('.', new RouteTarget(h, getZoneStats('dns://127.0.0.1:0', '.'), null, new Generation(1)));
  return new Dispatcher('dns://127.0.0.1:0', table);
}

function query(id: number): Buffer {
  // www.test A IN
  const q = Buffer.from([id >> 8, id & 255, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, 119, 119, 119, 4, 116, 101, 115, 116, 0, 0, 1, 0, 1]);
  return Buffer.concat([Buffer.from([0, q.length]), q]);
}

function queries(n: number): Buffer {
  return Buffer.concat(Array.from({ length: n }, (_, i) => query(i & 0xffff)));
}

const cleanups: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function start(
  limits: Partial<TcpLimits>,
  handler = new TestHandler(),
): Promise<{ listener: TcpListener; budget: TcpBudget; handler: TestHandler; port: number }> {
  const budget = new TcpBudget({ ...DEFAULT_TCP_LIMITS, ...limits });
  const listener = new TcpListener('127.0.0.1', 0, dispatcherFor(handler), false, budget);
  const port = await listener.listen();
  cleanups.push(async () => {
    handler.releaseAll();
    listener.destroyAll();
    await listener.close();
  });
  return { listener, budget, handler, port };
}

interface Client {
  sock: net.Socket;
  received: number;
  closed: boolean;
}

/** A client from `localAddress`; `read: false` leaves it paused (it never reads). */
async function connect(port: number, localAddress = '127.0.0.1', read = true): Promise<Client> {
  const sock = net.connect({ port, host: '127.0.0.1', localAddress });
  const c: Client = { sock, received: 0, closed: false };
  sock.on('error', () => {});
  sock.on('close', () => (c.closed = true));
  sock.on('data', (d: Buffer) => (c.received += d.length));
  if (!read) sock.pause();
  await new Promise<void>((resolve, reject) => {
    sock.once('connect', () => resolve());
    sock.once('error', reject);
  });
  cleanups.push(() => void sock.destroy());
  return c;
}

/** Lets the event loop run a few turns (for events that should NOT happen). */
async function settle(ms = 200): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

test('a client that does not read: parsing pauses past the unsent high-water mark and resumes once it reads', async () => {
  const { budget, handler, port } = await start({});
  handler.replyBytes = 10_000;
  const c = await connect(port, '127.0.0.1', false);
  c.sock.write(queries(2_000));
  await waitUntil(() => budget.stats.readPauses.get(TcpPauseReason.UNSENT) === 1, 'reading to pause', 5_000);
  await settle();
  // Replies stop once the kernel's buffers and the high-water mark are full: far fewer than 2,000 x 10 kB.
  assert.ok(handler.served < 500, `served ${handler.served} of 2000 queries while the client did not read`);
  assert.ok(budget.bufferedBytes <= DEFAULT_TCP_LIMITS.maxUnsentBytesPerConnection + 80 * 1024, `buffered ${budget.bufferedBytes}`);
  c.sock.resume();
  await waitUntil(() => c.received === 2_000 * 10_002, 'every reply once the client reads', 20_000);
  assert.equal(handler.served, 2_000);
  assert.equal(budget.stats.closed.size, 0, 'nothing closed');
  await waitUntil(() => budget.bufferedBytes === 0, 'nothing buffered', 5_000);
});

test('a client that never reads is closed after the idle timeout (write stall); its bytes and slot are released', async () => {
  const { budget, handler, port } = await start({ idleTimeoutMs: 300 });
  handler.replyBytes = 10_000;
  const c = await connect(port, '127.0.0.1', false);
  c.sock.write(queries(2_000));
  await waitUntil(() => budget.stats.closedBy(TcpCloseReason.WRITE_STALL) === 1, 'the stalled connection to be closed', 5_000);
  assert.equal(budget.connections, 0);
  assert.equal(budget.bufferedBytes, 0);
  assert.ok(handler.served < 500, `served ${handler.served}`);
});

test('replies completing while the client does not read: past the per-connection unsent cap the connection is destroyed', async () => {
  const { budget, handler, port } = await start({ maxUnsentBytesPerConnection: 256 * 1024 });
  const c = await connect(port, '127.0.0.1', false);
  // 90 queries held in flight (IDs below 1000), then immediate answers until the kernel's buffers are full and reading pauses.
  handler.holdId = (id) => id < 1000;
  c.sock.write(queries(90));
  await waitUntil(() => handler.held.length === 90, '90 queries in flight', 5_000);
  handler.replyBytes = 10_000;
  c.sock.write(Buffer.concat(Array.from({ length: 2_000 }, (_, i) => query(1000 + i))));
  await waitUntil(() => budget.stats.readPauses.get(TcpPauseReason.UNSENT) === 1, 'reading to pause', 5_000);
  // The held queries complete: 90 x 60 kB more than the client takes.
  handler.replyBytes = 60_000;
  handler.releaseAll();
  await waitUntil(() => budget.stats.closedBy(TcpCloseReason.UNSENT_LIMIT) === 1, 'the connection to be closed at the cap', 5_000);
  assert.equal(budget.connections, 0);
  assert.equal(budget.bufferedBytes, 0);
});

test('buffered bytes of all connections stay under the budget: the longest holders go first', async () => {
  const maxBufferedBytes = 600 * 1024;
  const { budget, handler, port } = await start({ maxBufferedBytes });
  handler.replyBytes = 10_000;
  const clients: Client[] = [];
  let peak = 0;
  for (let i = 0; i < 12; i++) {
    const c = await connect(port, '127.0.0.1', false);
    c.sock.write(queries(500));
    await waitUntil(() => budget.stats.readPauses.get(TcpPauseReason.UNSENT) === i + 1, `client ${i} paused`, 5_000);
    peak = Math.max(peak, budget.bufferedBytes);
    clients.push(c);
  }
  assert.ok(peak <= maxBufferedBytes, `peak ${peak}`);
  const shed = budget.stats.closedBy(TcpCloseReason.BUFFER_BUDGET);
  assert.ok(shed > 0, 'some connections were shed');
  assert.equal(budget.connections, 12 - shed);
  // The clients read now: the oldest see their connection closed, the others get every reply.
  for (const c of clients) c.sock.resume();
  await waitUntil(() => clients.slice(0, shed).every((c) => c.closed), 'the oldest clients to see the close', 5_000);
  await waitUntil(() => clients.slice(shed).every((c) => c.received === 500 * 10_002), 'the newest clients to get every reply', 20_000);
  assert.ok(
    clients.slice(shed).every((c) => !c.closed),
    'the newest clients are kept',
  );
});

test('reading pauses at the in-flight limit, even within one read holding many queries', async () => {
  const { budget, handler, port } = await start({ maxInFlightPerConnection: 10 });
  handler.hold = true;
  const c = await connect(port);
  c.sock.write(queries(300));
  await waitUntil(() => handler.held.length === 10, '10 queries in flight', 5_000);
  await settle();
  assert.equal(handler.held.length, 10, 'no more than the limit taken');
  assert.equal(budget.stats.readPauses.get(TcpPauseReason.IN_FLIGHT), 1);
  for (let round = 0; handler.served < 300 && round < 100; round++) {
    handler.releaseAll();
    await waitUntil(() => handler.held.length > 0 || handler.served === 300, 'the next queries', 5_000);
  }
  handler.releaseAll();
  await waitUntil(() => c.received === 300 * 102, 'all 300 replies', 5_000);
});

test("per-client share: over it, the same client's least recently active idle connection is evicted; with none idle the new one is refused; other clients get in", async () => {
  const { budget, handler, port } = await start({ maxConnectionsPerClient: 3 });
  const a = [await connect(port, '127.0.0.2'), await connect(port, '127.0.0.2'), await connect(port, '127.0.0.2')];
  await waitUntil(() => budget.connections === 3, '3 connections', 5_000);
  // a[0] becomes the most recently active.
  a[0]!.sock.write(query(1));
  await waitUntil(() => a[0]!.received > 0, 'the answer on a[0]', 5_000);
  a.push(await connect(port, '127.0.0.2'));
  await waitUntil(() => a[1]!.closed, 'a[1] (least recently active) to be evicted', 5_000);
  assert.equal(budget.stats.closedBy(TcpCloseReason.CLIENT_SHARE), 1);
  assert.ok(!a[0]!.closed && !a[2]!.closed && !a[3]!.closed);
  assert.equal(budget.clientCount('127.0.0.2'), 3);

  // Every connection of the client busy: the next one is refused.
  handler.hold = true;
  for (const i of [0, 2, 3]) a[i]!.sock.write(query(10 + i));
  await waitUntil(() => handler.held.length === 3, 'three queries in flight', 5_000);
  const refused = await connect(port, '127.0.0.2');
  await waitUntil(() => refused.closed, 'the fourth busy connection to be refused', 5_000);
  assert.equal(budget.stats.refusedBy(TcpRefuseReason.CLIENT_SHARE), 1);
  handler.hold = false;
  handler.releaseAll();

  const b = await connect(port, '127.0.0.3');
  b.sock.write(query(99));
  await waitUntil(() => b.received === 102, 'another client answered', 5_000);
});

test('global cap: a new connection evicts the least recently active idle one; with none idle it is refused', async () => {
  const { budget, handler, port } = await start({ maxConnections: 4, maxConnectionsPerClient: 4 });
  const c: Client[] = [];
  for (let i = 0; i < 4; i++) c.push(await connect(port, `127.0.0.${10 + i}`));
  await waitUntil(() => budget.connections === 4, '4 connections', 5_000);
  c[0]!.sock.write(query(1));
  await waitUntil(() => c[0]!.received > 0, 'c[0] answered', 5_000);
  const fresh = await connect(port, '127.0.0.20');
  await waitUntil(() => c[1]!.closed, 'c[1] evicted', 5_000);
  assert.equal(budget.stats.closedBy(TcpCloseReason.CONNECTION_LIMIT), 1);
  fresh.sock.write(query(2));
  await waitUntil(() => fresh.received === 102, 'the new connection answered', 5_000);
  assert.ok(!c[0]!.closed && !c[2]!.closed && !c[3]!.closed);

  handler.hold = true;
  for (const x of [c[0]!, c[2]!, c[3]!]) x.sock.write(query(3));
  fresh.sock.write(query(4));
  await waitUntil(() => handler.held.length === 4, 'every connection busy', 5_000);
  const late = await connect(port, '127.0.0.21');
  await waitUntil(() => late.closed, 'the new connection refused', 5_000);
  assert.equal(budget.stats.refusedBy(TcpRefuseReason.CONNECTION_LIMIT), 1);
  assert.equal(budget.connections, 4);
});

test("half-close: queries sent before the client's FIN are answered, then the server closes", async () => {
  const { budget, handler, port } = await start({});
  handler.hold = true;
  const c = await connect(port);
  c.sock.end(queries(3));
  await waitUntil(() => handler.held.length === 3, 'three queries in flight', 5_000);
  handler.hold = false;
  handler.releaseAll();
  await waitUntil(() => c.closed, 'the server to close', 5_000);
  assert.equal(c.received, 3 * 102);
  assert.equal(budget.connections, 0);
});

test('connection caps fit the open-files limit: half of the descriptors beyond 64, an eighth of that per client', () => {
  assert.equal(
    openFilesLimit(
      'Limit                     Soft Limit           Hard Limit           Units     \nMax open files            1024                 524288               files     \n',
    ),
    1024,
  );
  assert.equal(openFilesLimit('Max open files            unlimited            unlimited            files\n'), Infinity);
  assert.equal(openFilesLimit(null), Infinity);
  assert.equal(tcpLimitsFor(1_048_576), DEFAULT_TCP_LIMITS);
  assert.equal(tcpLimitsFor(Infinity), DEFAULT_TCP_LIMITS);
  const small = tcpLimitsFor(1024);
  assert.equal(small.maxConnections, 480);
  assert.equal(small.maxConnectionsPerClient, 60);
  assert.equal(tcpLimitsFor(128).maxConnections, 32);
  assert.equal(tcpLimitsFor(128).maxConnectionsPerClient, 4);
  assert.equal(tcpLimitsFor(10).maxConnections, 1);
  assert.equal(tcpLimitsFor(10).maxConnectionsPerClient, 1);
});

test('replies framed through the shared scratch buffer stay intact when one is queued and other connections write meanwhile', async () => {
  const { budget, handler, port } = await start({});
  handler.replyBytes = 60_000;
  // Chunks kept as received and joined once when read: concatenating on every chunk copied the
  // slow client's 30 MB hundreds of times, slow enough to miss the wait on a busy machine.
  const chunks = new Map<Client, Buffer[]>();
  const ids = (c: Client): number[] => {
    const out: number[] = [];
    const b = Buffer.concat(chunks.get(c)!);
    for (let p = 0; p + 2 <= b.length && p + 2 + b.readUInt16BE(p) <= b.length; p += 2 + b.readUInt16BE(p)) out.push(b.readUInt16BE(p + 2));
    return out;
  };
  const track = (c: Client) => {
    const mine: Buffer[] = [];
    chunks.set(c, mine);
    c.sock.on('data', (d: Buffer) => mine.push(d));
    return c;
  };
  // The slow client fills the kernel's buffers until a reply is queued and reading pauses.
  const slow = track(await connect(port, '127.0.0.7', false));
  slow.sock.write(queries(500));
  await waitUntil(() => budget.stats.readPauses.get(TcpPauseReason.UNSENT) === 1, 'the slow client to be paused', 5_000);
  // Others write through the scratch buffer meanwhile.
  const fast = [track(await connect(port, '127.0.0.5')), track(await connect(port, '127.0.0.6'))];
  for (const c of fast) c.sock.write(queries(50));
  await waitUntil(() => fast.every((c) => c.received === 50 * 60_002), "the fast clients' replies", 5_000);
  slow.sock.resume();
  await waitUntil(() => slow.received === 500 * 60_002, "the slow client's replies", 30_000);
  for (const c of fast)
    assert.deepEqual(
      ids(c),
      Array.from({ length: 50 }, (_, i) => i),
    );
  assert.deepEqual(
    ids(slow),
    Array.from({ length: 500 }, (_, i) => i),
  );
});
