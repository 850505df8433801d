/**
 * dnstap end to end: the real agent with `dnstap`, NSD as the upstream, Debian's fstrm_capture
 * as the receiver writing a Frame Streams file, decoded by dnstap-ldns. Proves:
 *  - each client query gives CLIENT_QUERY, FORWARDER_QUERY, FORWARDER_RESPONSE, CLIENT_RESPONSE
 *    (in that order) with the client's and the upstream's addresses, ports and protocol (UDP
 *    and TCP), identity/version, and with `full` the wire messages (client's ID, qname);
 *    without `full` no wire message; over a Unix socket and over TCP;
 *  - with `cache` after dnstap (CoreDNS's order), a cache hit gives CLIENT_* only;
 *  - `extra` is expanded per message (read with our own file reader: dnstap-ldns does not print it);
 *  - the receiver killed mid-run: DNS keeps answering promptly, drops are counted, and the
 *    tap reconnects to a new receiver on the same socket;
 *  - no receiver at all: DNS answers, every message is counted dropped;
 *  - a receiver that stops reading: DNS answers promptly through a flood, drops are counted;
 *  - the metrics nodelocaldns_dnstap_{sent,dropped,connects}_total on /metrics.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { dig, rawQuery, startAgent, type AgentProcess } from '../engine/harness.ts';
import { startNsd, type RunningServer } from '../forward/servers.ts';
import { freeAddress, waitUntil } from '../lib/net.ts';
import { scrape, metricSum } from '../fault/lib/agent.ts';
import { haveTools, readExtras, startCapture, startStuckReceiver, type DnstapRecord } from './lib/fstrm.ts';

const skip = haveTools() ? false : 'fstrm_capture / dnstap-ldns not installed (apt-get install fstrm-bin dnstap-ldns)';

/** Sends one UDP query from a socket of our own; resolves with its source port and the reply. */
function udpQuery(
  host: string,
  port: number,
  name: string,
  qtype = 1,
  id = 0x4242,
  timeoutMs = 3000,
): Promise<{ srcPort: number; reply: Buffer | null; ms: number }> {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    const t0 = performance.now();
    let srcPort = 0;
    const done = (reply: Buffer | null): void => {
      clearTimeout(timer);
      s.close();
      resolve({ srcPort, reply, ms: performance.now() - t0 });
    };
    const timer = setTimeout(() => done(null), timeoutMs);
    s.on('message', (m) => done(m));
    s.on('error', () => done(null));
    s.bind(0, '127.0.0.1', () => {
      srcPort = s.address().port;
      s.send(rawQuery(name, qtype, id), port, host);
    });
  });
}

interface Env {
  nsd: RunningServer;
  agent: AgentProcess;
  dns: { host: string; port: number };
  metrics: { host: string; port: number };
}

async function withAgent(dnstapLines: string, fn: (env: Env) => Promise<void>, extra = ''): Promise<void> {
  const nsd = await startNsd();
  const dns = await freeAddress();
  const metrics = await freeAddress();
  const corefile = `.:${dns.port} {
    bind ${dns.host}
    prometheus ${metrics.host}:${metrics.port}
${dnstapLines}
${extra}
    forward . ${nsd.addr}
}
`;
  let agent: AgentProcess | null = null;
  try {
    agent = await startAgent(corefile);
    await fn({ nsd, agent, dns, metrics });
  } finally {
    if (agent !== null) await agent.stop();
    await nsd.stop();
  }
}

function types(rs: DnstapRecord[]): string[] {
  return rs.map((r) => r.type);
}

test('dnstap full over a Unix socket: CQ, FQ, FR, CR per query, UDP and TCP, with addresses and wire messages', { skip, timeout: 120_000 }, async () => {
  const cap = await startCapture('unix');
  try {
    let udpSrc = 0;
    await withAgent(`    dnstap ${cap.socketArg} full {\n      identity nld-test\n      version v-test\n    }`, async ({ nsd, agent, dns }) => {
      const r = await udpQuery(dns.host, dns.port, 'www.example.test', 1, 0x1234);
      assert.ok(r.reply !== null, 'UDP query answered');
      udpSrc = r.srcPort;
      const t = await dig(dns.host, dns.port, ['+tcp', 'www.example.test', 'A']);
      assert.equal(t.status, 'NOERROR');
      assert.equal(t.answer[0]?.data, '192.0.2.80');
      await agent.stop(); // STOP/FINISH: everything is flushed to the receiver
      const recs = await cap.records();
      const www = recs.filter((x) => x.qname === 'www.example.test.');
      assert.equal(www.length, 8, `8 messages for 2 queries, got ${types(recs).join(' ')}`);
      const udp = www.filter((x) => x.socketProtocol === 'UDP');
      const tcp = www.filter((x) => x.socketProtocol === 'TCP');
      assert.deepEqual(types(udp), ['CLIENT_QUERY', 'FORWARDER_QUERY', 'FORWARDER_RESPONSE', 'CLIENT_RESPONSE']);
      assert.deepEqual(types(tcp), ['CLIENT_QUERY', 'FORWARDER_QUERY', 'FORWARDER_RESPONSE', 'CLIENT_RESPONSE']);
      for (const x of www) {
        assert.equal(x.identity, 'nld-test');
        assert.equal(x.version, 'v-test');
        assert.equal(x.socketFamily, 'INET');
        assert.ok(x.queryTime !== '', 'query_time set');
      }
      const [cq, fq, fr, cr] = udp as [DnstapRecord, DnstapRecord, DnstapRecord, DnstapRecord];
      // Client messages: the client's address and port; its own ID in the wire messages.
      assert.equal(cq.queryAddress, '127.0.0.1');
      assert.equal(cq.queryPort, udpSrc);
      assert.equal(cq.id, 0x1234);
      assert.ok(cq.hasQueryMessage && !cq.hasResponseMessage);
      assert.equal(cr.queryAddress, '127.0.0.1');
      assert.equal(cr.queryPort, udpSrc);
      assert.ok(cr.hasResponseMessage && cr.responseTime !== '');
      assert.equal(cr.rcode, 'NOERROR');
      assert.match(cr.text, /192\.0\.2\.80/);
      // Forwarder messages: the upstream's address and port; the client's ID (as CoreDNS taps them).
      for (const f of [fq, fr]) {
        assert.equal(f.responseAddress, nsd.host);
        assert.equal(f.responsePort, nsd.port);
      }
      assert.ok(fq.hasQueryMessage && !fq.hasResponseMessage);
      assert.equal(fq.id, 0x1234);
      assert.ok(fr.hasResponseMessage && fr.responseTime !== '');
      assert.equal(fr.id, 0x1234);
      assert.match(fr.text, /192\.0\.2\.80/);
      const [tcq, tfq] = tcp as [DnstapRecord, DnstapRecord];
      assert.equal(tcq.queryAddress, '127.0.0.1');
      assert.equal(tfq.responsePort, nsd.port);
    });
  } finally {
    await cap.stop();
    cap.cleanup();
  }
});

test('dnstap without full over TCP: no wire messages; cache after dnstap: a hit is tapped as CQ/CR only', { skip, timeout: 120_000 }, async () => {
  const cap = await startCapture('tcp');
  try {
    await withAgent(
      `    dnstap ${cap.socketArg}`,
      async ({ agent, dns, metrics }) => {
        for (let i = 0; i < 2; i++) {
          const r = await udpQuery(dns.host, dns.port, 'www.example.test');
          assert.ok(r.reply !== null);
        }
        await waitUntil(
          async () => metricSum(await scrape(metrics.host, metrics.port), 'nodelocaldns_dnstap_sent_total', { socket: cap.socketArg }) >= 6,
          'sent counter',
          10_000,
        );
        const fams = await scrape(metrics.host, metrics.port);
        assert.equal(metricSum(fams, 'nodelocaldns_dnstap_dropped_total', { socket: cap.socketArg }), 0);
        assert.ok(metricSum(fams, 'nodelocaldns_dnstap_connects_total', { socket: cap.socketArg }) >= 1);
        await agent.stop();
        const recs = await cap.records();
        // No wire messages, so records carry no qname: 2 queries -> CQ FQ FR CR, then CQ CR (hit).
        assert.deepEqual(types(recs), ['CLIENT_QUERY', 'FORWARDER_QUERY', 'FORWARDER_RESPONSE', 'CLIENT_RESPONSE', 'CLIENT_QUERY', 'CLIENT_RESPONSE']);
        for (const x of recs) assert.ok(!x.hasQueryMessage && !x.hasResponseMessage, 'no wire message without full');
        assert.equal(recs[0]!.queryAddress, '127.0.0.1');
      },
      '    cache 30',
    );
  } finally {
    await cap.stop();
    cap.cleanup();
  }
});

test('dnstap extra: request placeholders and metadata labels expanded per message', { skip, timeout: 120_000 }, async () => {
  const cap = await startCapture('unix');
  try {
    await withAgent(
      `    dnstap ${cap.socketArg} {\n      extra "q={type}/{name}/{proto} md={/no/such/label}"\n    }`,
      async ({ agent, dns }) => {
        assert.ok((await udpQuery(dns.host, dns.port, 'WWW.example.test', 16)).reply !== null);
        await agent.stop();
        await cap.stop();
        const ex = readExtras(cap.file);
        assert.deepEqual(
          ex.map((e) => e.type),
          [5, 7, 8, 6],
        );
        for (const e of ex) assert.equal(e.extra, 'q=TXT/www.example.test./udp md=-');
      },
      '    metadata',
    );
  } finally {
    cap.cleanup();
  }
});

test('dnstap: receiver killed mid-run -> DNS keeps answering promptly, drops counted, reconnects to a new receiver', { skip, timeout: 120_000 }, async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'nld-dnstap-kill-'));
  const cap = await startCapture('unix', { dir });
  let cap2: Awaited<ReturnType<typeof startCapture>> | null = null;
  try {
    await withAgent(`    dnstap ${cap.socketArg} full`, async ({ dns, metrics }) => {
      for (let i = 0; i < 20; i++) assert.ok((await udpQuery(dns.host, dns.port, 'www.example.test')).reply !== null);
      await cap.kill();
      const times: number[] = [];
      for (let i = 0; i < 200; i++) {
        const r = await udpQuery(dns.host, dns.port, `n${i}.example.test`);
        assert.ok(r.reply !== null, `query ${i} answered after the receiver died`);
        times.push(r.ms);
      }
      times.sort((a, b) => a - b);
      assert.ok(times[189]! < 250, `p95 ${times[189]} ms`);
      const fams = await scrape(metrics.host, metrics.port);
      assert.ok(metricSum(fams, 'nodelocaldns_dnstap_dropped_total', { socket: cap.socketArg }) > 0, 'drops counted');
      // A new receiver on the same path: the tap reconnects (backoff at most 10 s).
      cap2 = await startCapture('unix', { dir });
      await waitUntil(
        async () => metricSum(await scrape(metrics.host, metrics.port), 'nodelocaldns_dnstap_connects_total', { socket: cap.socketArg }) >= 2,
        'reconnect',
        30_000,
      );
      const sentBefore = metricSum(await scrape(metrics.host, metrics.port), 'nodelocaldns_dnstap_sent_total', { socket: cap.socketArg });
      const r = await udpQuery(dns.host, dns.port, 'after.example.test');
      assert.ok(r.reply !== null);
      await waitUntil(
        async () => metricSum(await scrape(metrics.host, metrics.port), 'nodelocaldns_dnstap_sent_total', { socket: cap.socketArg }) >= sentBefore + 4,
        'sent after reconnect',
        10_000,
      );
    });
    const recs = await cap2!.records();
    assert.ok(
      recs.some((x) => x.qname === 'after.example.test.' && x.type === 'CLIENT_QUERY'),
      `the new receiver got the query after the reconnect: ${types(recs).join(' ')}`,
    );
  } finally {
    await cap.stop();
    if (cap2 !== null) await (cap2 as Awaited<ReturnType<typeof startCapture>>).stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('dnstap: no receiver ever -> DNS answers, every message dropped and counted', { skip, timeout: 120_000 }, async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'nld-dnstap-none-'));
  const sock = `unix://${path.join(dir, 'nobody.sock')}`;
  try {
    await withAgent(`    dnstap ${sock} full`, async ({ agent, dns, metrics }) => {
      for (let i = 0; i < 50; i++) {
        const r = await udpQuery(dns.host, dns.port, `x${i}.example.test`);
        assert.ok(r.reply !== null);
        assert.ok(r.ms < 500, `answered in ${r.ms} ms`);
      }
      const fams = await scrape(metrics.host, metrics.port);
      assert.equal(metricSum(fams, 'nodelocaldns_dnstap_sent_total', { socket: sock }), 0);
      assert.equal(metricSum(fams, 'nodelocaldns_dnstap_connects_total', { socket: sock }), 0);
      // 4 messages per query (CQ FQ FR CR), none delivered.
      assert.equal(metricSum(fams, 'nodelocaldns_dnstap_dropped_total', { socket: sock }), 200);
      assert.match(agent.output(), /\[ERROR\] plugin\/dnstap: No connection to dnstap endpoint/);
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('dnstap: a receiver that stops reading -> a query flood is answered promptly, drops counted', { skip, timeout: 120_000 }, async () => {
  const stuck = await startStuckReceiver();
  try {
    await withAgent(`    dnstap ${stuck.socketArg} full`, async ({ dns, metrics }) => {
      await waitUntil(() => stuck.handshakes() >= 1, 'handshake', 10_000);
      // 12,000 queries in bursts of 200: 48,000 messages, more than the queue and socket buffers hold.
      let answered = 0;
      const t0 = performance.now();
      for (let b = 0; b < 60; b++) {
        const rs = await Promise.all(Array.from({ length: 200 }, (_, i) => udpQuery(dns.host, dns.port, `f${b}-${i}.example.test`, 1, i + 1, 5000)));
        answered += rs.filter((r) => r.reply !== null).length;
      }
      const elapsed = performance.now() - t0;
      assert.equal(answered, 12_000);
      const probe = await udpQuery(dns.host, dns.port, 'www.example.test');
      assert.ok(probe.reply !== null && probe.ms < 250, `probe answered in ${probe.ms} ms`);
      const fams = await scrape(metrics.host, metrics.port);
      const dropped = metricSum(fams, 'nodelocaldns_dnstap_dropped_total', { socket: stuck.socketArg });
      assert.ok(dropped > 0, `dropped ${dropped}`);
      assert.ok(elapsed < 60_000, `flood took ${elapsed} ms`);
    });
  } finally {
    await stuck.stop();
  }
});

test('dnstap across a reload (SIGUSR1): the old connection ends with STOP, the new instance connects, counters survive', {
  skip,
  timeout: 120_000,
}, async () => {
  const cap = await startCapture('unix');
  try {
    await withAgent(`    dnstap ${cap.socketArg}`, async ({ agent, dns, metrics }) => {
      assert.ok((await udpQuery(dns.host, dns.port, 'www.example.test')).reply !== null);
      const sock = cap.socketArg;
      await waitUntil(
        async () => metricSum(await scrape(metrics.host, metrics.port), 'nodelocaldns_dnstap_sent_total', { socket: sock }) >= 4,
        'sent before reload',
        10_000,
      );
      const connects = metricSum(await scrape(metrics.host, metrics.port), 'nodelocaldns_dnstap_connects_total', { socket: sock });
      agent.proc.kill('SIGUSR1');
      await waitUntil(
        async () => metricSum(await scrape(metrics.host, metrics.port), 'nodelocaldns_dnstap_connects_total', { socket: sock }) > connects,
        'the reloaded instance connects',
        20_000,
      );
      assert.ok((await udpQuery(dns.host, dns.port, 'after.example.test')).reply !== null);
      await waitUntil(
        async () => metricSum(await scrape(metrics.host, metrics.port), 'nodelocaldns_dnstap_sent_total', { socket: sock }) >= 8,
        'sent after reload (old counts kept)',
        10_000,
      );
      assert.equal(metricSum(await scrape(metrics.host, metrics.port), 'nodelocaldns_dnstap_dropped_total', { socket: sock }), 0);
      await agent.stop();
      const recs = await cap.records();
      assert.deepEqual(types(recs), [
        'CLIENT_QUERY',
        'FORWARDER_QUERY',
        'FORWARDER_RESPONSE',
        'CLIENT_RESPONSE',
        'CLIENT_QUERY',
        'FORWARDER_QUERY',
        'FORWARDER_RESPONSE',
        'CLIENT_RESPONSE',
      ]);
    });
  } finally {
    await cap.stop();
    cap.cleanup();
  }
});
