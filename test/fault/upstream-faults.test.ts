/**
 * Upstream faults, injected on loopback while a well-behaved client keeps querying a healthy
 * zone served by a real upstream (NSD). One agent serves every zone; each faulty zone
 * forwards (without cache, so every query reaches the fault) to its own toy upstream:
 *
 *   killed          answers, then dies (its port refuses)
 *   blackhole[-tcp] receives, never answers (UDP; TCP accepts and reads)
 *   slow[-tcp]      answers every query after 3 s (longer than the 2 s read timeout)
 *   garbage         answers random bytes
 *   wrongid         answers with a wrong ID, a wrong question and garbage first, then right
 *   truncframe      TCP: a length prefix and half the message, then silence
 *   truncclose      TCP: a length prefix and half the message, then close
 *   reset           TCP: resets connections at their third query, mid-pipeline
 *   hdr             a second NSD, which answers a class HS query REFUSED and a query signed
 *                   with an unknown TSIG key NOTAUTH, both without a question section
 *
 * Every query must be answered (an answer or SERVFAIL, never nothing) within forward's
 * deadline plus a margin (DEADLINE_MS), slow answers must arrive exactly once, the healthy
 * zone must never miss an answer, and the agent's RSS must stay bounded. The scenarios run
 * concurrently (about 10 s in all).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import dnsPacket from 'dns-packet';
import { metricSum, scrape, startAgent, type Agent } from './lib/agent.ts';
import { startNsd, zoneText, type Nsd } from './lib/nsd.ts';
import { freeAddress, sleep } from './lib/net.ts';
import { Prober, tcpQuery, udpQuery, type QueryResult } from './lib/dns.ts';
import { TOY_ANSWER_IP, answerTo, frame, startToy, type Toy } from './lib/toy.ts';

/** forward's deadline is 5 s, checked before each 2 s try: a failing query ends by ~6 s. */
const DEADLINE_MS = 8_000;
/** RSS growth allowed over the whole run (generous: a leak of even 1 KiB per query shows). */
const MAX_RSS_GROWTH_KIB = 96 * 1024;

let nsd: Nsd;
/** Serves hdr.test: the header-only error replies of finding 7. */
let hdrNsd: Nsd;
let metrics: { host: string; port: number };
let agent: Agent;
let dns: { host: string; port: number };
const toys: Record<string, Toy> = {};
let udpProbe: Prober;
let tcpProbe: Prober;
let rssBeforeKiB = 0;

const later = (ms: number, fn: () => void) => setTimeout(fn, ms);
let resets = 0;

before(async () => {
  nsd = await startNsd({ 'ok.test.': zoneText('ok.test', ['www IN A 192.0.2.80']) });
  const behaviours: Record<string, Parameters<typeof startToy>[0]> = {
    killed: { udp: (m, send) => send(answerTo(m)!), tcp: (m, s) => s.write(frame(answerTo(m)!)) },
    blackhole: { udp: () => {} },
    'blackhole-tcp': { tcp: () => {} },
    slow: { udp: (m, send) => later(3_000, () => send(answerTo(m)!)) },
    'slow-tcp': { tcp: (m, s) => later(3_000, () => s.writable && s.write(frame(answerTo(m)!))) },
    garbage: { udp: (_m, send) => send(randomBytes(1 + Math.floor(Math.random() * 600))) },
    wrongid: {
      udp: (m, send) => {
        const right = answerTo(m)!;
        const wrongId = Buffer.from(right);
        wrongId.writeUInt16BE((right.readUInt16BE(0) + 1) & 0xffff, 0);
        const q = dnsPacket.decode(m);
        const wrongQuestion = dnsPacket.encode({
          type: 'response',
          id: q.id,
          questions: [{ name: 'other.wrongid.test', type: 'A' }],
          answers: [{ type: 'A', name: 'other.wrongid.test', data: '192.0.2.66' }],
        });
        const garbage = Buffer.concat([right.subarray(0, 4), randomBytes(40)]);
        send(wrongId);
        send(wrongQuestion);
        send(garbage);
        later(20, () => send(right));
      },
    },
    truncframe: {
      tcp: (m, s) => {
        const f = frame(answerTo(m)!);
        s.write(f.subarray(0, f.length >> 1));
      },
    },
    truncclose: {
      tcp: (m, s) => {
        const f = frame(answerTo(m)!);
        s.end(f.subarray(0, f.length >> 1));
      },
    },
    // The first 2 connections are reset at their 3rd query, with queries still in flight. A query
    // gets 3 tries with one upstream, so with at most 2 resets every query must be answered; with
    // more, a query whose retries land on connections about to be reset may rightly end SERVFAIL
    // (forward writes a burst of retries together, so that happened with 4 resets, once in ~5 runs).
    reset: { tcp: (m, s, nth) => (nth === 3 && resets++ < 2 ? s.resetAndDestroy() : s.write(frame(answerTo(m)!))) },
  };
  for (const [zone, b] of Object.entries(behaviours)) toys[zone] = await startToy(b);
  hdrNsd = await startNsd({ 'hdr.test.': zoneText('hdr.test', ['www IN A 192.0.2.81']) });
  dns = await freeAddress();
  metrics = await freeAddress(dns.host);
  const tcpZones = new Set(['blackhole-tcp', 'slow-tcp', 'truncframe', 'truncclose', 'reset']);
  let corefile = `ok.test:${dns.port} {\n    bind ${dns.host}\n    forward . ${nsd.addr}\n}\n`;
  corefile += `hdr.test:${dns.port} {\n    bind ${dns.host}\n    prometheus ${metrics.host}:${metrics.port}\n    forward . ${hdrNsd.addr}\n}\n`;
  for (const zone of Object.keys(behaviours)) {
    corefile += `${zone}.test:${dns.port} {\n    bind ${dns.host}\n    forward . ${toys[zone]!.addr}${tcpZones.has(zone) ? ' {\n        force_tcp\n    }' : ''}\n}\n`;
  }
  agent = await startAgent(corefile);
  // Warm up the healthy path, then take the memory baseline.
  for (let i = 0; i < 50; i++) await udpQuery(dns.host, dns.port, 'www.ok.test');
  rssBeforeKiB = await agent.rssKiB();
  const okCheck = (p: { rcode: string; answers?: unknown[] }) => p.rcode === 'NOERROR' && (p.answers?.[0] as { data?: string })?.data === '192.0.2.80';
  udpProbe = new Prober(dns.host, dns.port, 'www.ok.test', okCheck, 20, 'udp');
  tcpProbe = new Prober(dns.host, dns.port, 'www.ok.test', okCheck, 20, 'tcp');
});

after(async () => {
  await udpProbe?.stop();
  await tcpProbe?.stop();
  await agent?.stop();
  await Promise.all(Object.values(toys).map((t) => t.close()));
  await nsd?.stop();
  await hdrNsd?.stop();
});

/** Sends n queries for distinct names under zone at once (UDP clients). */
function burst(zone: string, n: number, opts: { lingerMs?: number; proto?: 'udp' | 'tcp' } = {}): Promise<QueryResult[]> {
  return Promise.all(
    Array.from({ length: n }, (_, i) =>
      opts.proto === 'tcp'
        ? tcpQuery(dns.host, dns.port, `q${i}.${zone}.test`, 'A', { timeoutMs: DEADLINE_MS })
        : udpQuery(dns.host, dns.port, `q${i}.${zone}.test`, 'A', { timeoutMs: DEADLINE_MS, lingerMs: opts.lingerMs }),
    ),
  );
}

function rcodes(rs: QueryResult[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of rs) {
    const k = r.packet ? r.packet.rcode : 'NO ANSWER';
    out[k] = (out[k] ?? 0) + 1;
  }
  return out;
}

function allAnsweredIp(rs: QueryResult[]): boolean {
  return rs.every((r) => r.packet?.rcode === 'NOERROR' && (r.packet.answers?.[0] as { data?: string })?.data === TOY_ANSWER_IP);
}

describe('upstream faults, concurrently', { concurrency: true }, () => {
  test('killed upstream: answers while alive, SERVFAIL within the deadline after it dies', async () => {
    const alive = await burst('killed', 10);
    assert.ok(allAnsweredIp(alive), JSON.stringify(rcodes(alive)));
    await toys.killed!.close();
    // Refused tries fail at once, but the kernel rate-limits ICMP port unreachable, so
    // most tries just time out: the deadline is what bounds them.
    const dead = await burst('killed', 50);
    assert.deepEqual(rcodes(dead), { SERVFAIL: 50 });
  });

  for (const zone of ['blackhole', 'blackhole-tcp']) {
    test(`${zone}: every query gets SERVFAIL within the deadline`, async () => {
      const rs = await burst(zone, 50);
      assert.deepEqual(rcodes(rs), { SERVFAIL: 50 });
      assert.ok(toys[zone]!.udpQueries + toys[zone]!.tcpQueries >= 50, 'the upstream received the queries');
    });
  }

  for (const zone of ['slow', 'slow-tcp']) {
    test(`${zone}: an answer after 3 s reaches the client, exactly once`, async () => {
      const rs = await burst(zone, 20, { lingerMs: 4_000 });
      assert.ok(allAnsweredIp(rs), JSON.stringify(rcodes(rs)));
      assert.deepEqual(
        rs.map((r) => r.count),
        new Array(20).fill(1),
        'one answer per query',
      );
      assert.ok(
        rs.every((r) => r.ms >= 2_500),
        'answers come from the slow upstream, not earlier',
      );
    });
  }

  test('garbage replies: ignored; SERVFAIL at the deadline', async () => {
    const rs = await burst('garbage', 20);
    assert.deepEqual(rcodes(rs), { SERVFAIL: 20 });
  });

  test('wrong ID, wrong question and garbage before the right reply: the right one is taken', async () => {
    const rs = await burst('wrongid', 30);
    assert.ok(allAnsweredIp(rs), JSON.stringify(rcodes(rs)));
    assert.deepEqual(
      rs.map((r) => r.count),
      new Array(30).fill(1),
    );
  });

  for (const zone of ['truncframe', 'truncclose']) {
    test(`${zone}: a truncated TCP frame from upstream gives SERVFAIL within the deadline`, async () => {
      const rs = await burst(zone, 20);
      assert.deepEqual(rcodes(rs), { SERVFAIL: 20 });
    });
  }

  test('TCP reset mid-pipeline: the queries on the reset connection are retried and answered', async () => {
    const rs = await burst('reset', 30);
    assert.ok(allAnsweredIp(rs), JSON.stringify(rcodes(rs)));
    assert.ok(toys.reset!.tcpAccepted >= 2, 'connections were reset and redialled');
    const overTcp = await burst('reset', 10, { proto: 'tcp' });
    assert.ok(allAnsweredIp(overTcp), JSON.stringify(rcodes(overTcp)));
  });
});

/** One UDP query of class `qclass` (dns-packet's class names); null without an answer in timeoutMs. */
function classQuery(name: string, qclass: string, timeoutMs: number): Promise<Buffer | null> {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    const id = (Math.random() * 0x10000) & 0xffff;
    const timer = setTimeout(() => done(null), timeoutMs);
    const done = (b: Buffer | null) => {
      clearTimeout(timer);
      s.close();
      resolve(b);
    };
    s.on('error', () => done(null));
    s.on('message', (m) => m.length >= 2 && m.readUInt16BE(0) === id && done(m));
    s.send(
      dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name, type: 'A', class: qclass as 'IN' }] }),
      dns.port,
      dns.host,
    );
  });
}

/** dig with `args`, one try of `timeoutS` seconds. */
function dig(args: string[], timeoutS: number): Promise<string> {
  return new Promise((resolve) => {
    execFile('dig', ['+tries=1', `+time=${timeoutS}`, `@${dns.host}`, '-p', String(dns.port), ...args], { encoding: 'utf8' }, (_e, out, err) =>
      resolve(`${out}${err}`),
    );
  });
}

describe('header-only error replies (NSD: no question section)', () => {
  /** Shorter than forward's 2 s read timeout: an answer within it did not wait for a timer. */
  const PROMPT_MS = 1_500;

  test('class HS: NSD answers REFUSED without a question; the client gets REFUSED with its question at once', async () => {
    const raw = await classQuery('www.hdr.test', 'HS', PROMPT_MS);
    assert.ok(raw !== null, 'an answer within the client timeout');
    const r = dnsPacket.decode(raw) as dnsPacket.DecodedPacket & { rcode: string };
    assert.equal(r.rcode, 'REFUSED');
    assert.deepEqual(
      r.questions?.map((q) => [q.name, q.type, q.class]),
      [['www.hdr.test', 'A', 'HS']],
    );
  });

  test('a query signed with an unknown TSIG key, over TCP: NSD answers NOTAUTH without a question; the client gets NOTAUTH at once', async () => {
    const out = await dig(['+tcp', '-y', `hmac-sha256:nosuchkey:${Buffer.alloc(32).toString('base64')}`, 'www.hdr.test', 'A'], 1);
    assert.match(out, /status: NOTAUTH/, out);
    assert.match(out, /QUERY: 1,/, out);
  });

  test('each reached NSD once (no retries), and NSD answered each without a question', async () => {
    const m = await scrape(metrics.host, metrics.port);
    assert.equal(metricSum(m, 'coredns_forward_requests_total', { to: hdrNsd.addr }), 2);
    assert.equal(metricSum(m, 'coredns_forward_responses_total', { to: hdrNsd.addr, rcode: 'REFUSED' }), 1);
    assert.equal(metricSum(m, 'coredns_forward_responses_total', { to: hdrNsd.addr, rcode: 'NOTAUTH' }), 1);
    // NSD itself: both replies without a question (what the agent accepted).
    const hs = await new Promise<string>((resolve) =>
      execFile('dig', ['+tries=1', '+time=2', `@${hdrNsd.host}`, '-p', String(hdrNsd.port), '-c', 'HS', 'www.hdr.test', 'A'], { encoding: 'utf8' }, (_e, o) =>
        resolve(o),
      ),
    );
    assert.match(hs, /status: REFUSED.*\n.*QUERY: 0,/, hs);
  });
});

test('meanwhile the healthy zone was always answered, and memory stayed bounded', async () => {
  await udpProbe.stop();
  await tcpProbe.stop();
  assert.equal(udpProbe.unanswered + udpProbe.wrong, 0, `UDP: ${udpProbe.summary()}`);
  assert.equal(tcpProbe.unanswered + tcpProbe.wrong, 0, `TCP: ${tcpProbe.summary()}`);
  assert.ok(udpProbe.latencies.length > 50 && tcpProbe.latencies.length > 50, `probes ran: ${udpProbe.summary()} / ${tcpProbe.summary()}`);
  // Give timers (idle sockets, suspect connections) a moment, then measure.
  await sleep(500);
  const rss = await agent.rssKiB();
  assert.ok(agent.alive(), agent.output());
  assert.ok(rss - rssBeforeKiB < MAX_RSS_GROWTH_KIB, `RSS grew from ${rssBeforeKiB} to ${rss} KiB`);
  assert.doesNotMatch(agent.output(), /internal error|Recovered from panic|FATAL/, agent.output());
});
