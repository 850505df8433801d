/**
 * The CoreDNS 1.6-era metric names (k8s-dns-node-cache 1.15.x ships CoreDNS 1.6.7), derived
 * at scrape time from the current counters for dashboards built on them. Served only when a
 * `prometheus` block asks for them (`legacy_metrics`, see src/plugins/prometheus/README.md).
 *
 * Label sets are CoreDNS 1.6's:
 *   coredns_dns_request_count_total{server, zone, proto, family}
 *   coredns_dns_request_type_count_total{server, zone, type}
 *   coredns_dns_request_do_count_total{server, zone}
 *   coredns_dns_response_rcode_count_total{server, zone, rcode}
 *   coredns_panic_count_total
 *   coredns_forward_request_count_total{to}
 *   coredns_forward_response_rcode_count_total{rcode, to}
 *   coredns_forward_request_duration_seconds{to}        (replaces the 1.7-1.10 {to, rcode} form)
 *   coredns_forward_healthcheck_failure_count_total{to}
 *   coredns_forward_healthcheck_broken_count_total
 *   coredns_cache_size{server, type}
 * Each is the sum of its source over the labels 1.6 did not have (view, type, plugin, rcode).
 */
import type { FamilySnapshot, MetricsSnapshot, SampleSnapshot } from './snapshot.ts';
import { SnapshotBuilder } from './snapshot.ts';

interface Rollup {
  from: string;
  name: string;
  help: string;
  keep: readonly string[];
}

const ROLLUPS: readonly Rollup[] = [
  {
    from: 'coredns_dns_requests_total',
    name: 'coredns_dns_request_count_total',
    help: 'Counter of DNS requests made per zone, protocol and family.',
    keep: ['server', 'zone', 'proto', 'family'],
  },
  {
    from: 'coredns_dns_requests_total',
    name: 'coredns_dns_request_type_count_total',
    help: 'Counter of DNS requests per type, per zone.',
    keep: ['server', 'zone', 'type'],
  },
  {
    from: 'coredns_dns_do_requests_total',
    name: 'coredns_dns_request_do_count_total',
    help: 'Counter of DNS requests with DO bit set per zone.',
    keep: ['server', 'zone'],
  },
  {
    from: 'coredns_dns_responses_total',
    name: 'coredns_dns_response_rcode_count_total',
    help: 'Counter of response status codes.',
    keep: ['server', 'zone', 'rcode'],
  },
  { from: 'coredns_panics_total', name: 'coredns_panic_count_total', help: 'A metrics that counts the number of panics.', keep: [] },
  { from: 'coredns_forward_requests_total', name: 'coredns_forward_request_count_total', help: 'Counter of requests made per upstream.', keep: ['to'] },
  {
    from: 'coredns_forward_responses_total',
    name: 'coredns_forward_response_rcode_count_total',
    help: 'Counter of requests made per upstream.',
    keep: ['rcode', 'to'],
  },
  {
    from: 'coredns_forward_request_duration_seconds',
    name: 'coredns_forward_request_duration_seconds',
    help: 'Histogram of the time each request took.',
    keep: ['to'],
  },
  {
    from: 'coredns_forward_healthcheck_failures_total',
    name: 'coredns_forward_healthcheck_failure_count_total',
    help: 'Counter of the number of failed healtchecks.',
    keep: ['to'],
  },
  {
    from: 'coredns_forward_healthcheck_broken_total',
    name: 'coredns_forward_healthcheck_broken_count_total',
    help: 'Counter of the number of complete failures of the healtchecks.',
    keep: [],
  },
  { from: 'coredns_cache_entries', name: 'coredns_cache_size', help: 'The number of elements in the cache.', keep: ['server', 'type'] },
];

function pick(s: SampleSnapshot, keep: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of keep) out[k] = s.labels[k] ?? '';
  return out;
}

/** The snapshot plus the 1.6-era families (a legacy family of the same name replaces its source). */
export function withLegacyFamilies(snap: MetricsSnapshot): MetricsSnapshot {
  const byName = new Map<string, FamilySnapshot>(snap.families.map((f) => [f.name, f]));
  const legacy = new SnapshotBuilder();
  const replaced = new Set<string>();
  for (const r of ROLLUPS) {
    const src = byName.get(r.from);
    if (!src || src.samples.length === 0) continue;
    const w = legacy.family(r.name, r.help, src.type, { merge: src.merge, bounds: src.bounds });
    for (const s of src.samples) {
      if (src.type === 'histogram' && s.buckets) w.addHistogram(pick(s, r.keep), s.buckets, s.sum ?? 0);
      else w.add(pick(s, r.keep), s.value);
    }
    if (r.name === r.from) replaced.add(r.name);
  }
  return { families: [...snap.families.filter((f) => !replaced.has(f.name)), ...legacy.build().families] };
}
