/**
 * The cache plugin's metrics, with CoreDNS's names and labels (plugin/cache/metrics.go),
 * written at scrape time from the plugin's plain counters.
 *
 * `server`: CoreDNS labels cache counters with the listener of each query; this cache counts
 * per block, so its counters carry the block's first server label. `zones` is the cache's
 * zones joined by "," and `view` is "".
 */
import type { BlockInfo, MetricsOut } from '../../plugin.ts';
import type { CachePlugin } from './cache.ts';

const CACHE_METRICS = {
  entries: { name: 'coredns_cache_entries', help: 'The number of elements in the cache.' },
  requests: { name: 'coredns_cache_requests_total', help: 'The count of cache requests.' },
  hits: { name: 'coredns_cache_hits_total', help: 'The count of cache hits.' },
  misses: { name: 'coredns_cache_misses_total', help: 'The count of cache misses. Deprecated, derive misses from cache hits/requests counters.' },
  prefetch: { name: 'coredns_cache_prefetch_total', help: 'The number of times the cache has prefetched a cached item.' },
  drops: { name: 'coredns_cache_drops_total', help: 'The number responses that are not cached, because the reply is malformed.' },
  servedStale: { name: 'coredns_cache_served_stale_total', help: 'The number of requests served from stale cache entries.' },
  evictions: { name: 'coredns_cache_evictions_total', help: 'The count of cache evictions.' },
} as const;

export function collectCache(block: BlockInfo, c: CachePlugin, out: MetricsOut): void {
  const M = CACHE_METRICS;
  if (c.requests === 0) return;
  const base = { server: block.serverLabels[0] ?? '', view: '', zones: c.config.zones.join(',') };
  const success = { ...base, type: 'success' };
  const denial = { ...base, type: 'denial' };
  const entries = out.family(M.entries.name, M.entries.help, 'gauge');
  entries.add(success, c.entries('success'));
  entries.add(denial, c.entries('denial'));
  out.family(M.requests.name, M.requests.help, 'counter').add(base, c.requests);
  const hits = out.family(M.hits.name, M.hits.help, 'counter');
  if (c.hitsSuccess > 0) hits.add(success, c.hitsSuccess);
  if (c.hitsDenial > 0) hits.add(denial, c.hitsDenial);
  if (c.misses > 0) out.family(M.misses.name, M.misses.help, 'counter').add(base, c.misses);
  if (c.prefetches > 0) out.family(M.prefetch.name, M.prefetch.help, 'counter').add(base, c.prefetches);
  if (c.drops > 0) out.family(M.drops.name, M.drops.help, 'counter').add(base, c.drops);
  if (c.servedStale > 0) out.family(M.servedStale.name, M.servedStale.help, 'counter').add(base, c.servedStale);
  const ev = out.family(M.evictions.name, M.evictions.help, 'counter');
  if (c.evictionsSuccess > 0) ev.add(success, c.evictionsSuccess);
  if (c.evictionsDenial > 0) ev.add(denial, c.evictionsDenial);
}
