/**
 * The forward plugin's metrics, with CoreDNS's names and labels (plugin/forward/metrics.go and
 * plugin/pkg/proxy/metrics.go), written at scrape time from ForwardStats' plain counters.
 * `to` is the upstream "IP:port" and `proxy_name` is "forward". Both the current
 * coredns_proxy_* names and the CoreDNS 1.7-1.10 coredns_forward_* names are served.
 * Counters last for the process lifetime: instances stopped by a reload fold theirs into
 * retiredForwardTotals (stats.ts), exported by `collectForwardGlobal` beside the running ones.
 */
import type { MetricsOut } from '../../plugin.ts';
import { TIME_BUCKETS, proxyRcodeLabel } from '../../metrics/labels.ts';
import { retiredForwardTotals, type ForwardStats } from './stats.ts';

const FORWARD_METRICS = {
  proxyDuration: { name: 'coredns_proxy_request_duration_seconds', help: 'Histogram of the time each request took.' },
  proxyHealthFailures: { name: 'coredns_proxy_healthcheck_failures_total', help: 'Counter of the number of failed healthchecks.' },
  proxyConnHits: { name: 'coredns_proxy_conn_cache_hits_total', help: 'Counter of connection cache hits per upstream and protocol.' },
  proxyConnMisses: { name: 'coredns_proxy_conn_cache_misses_total', help: 'Counter of connection cache misses per upstream and protocol.' },
  broken: { name: 'coredns_forward_healthcheck_broken_total', help: 'Counter of the number of complete failures of the healthchecks.' },
  rejects: {
    name: 'coredns_forward_max_concurrent_rejects_total',
    help: 'Counter of the number of queries rejected because the concurrent queries were at maximum.',
  },
  requests: { name: 'coredns_forward_requests_total', help: 'Counter of requests made per upstream.' },
  responses: { name: 'coredns_forward_responses_total', help: 'Counter of responses received per upstream.' },
  duration: { name: 'coredns_forward_request_duration_seconds', help: 'Histogram of the time each request took.' },
  healthFailures: { name: 'coredns_forward_healthcheck_failures_total', help: 'Counter of the number of failed healthchecks.' },
} as const;

export function collectForward(s: ForwardStats, out: MetricsOut): void {
  const M = FORWARD_METRICS;
  out.family(M.broken.name, M.broken.help, 'counter').add({}, s.healthcheckBroken);
  out.family(M.rejects.name, M.rejects.help, 'counter').add({}, s.maxConcurrentRejects);
  for (const u of s.upstreams) {
    const to = u.to;
    if (u.requests > 0) out.family(M.requests.name, M.requests.help, 'counter').add({ to }, u.requests);
    for (const r of u.byRcode) {
      if (!r || r.responses === 0) continue;
      const rcode = proxyRcodeLabel(r.rcode);
      out.family(M.responses.name, M.responses.help, 'counter').add({ rcode, to }, r.responses);
      const d = r.duration;
      if (d.count === 0) continue;
      // The +Inf overflow is what `count` has beyond the bounded buckets.
      let inBounds = 0;
      for (let i = 0; i < d.counts.length; i++) inBounds += d.counts[i]!;
      const buckets = [...d.counts, d.count - inBounds];
      out
        .family(M.proxyDuration.name, M.proxyDuration.help, 'histogram', { bounds: TIME_BUCKETS })
        .addHistogram({ proxy_name: 'forward', rcode, to }, buckets, d.sumSec);
      out.family(M.duration.name, M.duration.help, 'histogram', { bounds: TIME_BUCKETS }).addHistogram({ rcode, to }, buckets, d.sumSec);
    }
    if (u.healthcheckFailures > 0) {
      out.family(M.proxyHealthFailures.name, M.proxyHealthFailures.help, 'counter').add({ proxy_name: 'forward', to }, u.healthcheckFailures);
      out.family(M.healthFailures.name, M.healthFailures.help, 'counter').add({ to }, u.healthcheckFailures);
    }
    const conn: [string, number, number][] = [
      ['udp', u.connCacheHitsUdp, u.connCacheMissesUdp],
      ['tcp', u.connCacheHitsTcp, u.connCacheMissesTcp],
    ];
    for (const [proto, hits, misses] of conn) {
      if (hits > 0) out.family(M.proxyConnHits.name, M.proxyConnHits.help, 'counter').add({ proto, proxy_name: 'forward', to }, hits);
      if (misses > 0) out.family(M.proxyConnMisses.name, M.proxyConnMisses.help, 'counter').add({ proto, proxy_name: 'forward', to }, misses);
    }
  }
}

/**
 * What exists whatever the config: the two counters CoreDNS registers at start (promauto), and
 * the totals of instances a reload stopped.
 */
export function collectForwardGlobal(out: MetricsOut): void {
  const M = FORWARD_METRICS;
  out.family(M.broken.name, M.broken.help, 'counter').add({}, 0);
  out.family(M.rejects.name, M.rejects.help, 'counter').add({}, 0);
  collectForward(retiredForwardTotals.stats, out);
}
