/**
 * UdpListener.handOver(): two listeners share 127.0.0.1:port through SO_REUSEPORT (as two
 * workers or a primary and a standby do). Queries pile up in both sockets while the event loop
 * is blocked; one listener then leaves. With handOver() every query is answered (the queued
 * ones by the leaving socket, the new ones by the other); a plain close() at the same moment
 * loses the leaving socket's queue, which is what the handover exists to avoid.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { Dispatcher, Generation, RouteTarget } from './dispatch.ts';
import { type UdpListener, createUdpListener } from './udp.ts';
import type { UdpIoValue } from './udp-native.ts';
import { udpIoPaths } from '../../test/lib/udp-io.ts';
import { ZoneMatcher } from '../wire/zone-match.ts';
import { getZoneStats } from '../metrics/zone-stats.ts';
import { buildEmptyResponse } from '../wire/message.ts';
import { Rcode } from '../wire/codes.ts';
import type { Request } from './request.ts';

/**
 * Client (own process, so blocking the server's loop does not stop it): `rate` queries per second
 * for `ms` from 64 sockets, each query answered or not within 1 s; prints {sent, answered}.
 */
const CLIENT = `
import dgram from 'node:dgram';
const [port, rate, ms] = process.argv.slice(1).map(Number);
const socks = [];
let sent = 0, answered = 0;
for (let i = 0; i < 64; i++) {
  const s = dgram.createSocket('udp4');
  s.on('message', () => answered++);
  socks.push(s);
}
const q = (id) => Buffer.from([id >> 8, id & 255, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, 119, 119, 119, 4, 116, 101, 115, 116, 0, 0, 1, 0, 1]);
const start = performance.now();
const tick = setInterval(() => {
  const due = Math.floor(((performance.now() - start) / 1000) * rate);
  while (sent < due) { socks[sent % 64].send(q(sent & 0xffff), port, '127.0.0.1'); sent++; }
  if (performance.now() - start >= ms) {
    clearInterval(tick);
    setTimeout(() => { console.log(JSON.stringify({ sent, answered })); socks.forEach((s) => s.close()); }, 1000);
  }
}, 1);
`;

function runClient(port: number, rate: number, ms: number): Promise<{ sent: number; answered: number }> {
  const c = spawn(process.execPath, ['--input-type=module', '-e', CLIENT, String(port), String(rate), String(ms)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  c.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  return new Promise((resolve, reject) => c.once('exit', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`client exited ${code}`)))));
}

/** A dispatcher whose every query is answered NOERROR after `delayMs` (in flight meanwhile). */
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

function blockFor(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    // Busy: datagrams queue in both sockets.
  }
}

async function drill(io: UdpIoValue, leave: (l: UdpListener) => Promise<void>): Promise<{ sent: number; answered: number; leavingReceived: number }> {
  const a = createUdpListener('127.0.0.1', 0, delayedDispatcher(5), true, io);
  const port = await a.bind();
  const b = createUdpListener('127.0.0.1', port, delayedDispatcher(5), true, io);
  await b.bind();
  const client = runClient(port, 4000, 1500);
  // Both members take traffic (the client process needs a moment to start).
  const deadline = Date.now() + 10_000;
  while (a.received < 100 || b.received < 100) {
    if (Date.now() > deadline) throw new Error(`no traffic on both members: ${a.received}, ${b.received}`);
    await new Promise((r) => setTimeout(r, 10));
  }
  blockFor(60);
  const left = leave(a);
  const result = await client;
  await left;
  await b.close();
  return { ...result, leavingReceived: a.received };
}

for (const io of udpIoPaths()) {
  test(`${io}: handOver answers what was queued and in flight; new queries go to the other member`, { timeout: 30_000 }, async () => {
    const r = await drill(io, (l) => l.handOver(performance.now() + 5000));
    assert.ok(r.sent > 3000, `client sent ${r.sent}`);
    assert.equal(r.answered, r.sent, `${r.sent - r.answered} of ${r.sent} queries unanswered`);
  });

  test(`${io}: contrast: a plain close() at the same moment loses the queued datagrams`, { timeout: 30_000 }, async () => {
    const r = await drill(io, (l) => l.close());
    assert.ok(r.sent > 3000, `client sent ${r.sent}`);
    assert.ok(r.answered < r.sent, 'expected losses with a plain close');
  });
}
