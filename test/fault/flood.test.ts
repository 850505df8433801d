/**
 * A UDP flood of unique names (a cache-busting attack, or a misbehaving client): 50 000
 * distinct names under a wildcard of a real upstream (NSD), through a cache of capacity 1000
 * (CoreDNS rounds it to 1024; one cache per worker thread). The cache never holds more than its capacity, the agent's RSS
 * grows by little (bounded by the capacity, not by the number of names), and a well-behaved
 * client is still answered throughout.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import dnsPacket from 'dns-packet';
import { startAgent, scrape, metricSum, type Agent } from './lib/agent.ts';
import { startNsd, zoneText, type Nsd } from './lib/nsd.ts';
import { freeAddress } from './lib/net.ts';
import { Prober, UdpClient } from './lib/dns.ts';
import { resolveWorkerCount } from '../../src/workers/count.ts';

const NAMES = 50_000;
const WINDOW = 128;
/** effectiveCapacity(1000): 256 shards of max(4, 1000/256) entries. */
const CAPACITY = 1024;
/** The agent's serving worker threads (same CPUs as this process); each has its own cache. */
const WORKERS = resolveWorkerCount(0);
/** RSS growth allowed between 5 000 names and 50 000 names (the cache was full at both). */
const MAX_RSS_GROWTH_KIB = 48 * 1024;

let nsd: Nsd;
let agent: Agent;
let dns: { host: string; port: number };
let metrics: { host: string; port: number };

before(async () => {
  nsd = await startNsd({
    'flood.test.': zoneText('flood.test', ['* IN A 192.0.2.99']),
    'ok.test.': zoneText('ok.test', ['www IN A 192.0.2.80']),
  });
  dns = await freeAddress();
  metrics = await freeAddress(dns.host);
  agent = await startAgent(`flood.test:${dns.port} {
    bind ${dns.host}
    cache 300 {
        success 1000
        denial 1000
    }
    forward . ${nsd.addr}
    prometheus ${metrics.host}:${metrics.port}
}
ok.test:${dns.port} {
    bind ${dns.host}
    forward . ${nsd.addr}
}
`);
});

after(async () => {
  await agent?.stop();
  await nsd?.stop();
});

/**
 * Sends names [from, to) with at most WINDOW in flight, spread over the clients (several
 * source ports reach every worker); returns how many were answered right.
 */
async function flood(clients: UdpClient[], from: number, to: number): Promise<number> {
  let next = from;
  let ok = 0;
  const worker = async () => {
    while (next < to) {
      const i = next++;
      const b = await clients[i % clients.length]!.query(`n${i}.flood.test`, 'A', 5_000);
      if (b === null) continue;
      const p = dnsPacket.decode(b) as dnsPacket.DecodedPacket & { rcode: string };
      if (p.rcode === 'NOERROR' && (p.answers?.[0] as { data?: string })?.data === '192.0.2.99') ok++;
    }
  };
  await Promise.all(Array.from({ length: WINDOW }, worker));
  return ok;
}

test('50 000 unique names through a cache of 1000: entries stay within capacity, RSS bounded, others served', async (t) => {
  const clients = Array.from({ length: 8 }, () => new UdpClient(dns.host, dns.port));
  await Promise.all(clients.map((c) => c.ready()));
  // The flood saturates the agent: the probe is a stub resolver with glibc's 5 s timeout.
  const probe = new Prober(dns.host, dns.port, 'www.ok.test', (p) => p.rcode === 'NOERROR', 20, 'udp', 5_000);
  try {
    const warm = await flood(clients, 0, 5_000);
    const rssWarmKiB = await agent.rssKiB();
    const rest = await flood(clients, 5_000, NAMES);
    const rssEndKiB = await agent.rssKiB();
    await probe.stop();

    // Nearly all answered (UDP may drop a few under load; a lost query is the client's to retry).
    assert.ok(warm + rest >= NAMES * 0.99, `answered ${warm + rest} of ${NAMES}`);
    const fams = await scrape(metrics.host, metrics.port);
    const entries = metricSum(fams, 'coredns_cache_entries', { type: 'success' });
    const misses = metricSum(fams, 'coredns_cache_misses_total');
    const evictions = metricSum(fams, 'coredns_cache_evictions_total', { type: 'success' });
    t.diagnostic(
      `answered ${warm + rest}; entries ${entries}; misses ${misses}; evictions ${evictions}; RSS ${rssWarmKiB} -> ${rssEndKiB} KiB; probe ${probe.summary()}`,
    );
    assert.ok(entries > 0 && entries <= CAPACITY * WORKERS, `success entries ${entries} within capacity ${CAPACITY} × ${WORKERS} workers`);
    assert.ok(misses >= NAMES * 0.99, `every unique name was a miss (${misses})`);
    assert.ok(evictions >= misses - CAPACITY * WORKERS - 100, `evictions ${evictions} keep the caches at capacity`);
    assert.ok(rssEndKiB - rssWarmKiB < MAX_RSS_GROWTH_KIB, `RSS ${rssWarmKiB} KiB after 5 000 names, ${rssEndKiB} KiB after ${NAMES}`);
    assert.equal(probe.unanswered + probe.wrong, 0, probe.summary());
    assert.ok(agent.alive());
  } finally {
    await probe.stop();
    for (const c of clients) c.close();
  }
});
