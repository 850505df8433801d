/**
 * Serve stale by default for the cluster zones (RFC 8767), end to end: the agent caches
 * cluster names from a real upstream (NSD), the upstream dies, the entries expire, and the
 * names still resolve, with TTL 30, counted in coredns_cache_served_stale_total. A zone that
 * is not a cluster zone gets SERVFAIL as before. Then the upstream's address is blackholed
 * (accepts, never answers): the stale answer comes from the 1.8 s client response timer,
 * well before forward's own 5-6 s deadline.
 *
 * The agent runs with its default worker threads; each has its own cache, so names are
 * cached through many source ports first (see warm()).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import net from 'node:net';
import { startAgent, scrape, metricSum, type Agent } from './lib/agent.ts';
import { startNsd, zoneText, type Nsd } from './lib/nsd.ts';
import { freeAddress, sleep } from './lib/net.ts';
import { udpQuery, tcpQuery } from './lib/dns.ts';

let nsd: Nsd;
let agent: Agent;
let dns: { host: string; port: number };
let metrics: { host: string; port: number };
const closers: (() => void)[] = [];

before(async () => {
  nsd = await startNsd({
    // TTL 1: the cache keeps it for its 5 s minimum.
    'cluster.local.': zoneText('cluster.local', ['api.default.svc 1 IN A 192.0.2.11', 'db.default.svc 1 IN A 192.0.2.12']),
    'example.test.': zoneText('example.test', ['www 1 IN A 192.0.2.80']),
  });
  dns = await freeAddress();
  metrics = await freeAddress(dns.host);
  agent = await startAgent(`cluster.local:${dns.port} {
    errors
    bind ${dns.host}
    cache {
        success 9984 30
        denial 9984 5
    }
    forward . ${nsd.addr} {
        force_tcp
    }
    prometheus ${metrics.host}:${metrics.port}
}
example.test:${dns.port} {
    errors
    bind ${dns.host}
    cache 30
    forward . ${nsd.addr}
    prometheus ${metrics.host}:${metrics.port}
}
`);
});

after(async () => {
  for (const c of closers) c();
  await agent?.stop();
  await nsd?.stop();
});

async function servedStale(): Promise<number> {
  return metricSum(await scrape(metrics.host, metrics.port), 'coredns_cache_served_stale_total', { zones: 'cluster.local.' });
}

/**
 * Caches `name` in every serving worker: each worker thread has its own cache and the kernel
 * spreads queries over the workers by source port (SO_REUSEPORT), so the name is asked from
 * 40 sockets (a worker missing all of them: under 1e-4 with 4 workers). Returns the answers.
 */
async function warm(name: string): Promise<[string, number][][]> {
  const rs = await Promise.all(Array.from({ length: 40 }, () => udpQuery(dns.host, dns.port, name)));
  return rs.map((r) => answers(r.packet));
}

function answers(p: { answers?: unknown[] } | null): [string, number][] {
  return (p?.answers ?? []).map((r) => [(r as { data: string }).data, (r as { ttl: number }).ttl]);
}

test('cluster names keep resolving from stale entries (TTL 30) after the upstream dies; other zones fail', async () => {
  for (const a of await warm('api.default.svc.cluster.local')) assert.deepEqual(a, [['192.0.2.11', 5]], agent.output());
  for (const a of await warm('db.default.svc.cluster.local')) assert.deepEqual(a, [['192.0.2.12', 5]]);
  assert.equal((await udpQuery(dns.host, dns.port, 'www.example.test')).packet?.rcode, 'NOERROR');
  assert.equal(await servedStale(), 0);

  await nsd.kill();
  await sleep(6_200);

  // Expired and the upstream refuses connections: the stale entry, TTL 30.
  const stale = await udpQuery(dns.host, dns.port, 'api.default.svc.cluster.local', 'A', { timeoutMs: 5_000 });
  assert.equal(stale.packet?.rcode, 'NOERROR', agent.output());
  assert.deepEqual(answers(stale.packet), [['192.0.2.11', 30]]);
  assert.equal(await servedStale(), 1);
  // Over TCP too; within the 30 s recheck time it is answered without asking upstream.
  const overTcp = await tcpQuery(dns.host, dns.port, 'api.default.svc.cluster.local', 'A', { timeoutMs: 5_000 });
  assert.deepEqual(answers(overTcp.packet), [['192.0.2.11', 30]]);
  assert.equal(await servedStale(), 2);

  // Not a cluster zone: no stale fallback by default, the client sees the failure.
  const other = await udpQuery(dns.host, dns.port, 'www.example.test', 'A', { timeoutMs: 8_000 });
  assert.equal(other.packet?.rcode, 'SERVFAIL');
  // A cluster name never cached: nothing to serve, SERVFAIL.
  const unknown = await udpQuery(dns.host, dns.port, 'new.default.svc.cluster.local', 'A', { timeoutMs: 8_000 });
  assert.equal(unknown.packet?.rcode, 'SERVFAIL');
  assert.equal(await servedStale(), 2);
});

test('a blackholed upstream: the stale answer comes from the client response timer, within 5 s', async () => {
  // The dead upstream's address now accepts and never answers (UDP and TCP).
  const udp = dgram.createSocket('udp4');
  await new Promise<void>((r) => udp.bind(nsd.port, nsd.host, () => r()));
  const held: net.Socket[] = [];
  const tcp = net.createServer((s) => {
    held.push(s);
    s.on('error', () => {});
  });
  await new Promise<void>((r) => tcp.listen(nsd.port, nsd.host, () => r()));
  closers.push(() => {
    udp.close();
    for (const s of held) s.destroy();
    tcp.close();
  });

  const before = await servedStale();
  const t0 = performance.now();
  const [a, b] = await Promise.all([
    udpQuery(dns.host, dns.port, 'db.default.svc.cluster.local', 'A', { timeoutMs: 5_000, lingerMs: 6_000 }),
    tcpQuery(dns.host, dns.port, 'db.default.svc.cluster.local', 'A', { timeoutMs: 5_000 }),
  ]);
  assert.ok(a.packet !== null && b.packet !== null, `stale answers within 5 s (${(performance.now() - t0).toFixed(0)} ms)\n${agent.output()}`);
  assert.deepEqual(answers(a.packet), [['192.0.2.12', 30]]);
  assert.deepEqual(answers(b.packet), [['192.0.2.12', 30]]);
  // The upstream query failed later in the background; the client got exactly one answer.
  assert.equal(a.count, 1);
  assert.equal(await servedStale(), before + 2);
  assert.ok(agent.alive());
});
