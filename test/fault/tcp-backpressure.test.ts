/**
 * Issue 12 finding 2: a TCP client that pipelines queries for a large cached answer and never
 * reads. Before the fix every reply was queued in the process (10,000 x 11 kB: RSS +230 MB,
 * OOM under the manifests' 256 MiB limit) and kept after the client left. Now reading pauses
 * once a connection has `unsentHighWaterBytes` unsent, the connection is closed when the
 * client makes no progress for the idle timeout, and the memory stays bounded meanwhile.
 *
 * The bound: one connection may hold maxUnsentBytesPerConnection (256 KiB) + a paused read
 * (~68 KiB) + its unparsed queries (one 64 KiB read); with GC slack for the replies written
 * before the pause, RSS may grow by at most MAX_RSS_GROWTH_KIB (a third of the 48 MiB the
 * memory budget gives the whole TCP listener), and must be back within MAX_RSS_AFTER_KIB of
 * the baseline once the client is gone: on loopback the kernel takes up to tcp_wmem's 4 MiB
 * of replies before reading pauses, and the memory the replies were built in may stay with
 * malloc; the rest is the probes' and a scrape's own cost.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { execFileSync } from 'node:child_process';
import { startAgent, scrape, metricSum, type Agent } from './lib/agent.ts';
import { startNsd, zoneText, type Nsd } from './lib/nsd.ts';
import { freeAddress, sleep, waitUntil } from './lib/net.ts';
import { encodeQuery, tcpQuery, udpQuery } from './lib/dns.ts';

const MAX_RSS_GROWTH_KIB = 16 * 1024;
const MAX_RSS_AFTER_KIB = 10 * 1024;
const QUERIES = 10_000;
/** The listener's idle timeout (src/server/tcp.ts DEFAULT_TCP_LIMITS): how long a non-reading client is kept. */
const IDLE_TIMEOUT_MS = 10_000;

let nsd: Nsd;
let agent: Agent;
let dns: { host: string; port: number };
let metrics: { host: string; port: number };

/** 45 TXT records of ~240 bytes: an ~11 kB answer (TCP only). */
function bigRecords(): string[] {
  const out: string[] = [];
  for (let i = 0; i < 45; i++) out.push(`big IN TXT "${String(i).padStart(3, '0')}${'x'.repeat(230)}"`);
  return out;
}

before(async () => {
  nsd = await startNsd({ 'big.test.': zoneText('big.test', [...bigRecords(), 'www IN A 192.0.2.80']) });
  dns = await freeAddress();
  metrics = await freeAddress(dns.host);
  agent = await startAgent(`big.test:${dns.port} {
    bind ${dns.host}
    cache 300
    forward . ${nsd.addr}
    prometheus ${metrics.host}:${metrics.port}
}
`);
});

after(async () => {
  await agent?.stop();
  await nsd?.stop();
});

/** Complete response frames at the start of a TCP byte stream. */
function countFrames(buf: Buffer): number {
  let n = 0;
  let p = 0;
  while (p + 2 <= buf.length && p + 2 + buf.readUInt16BE(p) <= buf.length) {
    p += 2 + buf.readUInt16BE(p);
    n++;
  }
  return n;
}

/** Well-behaved clients beside the hostile one: TCP and UDP queries; `answered` of `asked`. */
class Others {
  asked = 0;
  answered = 0;

  async round(): Promise<void> {
    const [t, u] = await Promise.all([
      tcpQuery(dns.host, dns.port, 'www.big.test', 'A', { timeoutMs: 3_000 }),
      udpQuery(dns.host, dns.port, 'big.big.test', 'TXT', { timeoutMs: 3_000 }),
    ]);
    this.asked += 2;
    if (t.packet?.rcode === 'NOERROR' && t.packet.answers?.length === 1) this.answered++;
    if (u.packet?.rcode === 'NOERROR') this.answered++;
  }
}

/**
 * Whether the agent still has the connection from `client` (its end, as `ss` lists it): a look
 * from outside, so watching costs the agent nothing (a scrape would allocate in it).
 */
function serverHolds(client: net.Socket): boolean {
  const out = execFileSync('ss', ['-Htn', 'state', 'all', `( sport = :${dns.port} and dport = :${client.localPort} )`], { encoding: 'utf8' });
  return out.split('\n').some((l) => l.includes(`${client.localAddress}:${client.localPort}`) && !/TIME-WAIT|CLOSE|LAST-ACK|FIN-WAIT/i.test(l));
}

test('a client pipelining 10,000 queries for a cached 11 kB answer and never reading: paused, then closed; memory bounded and returned; others served', {
  timeout: 120_000,
}, async (t) => {
  // Cache the answer.
  const first = await tcpQuery(dns.host, dns.port, 'big.big.test', 'TXT');
  assert.equal(first.packet?.answers?.length, 45, 'the big answer over TCP');
  assert.ok(first.raw!.length > 11_000, `answer of ${first.raw!.length} bytes`);
  // The same probing as below, and a scrape, before the baseline (so their own cost is in it).
  await scrape(metrics.host, metrics.port);
  const warm = new Others();
  for (let i = 0; i < 15; i++) {
    await warm.round();
    await sleep(200);
  }
  const baseKiB = await agent.rssKiB();

  // The hostile client: connects, sends everything, never reads.
  const sock = net.connect(dns.port, dns.host);
  sock.pause();
  let received = Buffer.alloc(0);
  let closed = false;
  sock.on('data', (d: Buffer) => (received = Buffer.concat([received, d])));
  sock.on('error', () => {});
  sock.on('close', () => (closed = true));
  await new Promise<void>((r, j) => {
    sock.once('connect', () => r());
    sock.once('error', j);
  });
  const q = encodeQuery('big.big.test', 'TXT', 0x4242);
  const frame = Buffer.concat([Buffer.from([q.length >> 8, q.length & 0xff]), q]);
  sock.write(Buffer.concat(Array.from({ length: QUERIES }, () => frame)));

  // Until the server gives up on it: sample RSS, check other clients are served.
  let peakKiB = baseKiB;
  const others = new Others();
  const end = performance.now() + IDLE_TIMEOUT_MS + 20_000;
  while (performance.now() < end && serverHolds(sock)) {
    peakKiB = Math.max(peakKiB, await agent.rssKiB());
    assert.ok(peakKiB - baseKiB < MAX_RSS_GROWTH_KIB, `RSS grew from ${baseKiB} to ${peakKiB} KiB`);
    assert.ok(agent.alive(), `agent exited: ${agent.output()}`);
    await others.round();
    await sleep(200);
  }
  peakKiB = Math.max(peakKiB, await agent.rssKiB());
  assert.ok(peakKiB - baseKiB < MAX_RSS_GROWTH_KIB, `RSS grew from ${baseKiB} to ${peakKiB} KiB`);
  assert.ok(!serverHolds(sock), 'the server closed the non-reading connection');
  const fams = await scrape(metrics.host, metrics.port);
  assert.equal(metricSum(fams, 'nodelocaldns_tcp_connections_closed_total', { reason: 'write_stall' }), 1, 'counted as a write stall');
  assert.ok(metricSum(fams, 'nodelocaldns_tcp_read_pauses_total', { reason: 'unsent' }) >= 1, 'reading paused on unsent replies');
  assert.equal(others.answered, others.asked, `other clients: ${others.answered} of ${others.asked} answered`);

  // The client reads now: it gets what was sent before the pause, then the close.
  sock.resume();
  await waitUntil(() => closed, 'the client to see the connection closed', 20_000);
  const got = countFrames(received);
  assert.ok(got < QUERIES / 2, `${got} replies reached the client before the pause, not all ${QUERIES}`);

  // Memory is back near the baseline once the client is gone.
  let afterKiB = await agent.rssKiB();
  for (let i = 0; i < 50 && afterKiB - baseKiB >= MAX_RSS_AFTER_KIB; i++) {
    await sleep(100);
    afterKiB = await agent.rssKiB();
  }
  assert.ok(afterKiB - baseKiB < MAX_RSS_AFTER_KIB, `RSS ${afterKiB} KiB after the client left, baseline ${baseKiB} KiB (peak ${peakKiB} KiB)`);
  t.diagnostic(
    `RSS: baseline ${baseKiB} KiB, peak ${peakKiB} KiB, after ${afterKiB} KiB; ${got} replies reached the client; others ${others.answered}/${others.asked}`,
  );
  const last = await scrape(metrics.host, metrics.port);
  assert.equal(metricSum(last, 'nodelocaldns_tcp_connections'), 0, 'no connection left open');
  assert.equal(metricSum(last, 'nodelocaldns_tcp_buffered_bytes'), 0, 'nothing buffered');
  assert.ok(agent.alive());
});
