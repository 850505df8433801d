/**
 * Issue 12 finding 5: a scrape storm against the real process. Eight clients scrape /metrics
 * back to back for 8 s over keep-alive connections, half of them asking for gzip, while a
 * DNS client keeps querying. Rendered per scrape, this took the serving thread from DNS and
 * grew RSS by ~50 MiB per 10k scrapes (~110 MiB with gzip).
 *
 * Renders are counted by the agent (nodelocaldns_metrics_renders_total, which every body
 * carries): they stay within one per render interval of the storm's duration, and each render
 * answers several scrapes with the same bytes (gzip included); RSS grows by little; DNS is
 * answered throughout. No timing is asserted.
 */
import { SHIPPED_NODE_FLAGS } from './lib/netns-agent.ts';
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { gunzipSync } from 'node:zlib';
import { startAgent, httpGet, type Agent } from './lib/agent.ts';
import { startNsd, zoneText, type Nsd } from './lib/nsd.ts';
import { freeAddress, sleep } from './lib/net.ts';
import { Prober, udpQuery } from './lib/dns.ts';
import { SCRAPE_RENDER_INTERVAL_MS } from '../../src/metrics/hub.ts';

const CLIENTS = 8;
/** How long the storm lasts (a load window, not an assertion). */
const STORM_MS = 8_000;
/** RSS growth allowed over the storm. */
const MAX_RSS_GROWTH_KIB = 16 * 1024;

let nsd: Nsd;
let agent: Agent;
let dns: { host: string; port: number };
let metricsPort: number;

before(async () => {
  nsd = await startNsd({ 'ok.test.': zoneText('ok.test', ['www IN A 192.0.2.80']) });
  dns = await freeAddress();
  metricsPort = (await freeAddress(dns.host)).port;
  // The image runs Node.js with its generations capped (`npm start` flags = Dockerfile NODE_OPTIONS): so does this run.
  const savedNodeOptions = process.env.NODE_OPTIONS;
  process.env.NODE_OPTIONS = SHIPPED_NODE_FLAGS.join(' ');
  try {
    agent = await startAgent(`ok.test:${dns.port} {
    bind ${dns.host}
    cache 30
    forward . ${nsd.addr}
    prometheus ${dns.host}:${metricsPort}
}
`);
  } finally {
    if (savedNodeOptions === undefined) delete process.env.NODE_OPTIONS;
    else process.env.NODE_OPTIONS = savedNodeOptions;
  }
});

after(async () => {
  await agent?.stop();
  await nsd?.stop();
});

/** The value of nodelocaldns_metrics_renders_total in an exposition (NaN without it). */
function rendersIn(text: string): number {
  const m = /^nodelocaldns_metrics_renders_total (\d+)$/m.exec(text);
  return m ? Number(m[1]) : NaN;
}

/** One GET /metrics on `agent` (a keep-alive agent): the body, decompressed when gzip was asked. */
function scrapeOnce(httpAgent: http.Agent, gzip: boolean): Promise<{ text: string; gzipped: boolean }> {
  return new Promise((resolve, reject) => {
    const req = http.get(
      { host: dns.host, port: metricsPort, path: '/metrics', agent: httpAgent, timeout: 10_000, headers: gzip ? { 'accept-encoding': 'gzip' } : {} },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          if (res.statusCode !== 200) return reject(new Error(`/metrics answered ${res.statusCode}`));
          const raw = Buffer.concat(chunks);
          const gzipped = res.headers['content-encoding'] === 'gzip';
          resolve({ text: (gzipped ? gunzipSync(raw) : raw).toString('utf8'), gzipped });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('scrape timed out')));
    req.on('error', reject);
  });
}

test('a scrape storm: renders bounded by the interval and shared, RSS bounded, DNS answered', { timeout: 120_000 }, async (t) => {
  const ok = (p: { rcode: string; answers?: unknown[] }) => p.rcode === 'NOERROR' && (p.answers?.[0] as { data?: string })?.data === '192.0.2.80';
  assert.ok(ok((await udpQuery(dns.host, dns.port, 'www.ok.test')).packet!));
  // prom-client loads on the first render (~14 MiB); measure from after it.
  await httpGet(dns.host, metricsPort, '/metrics');
  await sleep(1_500);
  const first = await httpGet(dns.host, metricsPort, '/metrics');
  const rendersBefore = rendersIn(first.body);
  assert.ok(rendersBefore >= 1, `the agent counts its renders (nodelocaldns_metrics_renders_total): ${rendersBefore}`);
  const rssBefore = await agent.rssKiB();

  const probe = new Prober(dns.host, dns.port, 'www.ok.test', ok, 20, 'udp', 3_000);
  const bodies = new Map<number, Set<string>>();
  let scrapes = 0;
  let gzipped = 0;
  const t0 = performance.now();
  const end = t0 + STORM_MS;
  try {
    await Promise.all(
      Array.from({ length: CLIENTS }, async (_, i) => {
        const httpAgent = new http.Agent({ keepAlive: true, maxSockets: 1 });
        try {
          while (performance.now() < end) {
            const r = await scrapeOnce(httpAgent, i % 2 === 0);
            scrapes++;
            if (r.gzipped) gzipped++;
            const n = rendersIn(r.text);
            let set = bodies.get(n);
            if (set === undefined) bodies.set(n, (set = new Set()));
            set.add(r.text);
          }
        } finally {
          httpAgent.destroy();
        }
      }),
    );
  } finally {
    await probe.stop();
  }
  const elapsedMs = performance.now() - t0;
  const rssAfter = await agent.rssKiB();
  const rendersAfter = rendersIn((await httpGet(dns.host, metricsPort, '/metrics')).body);
  const renders = rendersAfter - rendersBefore - 1; // the last scrape's own render left out

  t.diagnostic(
    `${scrapes} scrapes (${gzipped} gzip), ${renders} renders in ${elapsedMs.toFixed(0)} ms; RSS ${rssBefore} -> ${rssAfter} KiB; DNS ${probe.summary()}`,
  );
  assert.ok(agent.alive(), agent.output().slice(-2000));
  assert.ok(scrapes >= CLIENTS && gzipped > 0, `${scrapes} scrapes, ${gzipped} gzipped`);
  // At most one render per interval (plus the one starting the storm and one in flight at its end).
  const bound = Math.ceil(elapsedMs / SCRAPE_RENDER_INTERVAL_MS) + 2;
  assert.ok(renders <= bound, `${renders} renders for ${scrapes} scrapes over ${elapsedMs.toFixed(0)} ms (at most ${bound})`);
  assert.ok(renders * 4 <= scrapes, `renders shared by concurrent scrapes: ${renders} renders, ${scrapes} scrapes`);
  // Every scrape answered by one render got the same bytes, plain or gzip.
  for (const [n, set] of bodies) assert.equal(set.size, 1, `render ${n}: ${set.size} different bodies`);
  assert.ok(rssAfter - rssBefore <= MAX_RSS_GROWTH_KIB, `RSS ${rssBefore} -> ${rssAfter} KiB over ${scrapes} scrapes`);
  assert.equal(probe.unanswered + probe.wrong, 0, `DNS during the storm: ${probe.summary()}`);
});

test('a scrape right after an event reflects it (a render never predates its request)', async () => {
  const count = async () => {
    const text = (await httpGet(dns.host, metricsPort, '/metrics')).body;
    const m = /^coredns_dns_requests_total\{[^}]*zone="ok\.test\."[^}]*\} (\d+)$/m.exec(text);
    return m ? Number(m[1]) : 0;
  };
  const before = await count();
  for (let i = 1; i <= 3; i++) {
    assert.ok((await udpQuery(dns.host, dns.port, 'www.ok.test')).packet !== null);
    assert.equal(await count(), before + i, `scrape ${i} right after query ${i}`);
  }
});
