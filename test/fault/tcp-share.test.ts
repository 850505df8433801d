/**
 * Issue 12 finding 6: one client could take every TCP slot. The listener had a global cap of
 * 10,000 connections and no per-client share, so one source address holding 10,000 idle
 * connections kept every other client (also those retrying over TCP after TC=1) out.
 * Now (src/server/tcp.ts DEFAULT_TCP_LIMITS) one address holds at most 256 connections (a new
 * one replaces its least recently active idle one) and the thread at most 2,048 (a new one
 * replaces the least recently active idle connection of anyone).
 *
 * Needs ~11,000 file descriptors in this process and in the agent (the old cap is 10,000).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { startAgent, scrape, metricSum, type Agent } from './lib/agent.ts';
import { startNsd, zoneText, type Nsd } from './lib/nsd.ts';
import { freeAddress, waitUntil } from './lib/net.ts';
import { encodeQuery, type Decoded } from './lib/dns.ts';
import dnsPacket from 'dns-packet';

/** DEFAULT_TCP_LIMITS.maxConnectionsPerClient and .maxConnections. */
const SHARE = 256;
const GLOBAL_CAP = 2_048;
/** Beyond the old global cap (10,000). */
const HOG_CONNECTIONS = 10_050;

let nsd: Nsd;
let agent: Agent;
let dns: { host: string; port: number };
let metrics: { host: string; port: number };

function openFilesLimit(): number {
  const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
  return m === null || m[1] === 'unlimited' ? Infinity : Number(m[1]);
}

const fdsShort = openFilesLimit() < HOG_CONNECTIONS + GLOBAL_CAP + 500;

before(async () => {
  if (fdsShort) return;
  nsd = await startNsd({ 'ok.test.': zoneText('ok.test', ['www IN A 192.0.2.80']) });
  dns = await freeAddress();
  metrics = await freeAddress(dns.host);
  agent = await startAgent(`ok.test:${dns.port} {
    bind ${dns.host}
    cache 300
    forward . ${nsd.addr}
    prometheus ${metrics.host}:${metrics.port}
    # Idle connections must outlive both tests (thousands of connects on a busy machine can take
    # longer than the 10 s default): only the caps may close a connection here.
    timeouts {
        idle 5m
    }
}
`);
});

const open: Conn[] = [];

after(async () => {
  for (const c of open) c.sock.destroy();
  await agent?.stop();
  await nsd?.stop();
});

interface Conn {
  sock: net.Socket;
  /** Opening order. */
  n: number;
  closed: boolean;
  received: Buffer;
}

let opened = 0;

function connect(localAddress: string): Promise<Conn> {
  return new Promise((resolve) => {
    const sock = net.connect({ port: dns.port, host: dns.host, localAddress });
    const c: Conn = { sock, n: opened++, closed: false, received: Buffer.alloc(0) };
    sock.on('data', (d: Buffer) => (c.received = Buffer.concat([c.received, d])));
    sock.on('error', () => {});
    sock.on('close', () => {
      c.closed = true;
      resolve(c);
    });
    sock.once('connect', () => resolve(c));
    open.push(c);
  });
}

/** Opens `n` connections from `localAddress`, `parallel` at a time, in order. */
async function openMany(localAddress: string, n: number, parallel = 32): Promise<Conn[]> {
  const out: Conn[] = [];
  for (let i = 0; i < n; i += parallel) {
    const batch: Promise<Conn>[] = [];
    for (let j = i; j < Math.min(n, i + parallel); j++) batch.push(connect(localAddress));
    out.push(...(await Promise.all(batch)));
  }
  return out;
}

/** One query for www.ok.test over `c`; the decoded answer, or null without one within 5 s. */
async function ask(c: Conn, id: number): Promise<Decoded | null> {
  const q = encodeQuery('www.ok.test', 'A', id);
  const start = c.received.length;
  c.sock.write(Buffer.concat([Buffer.from([q.length >> 8, q.length & 0xff]), q]));
  try {
    await waitUntil(() => c.closed || (c.received.length - start >= 2 && c.received.length - start >= 2 + c.received.readUInt16BE(start)), 'an answer', 5_000);
  } catch {
    return null;
  }
  if (c.received.length - start < 2) return null;
  return dnsPacket.decode(c.received.subarray(start + 2, start + 2 + c.received.readUInt16BE(start))) as Decoded;
}

/** A new connection from `localAddress` and one query on it; then it closes. */
async function newClientAsks(localAddress: string, id: number): Promise<Decoded | null> {
  const c = await connect(localAddress);
  const r = c.closed ? null : await ask(c, id);
  c.sock.destroy();
  return r;
}

async function openOnServer(): Promise<number> {
  return metricSum(await scrape(metrics.host, metrics.port), 'nodelocaldns_tcp_connections');
}

test('one client over its share: its own idle connections make room, and another client still gets a TCP connection and an answer', {
  skip: fdsShort ? 'needs ~12,500 open files (ulimit -n)' : false,
  timeout: 180_000,
}, async () => {
  // Quickly (in well under the 10 s idle timeout, which would close the first ones).
  const hog = await openMany('127.0.2.1', HOG_CONNECTIONS, 200);
  // At once (before any idle timeout could free a slot).
  const r = await newClientAsks('127.0.3.1', 0x1111);
  assert.equal(r?.rcode, 'NOERROR', 'another client is answered over TCP');
  assert.equal(r?.answers?.length, 1);
  await waitUntil(() => hog.filter((c) => !c.closed).length <= SHARE, 'the hog to see its evicted connections closed', 10_000).catch(() => {});
  const stillOpen = hog.filter((c) => !c.closed);
  assert.equal(stillOpen.length, SHARE, `the hog keeps its share: ${stillOpen.length} open`);
  // The survivors are the newest: each new connection replaced the oldest idle one.
  assert.deepEqual(
    stillOpen.map((c) => c.n),
    hog.slice(-SHARE).map((c) => c.n),
  );
  const fams = await scrape(metrics.host, metrics.port);
  assert.equal(metricSum(fams, 'nodelocaldns_tcp_connections_closed_total', { reason: 'client_share' }), HOG_CONNECTIONS - SHARE);
  await waitUntil(async () => (await openOnServer()) === SHARE, "the other client's connection to be gone");
  assert.ok(agent.alive());
});

test('at the global cap, a new client takes the place of the least recently active idle connection', {
  skip: fdsShort ? 'needs ~12,500 open files (ulimit -n)' : false,
  timeout: 180_000,
}, async () => {
  const hog = open.filter((c) => !c.closed && c.sock.localAddress === '127.0.2.1');
  assert.equal(hog.length, SHARE);
  // Seven more clients at their share: the thread is at its cap.
  const others: Conn[] = [];
  for (let a = 2; a <= GLOBAL_CAP / SHARE; a++) others.push(...(await openMany(`127.0.2.${a}`, SHARE)));
  assert.ok(
    others.every((c) => !c.closed),
    'all admitted up to the cap',
  );
  // The client's connect completes before the server accepts (the backlog), and /metrics is
  // rendered at most once a second: wait for the server's count rather than read it once.
  await waitUntil(async () => (await openOnServer()) === GLOBAL_CAP, 'the server to hold every connection up to the cap', 10_000);

  // The oldest hog connection becomes the most recently active one; the next oldest is now the LRU idle one.
  const r0 = await ask(hog[0]!, 0x2222);
  assert.equal(r0?.rcode, 'NOERROR');
  const r = await newClientAsks('127.0.3.2', 0x3333);
  assert.equal(r?.rcode, 'NOERROR', 'the new client is answered');
  await waitUntil(() => hog[1]!.closed, 'the least recently active idle connection to be closed', 10_000);
  const closedNow = [...hog, ...others].filter((c) => c.closed);
  assert.deepEqual(
    closedNow.map((c) => c.n),
    [hog[1]!.n],
    'exactly that one was evicted',
  );
  const fams = await scrape(metrics.host, metrics.port);
  assert.equal(metricSum(fams, 'nodelocaldns_tcp_connections_closed_total', { reason: 'connection_limit' }), 1);
  assert.ok(agent.alive());
});
