/**
 * The series node-local-dns promises to export (CoreDNS names and labels), as agreed for the
 * project; the monitoring material may use these and nothing else. test/deploy/metrics-names
 * checks the live agent against the material itself; this list lets the static tests catch a
 * typo even where no agent runs.
 */

/** Series name → label names (histograms are listed under _bucket/_sum/_count, _bucket adds le). */
export const CONTRACT: ReadonlyMap<string, readonly string[]> = (() => {
  const m = new Map<string, readonly string[]>();
  const histogram = (name: string, labels: string[]): void => {
    m.set(`${name}_bucket`, [...labels, 'le']);
    m.set(`${name}_sum`, labels);
    m.set(`${name}_count`, labels);
  };
  m.set('coredns_dns_requests_total', ['server', 'zone', 'view', 'proto', 'family', 'type']);
  m.set('coredns_dns_responses_total', ['server', 'zone', 'view', 'rcode', 'plugin']);
  histogram('coredns_dns_request_duration_seconds', ['server', 'zone', 'view', 'type']);
  histogram('coredns_dns_request_size_bytes', ['server', 'zone', 'view', 'proto']);
  histogram('coredns_dns_response_size_bytes', ['server', 'zone', 'view', 'proto']);
  m.set('coredns_dns_do_requests_total', ['server', 'zone', 'view']);
  m.set('coredns_panics_total', []);
  m.set('coredns_build_info', ['version', 'revision', 'goversion']);
  m.set('coredns_plugin_enabled', ['server', 'zone', 'view', 'name']);
  m.set('coredns_cache_entries', ['server', 'type', 'zones', 'view']);
  m.set('coredns_cache_hits_total', ['server', 'type', 'zones', 'view']);
  m.set('coredns_cache_misses_total', ['server', 'zones', 'view']);
  m.set('coredns_cache_requests_total', ['server', 'zones', 'view']);
  m.set('coredns_cache_prefetch_total', ['server', 'zones', 'view']);
  m.set('coredns_cache_drops_total', ['server', 'zones', 'view']);
  m.set('coredns_cache_served_stale_total', ['server', 'zones', 'view']);
  m.set('coredns_cache_evictions_total', ['server', 'type', 'zones', 'view']);
  histogram('coredns_proxy_request_duration_seconds', ['proxy_name', 'to', 'rcode']);
  m.set('coredns_proxy_healthcheck_failures_total', ['proxy_name', 'to']);
  m.set('coredns_proxy_conn_cache_hits_total', ['proxy_name', 'to', 'proto']);
  m.set('coredns_proxy_conn_cache_misses_total', ['proxy_name', 'to', 'proto']);
  m.set('coredns_forward_healthcheck_broken_total', []);
  m.set('coredns_forward_max_concurrent_rejects_total', []);
  m.set('coredns_forward_requests_total', ['to']);
  m.set('coredns_forward_responses_total', ['to', 'rcode']);
  histogram('coredns_forward_request_duration_seconds', ['to', 'rcode']);
  m.set('coredns_forward_healthcheck_failures_total', ['to']);
  m.set('coredns_reload_failed_total', []);
  histogram('coredns_health_request_duration_seconds', []);
  m.set('coredns_health_request_failures_total', []);
  m.set('process_resident_memory_bytes', []);
  m.set('process_cpu_seconds_total', []);
  m.set('coredns_nodecache_setup_errors_total', ['errortype']);
  return m;
})();

/**
 * Labels Prometheus attaches at scrape time (target labels from deploy/monitoring's
 * ServiceMonitor and the operator), not exported by the agent.
 */
export const TARGET_LABELS: ReadonlySet<string> = new Set(['job', 'instance', 'node', 'endpoint', 'namespace', 'pod', 'service', 'container']);

/** Series Prometheus itself generates per target; they never appear on /metrics. */
export const SYNTHETIC_SERIES: ReadonlySet<string> = new Set(['up']);
