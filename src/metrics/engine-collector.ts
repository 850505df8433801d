/**
 * Metrics read from the configured plugins of the serving config (engine.blocks()) at scrape
 * time: coredns_plugin_enabled, the cache plugin's counters and the forward plugin's counters.
 * The plugins keep plain number fields (src/plugins/cache/cache.ts CachePlugin,
 * src/plugins/forward/stats.ts ForwardStats); this module gives them CoreDNS's names and labels.
 *
 * Label notes:
 *  - cache `server`: CoreDNS labels cache counters with the listener of each query. The cache
 *    plugin counts per block, not per listener, so its counters are exported under the block's
 *    first server label. `zones` is the cache's zones joined by "," (CoreDNS's
 *    zonesMetricLabel), `view` is "".
 *  - forward: `to` is the upstream "IP:port"; `proxy_name` is "forward". Both the current
 *    coredns_proxy_* names and the CoreDNS 1.7-1.10 coredns_forward_* names are served.
 *  - Counters reflect the plugin objects of the serving config. Across a reload they stay
 *    monotonic when the new plugin adopts the old one's counters (CachePlugin.adoptCountersFrom);
 *    otherwise they restart from zero, which Prometheus treats as a counter reset.
 */
import type { BlockInfo, EngineHooks, Plugin } from '../plugin.ts';
import type { CachePlugin } from '../plugins/cache/cache.ts';
import { retiredForwardTotals, type ForwardStats } from '../plugins/forward/stats.ts';
import type { Collector } from './hub.ts';
import type { SnapshotBuilder } from './snapshot.ts';
import { TIME_BUCKETS, proxyRcodeLabel } from './labels.ts';
import { collectTcp, tcpBudget } from '../server/tcp.ts';

/** Plugins CoreDNS does not register as handlers, so coredns_plugin_enabled never lists them. */
export const NON_HANDLER_PLUGINS: ReadonlySet<string> = new Set(['bind', 'reload', 'health', 'ready', 'debug', 'root']);

export const PLUGIN_METRICS = {
  pluginEnabled: { name: 'coredns_plugin_enabled', help: 'A metric that indicates whether a plugin is enabled on per server and zone basis.' },
  cacheEntries: { name: 'coredns_cache_entries', help: 'The number of elements in the cache.' },
  cacheRequests: { name: 'coredns_cache_requests_total', help: 'The count of cache requests.' },
  cacheHits: { name: 'coredns_cache_hits_total', help: 'The count of cache hits.' },
  cacheMisses: { name: 'coredns_cache_misses_total', help: 'The count of cache misses. Deprecated, derive misses from cache hits/requests counters.' },
  cachePrefetch: { name: 'coredns_cache_prefetch_total', help: 'The number of times the cache has prefetched a cached item.' },
  cacheDrops: { name: 'coredns_cache_drops_total', help: 'The number responses that are not cached, because the reply is malformed.' },
  cacheServedStale: { name: 'coredns_cache_served_stale_total', help: 'The number of requests served from stale cache entries.' },
  cacheEvictions: { name: 'coredns_cache_evictions_total', help: 'The count of cache evictions.' },
  proxyDuration: { name: 'coredns_proxy_request_duration_seconds', help: 'Histogram of the time each request took.' },
  proxyHealthFailures: { name: 'coredns_proxy_healthcheck_failures_total', help: 'Counter of the number of failed healthchecks.' },
  proxyConnHits: { name: 'coredns_proxy_conn_cache_hits_total', help: 'Counter of connection cache hits per upstream and protocol.' },
  proxyConnMisses: { name: 'coredns_proxy_conn_cache_misses_total', help: 'Counter of connection cache misses per upstream and protocol.' },
  forwardBroken: { name: 'coredns_forward_healthcheck_broken_total', help: 'Counter of the number of complete failures of the healthchecks.' },
  forwardRejects: { name: 'coredns_forward_max_concurrent_rejects_total', help: 'Counter of the number of queries rejected because the concurrent queries were at maximum.' },
  forwardRequests: { name: 'coredns_forward_requests_total', help: 'Counter of requests made per upstream.' },
  forwardResponses: { name: 'coredns_forward_responses_total', help: 'Counter of responses received per upstream.' },
  forwardDuration: { name: 'coredns_forward_request_duration_seconds', help: 'Histogram of the time each request took.' },
  forwardHealthFailures: { name: 'coredns_forward_healthcheck_failures_total', help: 'Counter of the number of failed healthchecks.' },
} as const;

function isCache(p: Plugin): p is CachePlugin {
  return p.name === 'cache' && typeof (p as Partial<CachePlugin>).entries === 'function';
}

function forwardStatsOf(p: Plugin): ForwardStats | null {
  if (p.name !== 'forward') return null;
  const s = (p as { stats?: ForwardStats }).stats;
  return s !== undefined && Array.isArray(s.upstreams) ? s : null;
}

/** coredns_plugin_enabled for blocks that have `prometheus` (CoreDNS sets it from that plugin's setup). */
export function collectPluginEnabled(blocks: readonly BlockInfo[], out: SnapshotBuilder): void {
  const m = PLUGIN_METRICS.pluginEnabled;
  for (const b of blocks) {
    if (!b.plugins.some((p) => p.name === 'prometheus')) continue;
    const f = out.family(m.name, m.help, 'gauge', { merge: 'max' });
    for (const server of b.serverLabels) {
      for (const zone of b.zones) {
        for (const p of b.plugins) {
          if (NON_HANDLER_PLUGINS.has(p.name)) continue;
          f.add({ name: p.name, server, view: '', zone }, 1);
        }
      }
    }
  }
}

export function collectCache(block: BlockInfo, c: CachePlugin, out: SnapshotBuilder): void {
  const M = PLUGIN_METRICS;
  if (c.requests === 0) return;
  const base = { server: block.serverLabels[0] ?? '', view: '', zones: c.config.zones.join(',') };
  const success = { ...base, type: 'success' };
  const denial = { ...base, type: 'denial' };
  const entries = out.family(M.cacheEntries.name, M.cacheEntries.help, 'gauge');
  entries.add(success, c.entries('success'));
  entries.add(denial, c.entries('denial'));
  out.family(M.cacheRequests.name, M.cacheRequests.help, 'counter').add(base, c.requests);
  const hits = out.family(M.cacheHits.name, M.cacheHits.help, 'counter');
  if (c.hitsSuccess > 0) hits.add(success, c.hitsSuccess);
  if (c.hitsDenial > 0) hits.add(denial, c.hitsDenial);
  if (c.misses > 0) out.family(M.cacheMisses.name, M.cacheMisses.help, 'counter').add(base, c.misses);
  if (c.prefetches > 0) out.family(M.cachePrefetch.name, M.cachePrefetch.help, 'counter').add(base, c.prefetches);
  if (c.drops > 0) out.family(M.cacheDrops.name, M.cacheDrops.help, 'counter').add(base, c.drops);
  if (c.servedStale > 0) out.family(M.cacheServedStale.name, M.cacheServedStale.help, 'counter').add(base, c.servedStale);
  const ev = out.family(M.cacheEvictions.name, M.cacheEvictions.help, 'counter');
  if (c.evictionsSuccess > 0) ev.add(success, c.evictionsSuccess);
  if (c.evictionsDenial > 0) ev.add(denial, c.evictionsDenial);
}

export function collectForward(s: ForwardStats, out: SnapshotBuilder): void {
  const M = PLUGIN_METRICS;
  out.family(M.forwardBroken.name, M.forwardBroken.help, 'counter').add({}, s.healthcheckBroken);
  out.family(M.forwardRejects.name, M.forwardRejects.help, 'counter').add({}, s.maxConcurrentRejects);
  for (const u of s.upstreams) {
    const to = u.to;
    if (u.requests > 0) out.family(M.forwardRequests.name, M.forwardRequests.help, 'counter').add({ to }, u.requests);
    for (const r of u.byRcode) {
      if (!r || r.responses === 0) continue;
      const rcode = proxyRcodeLabel(r.rcode);
      out.family(M.forwardResponses.name, M.forwardResponses.help, 'counter').add({ rcode, to }, r.responses);
      const d = r.duration;
      if (d.count === 0) continue;
      // The +Inf overflow is what `count` has beyond the bounded buckets.
      let inBounds = 0;
      for (let i = 0; i < d.counts.length; i++) inBounds += d.counts[i]!;
      const buckets = [...d.counts, d.count - inBounds];
      out.family(M.proxyDuration.name, M.proxyDuration.help, 'histogram', { bounds: TIME_BUCKETS })
        .addHistogram({ proxy_name: 'forward', rcode, to }, buckets, d.sumSec);
      out.family(M.forwardDuration.name, M.forwardDuration.help, 'histogram', { bounds: TIME_BUCKETS })
        .addHistogram({ rcode, to }, buckets, d.sumSec);
    }
    if (u.healthcheckFailures > 0) {
      out.family(M.proxyHealthFailures.name, M.proxyHealthFailures.help, 'counter').add({ proxy_name: 'forward', to }, u.healthcheckFailures);
      out.family(M.forwardHealthFailures.name, M.forwardHealthFailures.help, 'counter').add({ to }, u.healthcheckFailures);
    }
    const conn: [string, number, number][] = [['udp', u.connCacheHitsUdp, u.connCacheMissesUdp], ['tcp', u.connCacheHitsTcp, u.connCacheMissesTcp]];
    for (const [proto, hits, misses] of conn) {
      if (hits > 0) out.family(M.proxyConnHits.name, M.proxyConnHits.help, 'counter').add({ proto, proxy_name: 'forward', to }, hits);
      if (misses > 0) out.family(M.proxyConnMisses.name, M.proxyConnMisses.help, 'counter').add({ proto, proxy_name: 'forward', to }, misses);
    }
  }
}

/** Collects from the engine's serving blocks. */
export class EngineCollector implements Collector {
  private engine: EngineHooks | null = null;

  /** The engine whose blocks are read (the same for the process lifetime; set again harmlessly). */
  attach(engine: EngineHooks): void {
    this.engine = engine;
  }

  collect(out: SnapshotBuilder): void {
    const M = PLUGIN_METRICS;
    // Registered (and so exported) from the start in CoreDNS, like every promauto counter.
    out.family(M.forwardBroken.name, M.forwardBroken.help, 'counter').add({}, 0);
    out.family(M.forwardRejects.name, M.forwardRejects.help, 'counter').add({}, 0);
    // This thread's DNS TCP listeners (nodelocaldns_tcp_*, src/server/tcp.ts).
    collectTcp(tcpBudget, out);
    // Forward instances stopped by reloads: CoreDNS's counters last for the process lifetime.
    collectForward(retiredForwardTotals.stats, out);
    if (this.engine === null) return;
    const blocks = this.engine.blocks();
    collectPluginEnabled(blocks, out);
    for (const b of blocks) {
      for (const p of b.plugins) {
        if (isCache(p)) collectCache(b, p, out);
        const fs = forwardStatsOf(p);
        if (fs) collectForward(fs, out);
      }
    }
  }
}
