/**
 * Misbehaving TCP clients, while well-behaved UDP and TCP clients keep querying:
 *  - slowloris: hundreds of connections that send nothing, half a frame, or one byte of the
 *    length prefix, then wait. Other clients are still served; the idle ones are closed by
 *    the server's idle timeout (10 s, RFC 7766 §6.2.3).
 *  - 64 KiB frames: garbage frames of the largest length, and valid queries padded to it
 *    (EDNS padding, RFC 7830), some sent in small pieces: each is answered or the connection
 *    closed; nothing crashes; memory stays bounded.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import dnsPacket from 'dns-packet';
import { startAgent, type Agent } from './lib/agent.ts';
import { startNsd, zoneText, type Nsd } from './lib/nsd.ts';
import { freeAddress, sleep, waitUntil } from './lib/net.ts';
import { Prober, encodeQuery } from './lib/dns.ts';

/** The TCP listener's idle timeout (src/server/tcp.ts DEFAULT_TCP_LIMITS). */
const IDLE_TIMEOUT_MS = 10_000;
const MAX_RSS_GROWTH_KIB = 128 * 1024;

let nsd: Nsd;
let agent: Agent;
let dns: { host: string; port: number };
let udpProbe: Prober;
let tcpProbe: Prober;
let rssBeforeKiB = 0;

before(async () => {
  nsd = await startNsd({ 'ok.test.': zoneText('ok.test', ['www IN A 192.0.2.80']) });
  dns = await freeAddress();
  agent = await startAgent(`ok.test:${dns.port} {\n    bind ${dns.host}\n    forward . ${nsd.addr}\n}\n`);
  rssBeforeKiB = await agent.rssKiB();
  const ok = (p: { rcode: string; answers?: unknown[] }) => p.rcode === 'NOERROR' && (p.answers?.[0] as { data?: string })?.data === '192.0.2.80';
  udpProbe = new Prober(dns.host, dns.port, 'www.ok.test', ok, 25, 'udp');
  tcpProbe = new Prober(dns.host, dns.port, 'www.ok.test', ok, 25, 'tcp');
});

after(async () => {
  await udpProbe?.stop();
  await tcpProbe?.stop();
  await agent?.stop();
  await nsd?.stop();
});

interface Conn {
  sock: net.Socket;
  closedAt: number;
  received: Buffer;
}

function connect(onConnect: (s: net.Socket) => void, localAddress?: string): Promise<Conn> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ port: dns.port, host: dns.host, localAddress });
    const c: Conn = { sock, closedAt: -1, received: Buffer.alloc(0) };
    sock.on('data', (d) => (c.received = Buffer.concat([c.received, d])));
    sock.on('close', () => (c.closedAt = performance.now()));
    sock.on('error', (err) => {
      if (c.closedAt < 0 && !sock.connecting) return;
      reject(err);
    });
    sock.once('connect', () => {
      onConnect(sock);
      resolve(c);
    });
  });
}

/** Response frames in a TCP byte stream (complete ones only). */
function frames(buf: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let p = 0;
  while (p + 2 <= buf.length && p + 2 + buf.readUInt16BE(p) <= buf.length) {
    out.push(buf.subarray(p + 2, p + 2 + buf.readUInt16BE(p)));
    p += 2 + buf.readUInt16BE(p);
  }
  return out;
}

/** A query for name padded with an EDNS PADDING option (RFC 7830) to exactly `size` bytes. */
function paddedQuery(name: string, id: number, size: number): Buffer {
  const base = dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name, type: 'A' }] });
  const padLen = size - base.length - 11 - 4;
  const opt = Buffer.alloc(11 + 4 + padLen);
  opt.writeUInt16BE(41, 1); // TYPE OPT, owner root
  opt.writeUInt16BE(1232, 3); // UDP payload size
  opt.writeUInt16BE(4 + padLen, 9); // RDLENGTH
  opt.writeUInt16BE(12, 11); // OPTION-CODE PADDING
  opt.writeUInt16BE(padLen, 13);
  const msg = Buffer.concat([base, opt]);
  msg.writeUInt16BE(1, 10); // ARCOUNT
  return msg;
}

// Both wait for the server's idle timeout: they run side by side.
describe('misbehaving TCP clients', { concurrency: true }, () => {
  test('slowloris: idle, half-frame and half-prefix connections are closed by the idle timeout; others are served', async () => {
    const t0 = performance.now();
    const conns: Conn[] = [];
    const q = encodeQuery('www.ok.test', 'A', 7);
    const full = Buffer.concat([Buffer.from([q.length >> 8, q.length & 0xff]), q]);
    for (let i = 0; i < 450; i++) {
      const kind = i % 3;
      conns.push(
        await connect(
          (s) => {
            if (kind === 1) s.write(full.subarray(0, 2 + (q.length >> 1)));
            else if (kind === 2) s.write(full.subarray(0, 1));
          },
          // From four addresses: one client's connections over its share (256) would be evicted (tcp-share.test.ts).
          `127.0.1.${1 + (i % 4)}`,
        ),
      );
    }
    // The slow ones hold 450 connections; the probes keep going through.
    await sleep(2_000);
    assert.ok(
      conns.every((c) => c.closedAt < 0),
      'nothing is closed before the idle timeout',
    );
    const servedWhileHeld = tcpProbe.latencies.length;
    await waitUntil(() => conns.every((c) => c.closedAt >= 0), 'the server to close every idle connection', IDLE_TIMEOUT_MS + 6_000);
    const closedAfter = Math.min(...conns.map((c) => c.closedAt)) - t0;
    assert.ok(closedAfter >= IDLE_TIMEOUT_MS - 1_000, `closed by the idle timeout, not earlier (${closedAfter.toFixed(0)} ms)`);
    assert.ok(
      conns.every((c) => c.received.length === 0),
      'no answer to a query never completed',
    );
    assert.ok(tcpProbe.latencies.length > servedWhileHeld, 'TCP clients were served while the slow ones were held');
  });

  test('64 KiB frames: garbage and padded queries, whole or in pieces, are answered or closed; the agent survives', async () => {
    const big = 65_535;
    const conns: { c: Conn; expect: 'answer' | 'either' }[] = [];
    for (let i = 0; i < 40; i++) {
      const kind = i % 4;
      const c = await connect(() => {});
      const prefix = Buffer.from([big >> 8, big & 0xff]);
      if (kind === 0) {
        // Random bytes with QR clear and opcode QUERY: parsed as a (bad) query.
        const body = randomBytes(big);
        body[2] = body[2]! & 0x07;
        c.sock.write(Buffer.concat([prefix, body]));
        conns.push({ c, expect: 'either' });
      } else if (kind === 1) {
        c.sock.write(Buffer.concat([prefix, randomBytes(big)]));
        conns.push({ c, expect: 'either' });
      } else {
        const msg = paddedQuery('www.ok.test', 1000 + i, big);
        const f = Buffer.concat([prefix, msg]);
        if (kind === 2) c.sock.write(f);
        else {
          // In 1 KiB pieces.
          for (let p = 0; p < f.length; p += 1024) {
            c.sock.write(f.subarray(p, p + 1024));
            await sleep(1);
          }
        }
        conns.push({ c, expect: 'answer' });
      }
    }
    await waitUntil(
      () => conns.every(({ c }) => c.closedAt >= 0 || frames(c.received).length > 0),
      'every big frame to be answered or its connection closed',
      IDLE_TIMEOUT_MS + 6_000,
    );
    for (const { c, expect } of conns) {
      const got = frames(c.received);
      if (expect === 'answer') {
        // A valid query: the client gets a well-formed response to it (the upstream's answer, or SERVFAIL).
        assert.equal(got.length, 1, 'one response to the padded query');
        const r = dnsPacket.decode(got[0]!) as dnsPacket.DecodedPacket & { rcode: string };
        assert.equal(r.questions?.[0]?.name, 'www.ok.test');
        assert.ok(['NOERROR', 'SERVFAIL', 'FORMERR'].includes(r.rcode), r.rcode);
      }
      c.sock.destroy();
    }
    assert.ok(agent.alive(), agent.output());
  });
});

test('the well-behaved clients never missed an answer; memory stayed bounded', async () => {
  await udpProbe.stop();
  await tcpProbe.stop();
  assert.equal(udpProbe.unanswered + udpProbe.wrong, 0, `UDP: ${udpProbe.summary()}`);
  assert.equal(tcpProbe.unanswered + tcpProbe.wrong, 0, `TCP: ${tcpProbe.summary()}`);
  const rss = await agent.rssKiB();
  assert.ok(rss - rssBeforeKiB < MAX_RSS_GROWTH_KIB, `RSS grew from ${rssBeforeKiB} to ${rss} KiB`);
  assert.doesNotMatch(agent.output(), /internal error|Recovered from panic|FATAL/);
});
