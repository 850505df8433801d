/**
 * Counters of the forward plugin as plain number fields, bumped on the hot path without
 * prom-client. They mirror CoreDNS's forward/proxy metrics; the Prometheus exposition is built
 * elsewhere by reading these objects (see `ForwardPlugin.stats`).
 *
 * Field → CoreDNS metric (labels):
 *   ForwardStats.healthcheckBroken        coredns_forward_healthcheck_broken_total
 *   ForwardStats.maxConcurrentRejects     coredns_forward_max_concurrent_rejects_total
 *   UpstreamStats.to                      label `to` ("IP:port", IPv6 as "[::1]:53")
 *   UpstreamStats.requests                coredns_forward_requests_total{to}
 *   UpstreamStats.byRcode[rc].responses   coredns_forward_responses_total{to, rcode}
 *   UpstreamStats.byRcode[rc].duration    coredns_proxy_request_duration_seconds{proxy_name="forward", to, rcode}
 *                                         (and the deprecated coredns_forward_request_duration_seconds{to, rcode})
 *   UpstreamStats.healthcheckFailures     coredns_proxy_healthcheck_failures_total{proxy_name="forward", to}
 *   UpstreamStats.connCacheHitsUdp/Tcp    coredns_proxy_conn_cache_hits_total{proxy_name="forward", to, proto="udp"|"tcp"}
 *   UpstreamStats.connCacheMissesUdp/Tcp  coredns_proxy_conn_cache_misses_total{proxy_name="forward", to, proto}
 * `rc` is the full rcode (header bits plus the OPT's extended bits); its label text is
 * `rcodeName(rc)` from src/wire/codes.ts, as CoreDNS prints dns.RcodeToString.
 * The remaining UpstreamStats fields have no CoreDNS counterpart (our own diagnostics).
 */

/** CoreDNS's plugin.TimeBuckets: prometheus.ExponentialBuckets(0.00025, 2, 16), 0.25 ms to 8.192 s. */
const TIME_BUCKETS_SEC: readonly number[] = Array.from({ length: 16 }, (_, i) => 0.00025 * 2 ** i);

/**
 * A fixed-bucket histogram. `counts[i]` counts observations v with
 * TIME_BUCKETS_SEC[i-1] < v <= TIME_BUCKETS_SEC[i] (NOT cumulative; the exposition sums them);
 * observations above the last bound are only in `count` (the +Inf bucket).
 */
class DurationHistogram {
  readonly counts = new Float64Array(TIME_BUCKETS_SEC.length);
  sumSec = 0;
  count = 0;

  observe(sec: number): void {
    this.count++;
    this.sumSec += sec;
    const b = TIME_BUCKETS_SEC;
    for (let i = 0; i < b.length; i++) {
      if (sec <= b[i]!) {
        this.counts[i]!++;
        return;
      }
    }
  }
}

class RcodeStats {
  readonly rcode: number;
  responses = 0;
  readonly duration = new DurationHistogram();
  constructor(rcode: number) {
    this.rcode = rcode;
  }
}

export class UpstreamStats {
  readonly to: string;
  /** Queries sent to this upstream (every try, both protocols). */
  requests = 0;
  /** Indexed by full rcode; holes for rcodes never seen. Iterate with `for (const s of byRcode) if (s)`. */
  readonly byRcode: (RcodeStats | undefined)[] = [];
  healthcheckFailures = 0;
  connCacheHitsUdp = 0;
  connCacheMissesUdp = 0;
  connCacheHitsTcp = 0;
  connCacheMissesTcp = 0;
  /** Tries that ended without a reply: read timeout. */
  timeouts = 0;
  /** Tries that ended with a socket error (refused, reset, unreachable, bad framing, ...). */
  networkErrors = 0;
  /** UDP replies with TC=1 that were retried over TCP. */
  truncatedRetries = 0;
  /** Received messages shorter than a header, without QR, or not parseable: ignored. */
  ignoredGarbage = 0;
  /** Replies whose ID matched no query in flight on that socket/connection: ignored. */
  ignoredUnknownId = 0;
  /** Replies with an in-flight ID but a different question (RFC 5452 §9.1): ignored. */
  ignoredWrongQuestion = 0;
  /** Replies with an in-flight ID, no question and an error rcode: accepted (see reply.ts). */
  headerOnlyErrors = 0;
  /** TCP connections currently open (gauge) and ever dialled. */
  tcpConnsOpen = 0;
  tcpConnsDialled = 0;
  /** UDP sockets currently open (gauge) and ever opened. */
  udpSocketsOpen = 0;
  udpSocketsOpened = 0;

  constructor(to: string) {
    this.to = to;
  }

  /** Counts one accepted reply and its duration (CoreDNS observes per try, on success). */
  observeResponse(rcode: number, sec: number): void {
    let s = this.byRcode[rcode];
    if (s === undefined) {
      s = new RcodeStats(rcode);
      this.byRcode[rcode] = s;
    }
    s.responses++;
    s.duration.observe(sec);
  }
}

export class ForwardStats {
  /** The plugin's FROM zone (normalised), for labelling if wanted. */
  readonly from: string;
  readonly upstreams: UpstreamStats[];
  healthcheckBroken = 0;
  maxConcurrentRejects = 0;
  /** Queries currently being forwarded (gauge). */
  inflight = 0;
  constructor(from: string, upstreams: UpstreamStats[]) {
    this.from = from;
    this.upstreams = upstreams;
  }
}

/**
 * Counters of forward instances that were stopped (their config replaced by a reload, or
 * their block removed). CoreDNS's forward counters live for the whole process, so a reload
 * must not reset them: a stopped instance folds its counters in here (gauges are left out:
 * nothing of a stopped instance is open or in flight), and the collector exports these
 * totals beside the running instances', summed per label set. Per thread (each worker has its
 * own, merged with the rest at scrape time).
 */
class RetiredForwardTotals {
  readonly stats = new ForwardStats('', []);
  private readonly byTo = new Map<string, UpstreamStats>();

  add(s: ForwardStats): void {
    const t = this.stats;
    t.healthcheckBroken += s.healthcheckBroken;
    t.maxConcurrentRejects += s.maxConcurrentRejects;
    for (const u of s.upstreams) this.addUpstream(u);
  }

  private addUpstream(u: UpstreamStats): void {
    let t = this.byTo.get(u.to);
    if (t === undefined) {
      t = new UpstreamStats(u.to);
      this.byTo.set(u.to, t);
      this.stats.upstreams.push(t);
    }
    t.requests += u.requests;
    t.healthcheckFailures += u.healthcheckFailures;
    t.connCacheHitsUdp += u.connCacheHitsUdp;
    t.connCacheMissesUdp += u.connCacheMissesUdp;
    t.connCacheHitsTcp += u.connCacheHitsTcp;
    t.connCacheMissesTcp += u.connCacheMissesTcp;
    t.timeouts += u.timeouts;
    t.networkErrors += u.networkErrors;
    t.truncatedRetries += u.truncatedRetries;
    t.ignoredGarbage += u.ignoredGarbage;
    t.ignoredUnknownId += u.ignoredUnknownId;
    t.ignoredWrongQuestion += u.ignoredWrongQuestion;
    t.headerOnlyErrors += u.headerOnlyErrors;
    t.tcpConnsDialled += u.tcpConnsDialled;
    t.udpSocketsOpened += u.udpSocketsOpened;
    for (const r of u.byRcode) {
      if (r === undefined) continue;
      let into = t.byRcode[r.rcode];
      if (into === undefined) {
        into = new RcodeStats(r.rcode);
        t.byRcode[r.rcode] = into;
      }
      into.responses += r.responses;
      into.duration.count += r.duration.count;
      into.duration.sumSec += r.duration.sumSec;
      for (let i = 0; i < r.duration.counts.length; i++) into.duration.counts[i]! += r.duration.counts[i]!;
    }
  }
}

/** This thread's retired forward counters (see RetiredForwardTotals). */
export const retiredForwardTotals = new RetiredForwardTotals();
