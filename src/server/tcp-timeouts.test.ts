/**
 * TcpListener.setTimeouts (the `timeouts` plugin's read / write / idle, per listener) with real
 * loopback sockets: each timeout closes the connection it governs, and only that one.
 */
import { afterEach, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { Dispatcher, Generation, RouteTarget } from './dispatch.ts';
import { DEFAULT_TCP_LIMITS, TcpBudget, TcpCloseReason, TcpListener, type TcpTimeouts } from './tcp.ts';
import { ZoneMatcher } from '../wire/zone-match.ts';
import { getZoneStats } from '../metrics/zone-stats.ts';
import type { Request } from './request.ts';
import { waitUntil } from '../../test/lib/net.ts';

/** Answers every query at once with a reply of `replyBytes` bytes. */
class Answer {
  replyBytes = 100;
  served = 0;
  serve(req: Request): void {
    this.served++;
    const out = Buffer.alloc(this.replyBytes);
    req.msg.copy(out, 0, 0, 12);
    out[2] = out[2]! | 0x80;
    req.reply(out, out.length, 'test');
  }
}

function query(id: number): Buffer {
  const q = Buffer.from([id >> 8, id & 255, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, 119, 119, 119, 4, 116, 101, 115, 116, 0, 0, 1, 0, 1]);
  return Buffer.concat([Buffer.from([0, q.length]), q]);
}

const cleanups: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function start(t: TcpTimeouts | null): Promise<{ listener: TcpListener; budget: TcpBudget; handler: Answer; port: number }> {
  const handler = new Answer();
  const table = new ZoneMatcher<RouteTarget>();
  table.add('.', new RouteTarget(handler, getZoneStats('dns://127.0.0.1:0', '.'), null, new Generation(1)));
  const budget = new TcpBudget({ ...DEFAULT_TCP_LIMITS });
  const listener = new TcpListener('127.0.0.1', 0, new Dispatcher('dns://127.0.0.1:0', table), false, budget);
  if (t !== null) listener.setTimeouts(t);
  const port = await listener.listen();
  cleanups.push(async () => {
    listener.destroyAll();
    await listener.close();
  });
  return { listener, budget, handler, port };
}

interface Client {
  sock: net.Socket;
  received: number;
  /** ms from connect to close, or -1 while open. */
  closedAfterMs: number;
}

async function connect(port: number, read = true): Promise<Client> {
  const sock = net.connect({ port, host: '127.0.0.1' });
  const c: Client = { sock, received: 0, closedAfterMs: -1 };
  const t0 = performance.now();
  sock.on('error', () => {});
  sock.on('close', () => (c.closedAfterMs = performance.now() - t0));
  sock.on('data', (d: Buffer) => (c.received += d.length));
  if (!read) sock.pause();
  await new Promise<void>((resolve, reject) => {
    sock.once('connect', () => resolve());
    sock.once('error', reject);
  });
  cleanups.push(() => void sock.destroy());
  return c;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('setTimeouts: without a call every timeout is the budget idle timeout; null keeps it, values replace it', async () => {
  const { listener } = await start(null);
  const d = DEFAULT_TCP_LIMITS.idleTimeoutMs;
  assert.deepEqual([listener.readTimeoutMs, listener.writeTimeoutMs, listener.idleTimeoutMs], [d, d, d]);
  listener.setTimeouts({ readTimeoutMs: 1000, writeTimeoutMs: null, idleTimeoutMs: 60_000 });
  assert.deepEqual([listener.readTimeoutMs, listener.writeTimeoutMs, listener.idleTimeoutMs], [1000, d, 60_000]);
  listener.setTimeouts({ readTimeoutMs: null, writeTimeoutMs: null, idleTimeoutMs: null });
  assert.deepEqual([listener.readTimeoutMs, listener.writeTimeoutMs, listener.idleTimeoutMs], [d, d, d]);
});

test('read timeout: a connection that sends no query is closed after it, not after the idle timeout', async () => {
  const { budget, port } = await start({ readTimeoutMs: 300, writeTimeoutMs: null, idleTimeoutMs: 5_000 });
  const c = await connect(port);
  await waitUntil(() => c.closedAfterMs >= 0, 'the silent connection to be closed', 3_000);
  assert.ok(c.closedAfterMs >= 250 && c.closedAfterMs < 2_000, `closed after ${c.closedAfterMs} ms`);
  await waitUntil(() => budget.connections === 0, 'the slot to be released', 5_000);
});

test('idle timeout: after its first query a connection lives by the idle timeout, not the read timeout', async () => {
  const { handler, port } = await start({ readTimeoutMs: 300, writeTimeoutMs: null, idleTimeoutMs: 1_500 });
  const c = await connect(port);
  c.sock.write(query(1));
  await waitUntil(() => c.received === 102, 'the reply', 5_000);
  await sleep(700);
  assert.equal(c.closedAfterMs, -1, 'still open past the read timeout: idle applies after a query');
  await waitUntil(() => c.closedAfterMs >= 0, 'the idle connection to be closed', 3_000);
  assert.ok(c.closedAfterMs >= 1_400, `closed after ${c.closedAfterMs} ms`);
  assert.equal(handler.served, 1);
});

test('idle timeout shorter than the read timeout: an answered connection closes sooner than a silent one', async () => {
  const { port } = await start({ readTimeoutMs: 2_000, writeTimeoutMs: null, idleTimeoutMs: 300 });
  const silent = await connect(port);
  const asked = await connect(port);
  asked.sock.write(query(7));
  await waitUntil(() => asked.closedAfterMs >= 0, 'the answered connection to be closed', 3_000);
  assert.ok(asked.closedAfterMs < 1_500, `answered one closed after ${asked.closedAfterMs} ms`);
  assert.equal(silent.closedAfterMs, -1, 'the silent one still waits for its read timeout');
  await waitUntil(() => silent.closedAfterMs >= 0, 'the silent connection to be closed', 4_000);
  assert.ok(silent.closedAfterMs >= 1_900, `silent one closed after ${silent.closedAfterMs} ms`);
});

test('read timeout bounds one frame: a client trickling a query byte by byte is cut (slow_frame)', async () => {
  const { budget, handler, port } = await start({ readTimeoutMs: 300, writeTimeoutMs: null, idleTimeoutMs: 5_000 });
  const c = await connect(port);
  const q = query(3);
  for (let i = 0; i < q.length - 1 && c.closedAfterMs < 0; i++) {
    c.sock.write(q.subarray(i, i + 1));
    await sleep(60);
  }
  await waitUntil(() => c.closedAfterMs >= 0, 'the trickling connection to be closed', 3_000);
  assert.equal(budget.stats.closedBy(TcpCloseReason.SLOW_FRAME), 1);
  assert.equal(handler.served, 0);
});

test('write timeout: a client that does not read is destroyed after it (write_stall), long before the idle timeout', async () => {
  const { budget, handler, port } = await start({ readTimeoutMs: 5_000, writeTimeoutMs: 400, idleTimeoutMs: 5_000 });
  handler.replyBytes = 10_000;
  const c = await connect(port, false);
  c.sock.write(Buffer.concat(Array.from({ length: 1_000 }, (_, i) => query(i))));
  await waitUntil(() => budget.stats.closedBy(TcpCloseReason.WRITE_STALL) === 1, 'the stalled connection to be closed', 4_000);
  assert.ok(c.closedAfterMs < 0 || c.closedAfterMs < 3_000, `closed after ${c.closedAfterMs} ms`);
  await waitUntil(() => budget.connections === 0 && budget.bufferedBytes === 0, 'slot and bytes released', 5_000);
});

test('a connection that reads its replies is not cut by a short write timeout', async () => {
  const { budget, handler, port } = await start({ readTimeoutMs: 5_000, writeTimeoutMs: 300, idleTimeoutMs: 5_000 });
  handler.replyBytes = 10_000;
  const c = await connect(port);
  c.sock.write(Buffer.concat(Array.from({ length: 500 }, (_, i) => query(i))));
  await waitUntil(() => c.received === 500 * 10_002, 'every reply', 10_000);
  await sleep(600);
  assert.equal(c.closedAfterMs, -1, 'still open: every write completed');
  assert.equal(budget.stats.closed.size, 0);
});

test('timeouts apply to connections accepted after setTimeouts; open ones keep theirs', async () => {
  const { listener, port } = await start({ readTimeoutMs: 3_000, writeTimeoutMs: null, idleTimeoutMs: null });
  const before = await connect(port);
  listener.setTimeouts({ readTimeoutMs: 300, writeTimeoutMs: null, idleTimeoutMs: null });
  const after = await connect(port);
  await waitUntil(() => after.closedAfterMs >= 0, 'the new connection to be closed', 2_000);
  assert.equal(before.closedAfterMs, -1);
});
