/**
 * One hostile client, run as its own process (`node attacker.ts '<json>'`) so that its work
 * never delays the test's probes and its file descriptors count against its own limit. The
 * JSON is an AttackConfig (attack-types.ts). It prints one JSON line `{"event":"ready",...}`
 * when set up, then attacks until its deadline or its count bound, then prints
 * `{"event":"done","stats":{...}}` and exits 0. SIGTERM ends it early the same way.
 *
 * Every attack is bounded in count (packets, connections, reconnects) and in time
 * (`durationMs`); nothing here reads from or writes to anything but the given loopback
 * addresses.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import { encodeQuery } from '../../fault/lib/dns.ts';
import type { AttackConfig, Stats } from './attack-types.ts';

const cfg = JSON.parse(process.argv[2] ?? '{}') as AttackConfig;
const stats: Stats = {};
const bump = (k: string, n = 1) => (stats[k] = (stats[k] ?? 0) + n);
const deadline = Date.now() + cfg.durationMs;
let finished = false;
const cleanups: (() => void)[] = [];

function emit(o: object): void {
  process.stdout.write(JSON.stringify(o) + '\n');
}

function finish(): void {
  if (finished) return;
  finished = true;
  for (const c of cleanups) {
    try {
      c();
    } catch {
      // Best effort: the process exits next.
    }
  }
  emit({ event: 'done', stats });
  // Give stdout its line, then leave (sockets still open are the kernel's to close).
  setTimeout(() => process.exit(0), 50);
}

process.on('SIGTERM', finish);
// Not unref'd: an attack whose sockets all closed before its deadline still reports.
setTimeout(finish, cfg.durationMs + 500);

const RCODES = ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED'];
const rcodeOf = (b: Buffer) => (b.length >= 4 ? (RCODES[b[3]! & 0x0f] ?? `RCODE${b[3]! & 0x0f}`) : 'short');

/** Sends `perTick()` every 10 ms (rate/100 packets) until the deadline or `max` sends. */
function paced(ratePerSec: number, max: number, send: (i: number) => void, onEnd: () => void): void {
  let i = 0;
  const perTick = Math.max(1, Math.round(ratePerSec / 100));
  const timer = setInterval(() => {
    for (let k = 0; k < perTick; k++) {
      if (i >= max || Date.now() >= deadline) {
        clearInterval(timer);
        onEnd();
        return;
      }
      send(i++);
    }
  }, 10);
  cleanups.push(() => clearInterval(timer));
}

async function udpSockets(n: number, localAddress: string, onMessage: (m: Buffer) => void): Promise<dgram.Socket[]> {
  const out: dgram.Socket[] = [];
  for (let i = 0; i < n; i++) {
    const s = dgram.createSocket('udp4');
    s.on('error', () => bump('socketErrors'));
    s.on('message', onMessage);
    await new Promise<void>((r) => s.bind(0, localAddress, () => r()));
    out.push(s);
    cleanups.push(() => s.close());
  }
  return out;
}

// ---- malformed UDP ----

/** A wire name: labels, terminating zero. */
function wireName(name: string): Buffer {
  const parts: Buffer[] = [];
  for (const l of name.split('.').filter(Boolean)) parts.push(Buffer.from([l.length]), Buffer.from(l));
  parts.push(Buffer.from([0]));
  return Buffer.concat(parts);
}

function header(id: number, flags: number, qd: number, an: number, ns: number, ar: number): Buffer {
  const h = Buffer.alloc(12);
  h.writeUInt16BE(id, 0);
  h.writeUInt16BE(flags, 2);
  h.writeUInt16BE(qd, 4);
  h.writeUInt16BE(an, 6);
  h.writeUInt16BE(ns, 8);
  h.writeUInt16BE(ar, 10);
  return h;
}

/** An OPT RR: owner `owner` (wire), payload size, version, rdata. */
function opt(owner: Buffer, version: number, rdata: Buffer, rdlenOverride?: number): Buffer {
  const fixed = Buffer.alloc(10);
  fixed.writeUInt16BE(41, 0);
  fixed.writeUInt16BE(1232, 2);
  fixed.writeUInt8(0, 4);
  fixed.writeUInt8(version, 5);
  fixed.writeUInt16BE(rdlenOverride ?? rdata.length, 8);
  return Buffer.concat([owner, fixed, rdata]);
}

/** An A record for `owner` (wire) with address 192.0.2.1. */
function aRecord(owner: Buffer): Buffer {
  const fixed = Buffer.alloc(14);
  fixed.writeUInt16BE(1, 0);
  fixed.writeUInt16BE(1, 2);
  fixed.writeUInt32BE(300, 4);
  fixed.writeUInt16BE(4, 8);
  fixed.set([192, 0, 2, 1], 10);
  return Buffer.concat([owner, fixed]);
}

const QTAIL = Buffer.from([0, 1, 0, 1]);
const RD = 0x0100;

/**
 * The malformed-packet variants: name → builder (ID in). Each is something a pod can send;
 * CoreDNS answers some (FORMERR, NOTIMP, BADVERS) and drops the rest.
 */
export const MALFORMED: Record<string, (id: number, qname: string, missName: string) => Buffer> = {
  randomBytes: () => randomBytes(1 + Math.floor(Math.random() * 512)),
  shortHeader: () => randomBytes(1 + Math.floor(Math.random() * 11)),
  cutQuestion: (id, q) => {
    const full = Buffer.concat([header(id, RD, 1, 0, 0, 0), wireName(q), QTAIL]);
    return full.subarray(0, 12 + 1 + Math.floor(Math.random() * (full.length - 14)));
  },
  selfPointer: (id) => Buffer.concat([header(id, RD, 1, 0, 0, 0), Buffer.from([0xc0, 12]), QTAIL]),
  pointerLoop: (id) => Buffer.concat([header(id, RD, 1, 0, 0, 0), Buffer.from([0xc0, 14, 0xc0, 12]), QTAIL]),
  forwardPointer: (id) => Buffer.concat([header(id, RD, 1, 0, 0, 0), Buffer.from([0xc0, 200]), QTAIL]),
  longLabel: (id) =>
    Buffer.concat([header(id, RD, 1, 0, 0, 0), Buffer.from([63]), Buffer.alloc(63, 0x61), Buffer.from([0x40]), Buffer.alloc(8, 0x62), Buffer.from([0]), QTAIL]),
  longName: (id) => {
    const labels: Buffer[] = [];
    for (let i = 0; i < 5; i++) labels.push(Buffer.from([60]), Buffer.alloc(60, 0x61 + i));
    return Buffer.concat([header(id, RD, 1, 0, 0, 0), ...labels, Buffer.from([0]), QTAIL]);
  },
  noQuestion: (id) => header(id, RD, 0, 0, 0, 0),
  twoQuestions: (id, q) => Buffer.concat([header(id, RD, 2, 0, 0, 0), wireName(q), QTAIL, wireName(q), QTAIL]),
  // A name not in the cache: the query goes upstream, whose answer (NSD: FORMERR) comes back.
  authorityRecord: (id, _q, miss) => Buffer.concat([header(id, RD, 1, 0, 1, 0), wireName(miss), QTAIL, aRecord(wireName(miss))]),
  answerRecord: (id, q) => Buffer.concat([header(id, RD, 1, 1, 0, 0), wireName(q), QTAIL, aRecord(wireName(q))]),
  optNotRoot: (id, q) => Buffer.concat([header(id, RD, 1, 0, 0, 1), wireName(q), QTAIL, opt(wireName('x'), 0, Buffer.alloc(0))]),
  twoOpts: (id, q) =>
    Buffer.concat([header(id, RD, 1, 0, 0, 2), wireName(q), QTAIL, opt(Buffer.from([0]), 0, Buffer.alloc(0)), opt(Buffer.from([0]), 0, Buffer.alloc(0))]),
  optRdlenPastEnd: (id, q) => Buffer.concat([header(id, RD, 1, 0, 0, 1), wireName(q), QTAIL, opt(Buffer.from([0]), 0, Buffer.from([0, 10, 0, 40, 1]), 4000)]),
  optBadOption: (id, q) => Buffer.concat([header(id, RD, 1, 0, 0, 1), wireName(q), QTAIL, opt(Buffer.from([0]), 0, Buffer.from([0, 8, 0xff, 0xff, 1, 2]))]),
  ednsVersion1: (id, q) => Buffer.concat([header(id, RD, 1, 0, 0, 1), wireName(q), QTAIL, opt(Buffer.from([0]), 1, Buffer.alloc(0))]),
  response: (id, q) => Buffer.concat([header(id, 0x8180, 1, 0, 0, 0), wireName(q), QTAIL]),
  opcodeUpdate: (id, q) => Buffer.concat([header(id, 5 << 11, 1, 0, 0, 0), wireName(q), QTAIL]),
  trailingGarbage: (id, q) => Buffer.concat([header(id, RD, 1, 0, 0, 0), wireName(q), QTAIL, randomBytes(64)]),
};

async function malformed(): Promise<void> {
  const names = Object.keys(MALFORMED);
  // ID → variant of the last packet sent with it, so replies are counted per variant.
  const variantOfId = new Uint8Array(0x10000).fill(255);
  const socks = await udpSockets(4, cfg.localAddress ?? '127.0.0.1', (m) => {
    bump('replies');
    bump(`reply:${rcodeOf(m)}`);
    if (m.length >= 2) bump(`reply:${names[variantOfId[m.readUInt16BE(0)]!] ?? '?'}:${rcodeOf(m)}`);
  });
  emit({ event: 'ready' });
  const tag = randomBytes(3).toString('hex');
  paced(
    cfg.rate ?? 1000,
    cfg.count ?? 20_000,
    (i) => {
      const v = i % names.length;
      const pkt = MALFORMED[names[v]!]!((Math.random() * 0x10000) & 0xffff, cfg.qname ?? 'probe.example', `m${i}-${tag}.${cfg.missZone ?? 'example'}`);
      if (pkt.length >= 2) variantOfId[pkt.readUInt16BE(0)] = v;
      bump('sent');
      bump(`sent:${names[v]}`);
      socks[i % socks.length]!.send(pkt, cfg.port, cfg.host);
    },
    finishSoon,
  );
}

// ---- unique-name flood ----

async function uniqueFlood(): Promise<void> {
  const socks = await udpSockets(4, cfg.localAddress ?? '127.0.0.1', (m) => {
    bump('replies');
    bump(`reply:${rcodeOf(m)}`);
  });
  emit({ event: 'ready' });
  const tag = randomBytes(3).toString('hex');
  paced(
    cfg.rate ?? 1000,
    cfg.count ?? 100_000,
    (i) => {
      bump('sent');
      const q = encodeQuery(`u${i}-${tag}.${cfg.qname}`, 'A', (Math.random() * 0x10000) & 0xffff);
      socks[i % socks.length]!.send(q, cfg.port, cfg.host);
    },
    finishSoon,
  );
}

// ---- upstream that never answers ----

async function sink(): Promise<void> {
  const s = dgram.createSocket('udp4');
  s.on('error', () => bump('socketErrors'));
  s.on('message', () => bump('discarded'));
  await new Promise<void>((r) => s.bind(0, cfg.host, () => r()));
  cleanups.push(() => s.close());
  emit({ event: 'ready', port: s.address().port });
}

// ---- TCP: pipelining clients that never read ----

function frame(q: Buffer): Buffer {
  const f = Buffer.alloc(2 + q.length);
  f.writeUInt16BE(q.length, 0);
  q.copy(f, 2);
  return f;
}

async function pipeline(): Promise<void> {
  const frames: Buffer[] = [];
  for (let i = 0; i < (cfg.perConnection ?? 10_000); i++) frames.push(frame(encodeQuery(cfg.qname!, (cfg.qtype ?? 'TXT') as 'TXT', i & 0xffff)));
  const burst = Buffer.concat(frames);
  const one = frames[0]!;
  const open = new Set<net.Socket>();
  cleanups.push(() => open.forEach((s) => s.destroy()));
  let started = 0;
  const maxConnections = (cfg.connections ?? 4) * (cfg.rounds ?? 3);
  const connectOne = () => {
    if (finished || Date.now() >= deadline || started >= maxConnections) return;
    started++;
    bump('connections');
    const s = net.connect({ host: cfg.host, port: cfg.port, localAddress: cfg.localAddress });
    open.add(s);
    let tick: NodeJS.Timeout | null = null;
    s.once('connect', () => {
      // Never read: stop the stream and keep writing.
      s.pause();
      s.write(burst);
      bump('queriesWritten', frames.length);
      // A paused socket notices that the server closed it only when it writes again.
      tick = setInterval(() => {
        s.write(one);
        bump('queriesWritten');
      }, 500);
    });
    s.on('error', () => bump('errors'));
    s.once('close', () => {
      if (tick) clearInterval(tick);
      open.delete(s);
      if (!finished) {
        bump('closedByServer');
        setTimeout(connectOne, 200);
      }
    });
  };
  emit({ event: 'ready' });
  for (let i = 0; i < (cfg.connections ?? 4); i++) connectOne();
}

// ---- TCP: many connections from one source address ----

/**
 * Holds as many connections as it can (up to `connections`) from one address. A connection
 * counts as pending until its first answer arrives (the kernel completes handshakes the
 * server has not accepted yet: those are pending too), and at most PENDING_MAX are pending at
 * once: the attack holds slots, it does not keep the listener's accept queue full (a
 * connect-rate flood is the kernel's SYN/accept-queue business, not a per-client bound's).
 * A connection the server closes is replaced 1 s later.
 */
const PENDING_MAX = 64;

async function connFlood(): Promise<void> {
  const target = cfg.connections ?? 1000;
  const maxAttempts = target * (cfg.rounds ?? 2);
  const q = frame(encodeQuery(cfg.qname!, 'A', 1));
  const open = new Set<net.Socket>();
  cleanups.push(() => open.forEach((s) => s.destroy()));
  let attempts = 0;
  let pending = 0;
  let held = 0;
  const pump = () => {
    while (!finished && Date.now() < deadline && attempts < maxAttempts && open.size < target && pending < PENDING_MAX) {
      attempts++;
      pending++;
      bump('attempts');
      const s = net.connect({ host: cfg.host, port: cfg.port, localAddress: cfg.localAddress });
      open.add(s);
      let answered = false;
      let keepAlive: NodeJS.Timeout | null = null;
      s.once('connect', () => {
        bump('connected');
        // One query now and one every 8 s: never idle long enough for the server's idle timeout.
        s.write(q);
        keepAlive = setInterval(() => s.write(q), 8_000);
      });
      s.on('data', (d) => {
        bump('bytesRead', d.length);
        if (answered) return;
        answered = true;
        pending--;
        held++;
        stats.maxHeld = Math.max(stats.maxHeld ?? 0, held);
        pump();
      });
      s.on('error', () => bump('errors'));
      s.once('close', () => {
        if (keepAlive) clearInterval(keepAlive);
        open.delete(s);
        if (answered) held--;
        else pending--;
        if (finished) return;
        bump(answered ? 'closedByServer' : 'closedUnanswered');
        setTimeout(pump, 1_000);
      });
    }
  };
  emit({ event: 'ready' });
  pump();
}

// ---- HTTP: held connections, slowloris, scrapers ----

const HTTP_OPEN_PER_SEC = 150;

async function httpFlood(): Promise<void> {
  const targets = cfg.targets ?? [];
  const open = new Set<net.Socket>();
  cleanups.push(() => open.forEach((s) => s.destroy()));
  const reqLine = (p: string) => `GET ${p} HTTP/1.1\r\nHost: x\r\n`;
  let attempts = 0;
  const maxAttempts = targets.reduce((n, t) => n + t.held + t.slowloris, 0) * (cfg.rounds ?? 3);
  const hold = (t: { host: string; port: number; path: string }, kind: 'held' | 'slowloris') => {
    if (finished || Date.now() >= deadline || attempts >= maxAttempts) return;
    attempts++;
    bump(`${kind}:attempts`);
    const s = net.connect({ host: t.host, port: t.port, localAddress: cfg.localAddress });
    open.add(s);
    let drip: NodeJS.Timeout | null = null;
    let connected = false;
    s.once('connect', () => {
      connected = true;
      bump(`${kind}:connected`);
      // Held: half a request and then nothing. Slowloris: one more header line every 2 s.
      s.write(kind === 'held' ? `GET ${t.path} HTTP/1.1\r\n` : reqLine(t.path));
      if (kind === 'slowloris') drip = setInterval(() => s.write(`X-${randomBytes(2).toString('hex')}: a\r\n`), 2_000);
    });
    s.on('data', (d) => bump(`${kind}:bytesRead`, d.length));
    s.on('error', () => bump(`${kind}:errors`));
    s.once('close', () => {
      if (drip) clearInterval(drip);
      open.delete(s);
      if (finished) return;
      bump(connected ? `${kind}:closedByServer` : `${kind}:connectFailed`);
      setTimeout(() => hold(t, kind), 1_000);
    });
  };
  const scrapeLoop = async (t: { host: string; port: number; path: string }) => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1, localAddress: cfg.localAddress });
    cleanups.push(() => agent.destroy());
    while (!finished && Date.now() < deadline) {
      const status = await new Promise<number>((resolve) => {
        const req = http.get({ host: t.host, port: t.port, path: t.path, agent, timeout: 5_000 }, (res) => {
          res.on('data', (d: Buffer) => bump('scrape:bytes', d.length));
          res.on('end', () => resolve(res.statusCode ?? 0));
          res.on('error', () => resolve(-1));
        });
        req.on('timeout', () => req.destroy());
        req.on('error', () => resolve(-1));
      });
      bump(status === 200 ? 'scrape:ok' : 'scrape:failed');
      if (status !== 200) await new Promise((r) => setTimeout(r, 100));
    }
  };
  emit({ event: 'ready' });
  for (const t of targets) {
    // Connections go out at HTTP_OPEN_PER_SEC per target (the flood builds over seconds): the
    // attack holds connections, it does not keep the accept queue full (see connFlood).
    const every = 1000 / HTTP_OPEN_PER_SEC;
    for (let i = 0; i < t.held; i++) setTimeout(() => hold(t, 'held'), Math.floor(i * every));
    for (let i = 0; i < t.slowloris; i++) setTimeout(() => hold(t, 'slowloris'), Math.floor(i * every));
    for (let i = 0; i < t.scrapers; i++) void scrapeLoop(t);
  }
}

function finishSoon(): void {
  // Replies still on their way get a moment to arrive before the count is final.
  setTimeout(finish, 1_000);
}

const modes: Record<string, () => Promise<void>> = {
  malformed,
  uniqueFlood,
  sink,
  pipeline,
  connFlood,
  httpFlood,
};

const run = modes[cfg.mode];
if (!run) {
  process.stderr.write(`unknown mode ${cfg.mode}\n`);
  process.exit(2);
}
run().catch((err: Error) => {
  process.stderr.write(`${err.stack}\n`);
  process.exit(1);
});
