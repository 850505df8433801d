/**
 * Source of deploy/monitoring/grafana-dashboard.json (and of the Helm chart's copy).
 * Run `node deploy/monitoring/dashboard.ts` after editing; test/deploy checks both JSON
 * files equal this generator's output.
 *
 * Queries use only series that node-local-dns exports (CoreDNS names) plus the target
 * labels added by deploy/monitoring/servicemonitor.yaml: job, node.
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const DASHBOARD_PATH = fileURLToPath(new URL('./grafana-dashboard.json', import.meta.url));
export const CHART_DASHBOARD_PATH = fileURLToPath(new URL('../helm/node-local-dns/dashboards/node-local-dns.json', import.meta.url));

/** Selector shared by every query: the dashboard's job and node variables. */
const SEL = 'job=~"$job", node=~"$node"';
const RATE = '$__rate_interval';

interface Target {
  expr: string;
  legendFormat: string;
  /** Table panels read the instant value. */
  instant?: boolean;
}

interface PanelSpec {
  title: string;
  description: string;
  type: 'timeseries' | 'stat' | 'table';
  unit: string;
  targets: Target[];
  /** Grid width in columns of 24. */
  width: number;
  height?: number;
}

function row(title: string): { title: string; row: true } {
  return { title, row: true };
}

const sections: Array<{ title: string; row: true } | PanelSpec> = [
  row('Overview'),
  {
    title: 'Nodes reporting',
    description: 'node-local-dns pods whose metrics Prometheus scrapes.',
    type: 'stat',
    unit: 'none',
    width: 4,
    targets: [{ expr: `count(coredns_build_info{${SEL}})`, legendFormat: 'nodes' }],
  },
  {
    title: 'Queries per second',
    description: 'All queries received, all nodes.',
    type: 'stat',
    unit: 'reqps',
    width: 5,
    targets: [{ expr: `sum(rate(coredns_dns_requests_total{${SEL}}[${RATE}]))`, legendFormat: 'qps' }],
  },
  {
    title: 'Cache hit ratio',
    description: 'Share of cache lookups answered from the cache.',
    type: 'stat',
    unit: 'percentunit',
    width: 5,
    targets: [
      {
        expr: `sum(rate(coredns_cache_hits_total{${SEL}}[${RATE}])) / sum(rate(coredns_cache_requests_total{${SEL}}[${RATE}]))`,
        legendFormat: 'hit ratio',
      },
    ],
  },
  {
    title: 'SERVFAIL ratio',
    description: 'Share of answers with rcode SERVFAIL.',
    type: 'stat',
    unit: 'percentunit',
    width: 5,
    targets: [
      {
        expr: `sum(rate(coredns_dns_responses_total{${SEL}, rcode="SERVFAIL"}[${RATE}])) / sum(rate(coredns_dns_responses_total{${SEL}}[${RATE}]))`,
        legendFormat: 'SERVFAIL',
      },
    ],
  },
  {
    title: 'Setup errors (1h)',
    description: 'Interface, iptables and ConfigMap errors of the agent in the last hour.',
    type: 'stat',
    unit: 'none',
    width: 5,
    targets: [{ expr: `sum(increase(coredns_nodecache_setup_errors_total{${SEL}}[1h]))`, legendFormat: 'errors' }],
  },
  row('Requests'),
  {
    title: 'Queries by zone',
    description: 'Queries per second by server block zone.',
    type: 'timeseries',
    unit: 'reqps',
    width: 12,
    targets: [{ expr: `sum by (zone) (rate(coredns_dns_requests_total{${SEL}}[${RATE}]))`, legendFormat: '{{zone}}' }],
  },
  {
    title: 'Queries by type',
    description: 'Queries per second by query type (A, AAAA, PTR, SRV, ...).',
    type: 'timeseries',
    unit: 'reqps',
    width: 12,
    targets: [{ expr: `sum by (type) (rate(coredns_dns_requests_total{${SEL}}[${RATE}]))`, legendFormat: '{{type}}' }],
  },
  {
    title: 'Queries by node',
    description: "Queries per second received by each node's cache.",
    type: 'timeseries',
    unit: 'reqps',
    width: 12,
    targets: [{ expr: `sum by (node) (rate(coredns_dns_requests_total{${SEL}}[${RATE}]))`, legendFormat: '{{node}}' }],
  },
  {
    title: 'Queries by transport and family',
    description: 'UDP or TCP, IPv4 (1) or IPv6 (2).',
    type: 'timeseries',
    unit: 'reqps',
    width: 12,
    targets: [
      {
        expr: `sum by (proto, family) (rate(coredns_dns_requests_total{${SEL}}[${RATE}]))`,
        legendFormat: '{{proto}} family {{family}}',
      },
    ],
  },
  {
    title: 'Responses by rcode',
    description: 'Answers per second by response code.',
    type: 'timeseries',
    unit: 'reqps',
    width: 12,
    targets: [{ expr: `sum by (rcode) (rate(coredns_dns_responses_total{${SEL}}[${RATE}]))`, legendFormat: '{{rcode}}' }],
  },
  {
    title: 'Response time',
    description: 'Time from query to answer, including upstream time on cache misses.',
    type: 'timeseries',
    unit: 's',
    width: 12,
    targets: [
      {
        expr: `histogram_quantile(0.5, sum by (le) (rate(coredns_dns_request_duration_seconds_bucket{${SEL}}[${RATE}])))`,
        legendFormat: 'p50',
      },
      {
        expr: `histogram_quantile(0.99, sum by (le) (rate(coredns_dns_request_duration_seconds_bucket{${SEL}}[${RATE}])))`,
        legendFormat: 'p99',
      },
    ],
  },
  {
    title: 'Message sizes (p99)',
    description: 'Query and answer sizes by transport.',
    type: 'timeseries',
    unit: 'bytes',
    width: 12,
    targets: [
      {
        expr: `histogram_quantile(0.99, sum by (le, proto) (rate(coredns_dns_request_size_bytes_bucket{${SEL}}[${RATE}])))`,
        legendFormat: 'query {{proto}}',
      },
      {
        expr: `histogram_quantile(0.99, sum by (le, proto) (rate(coredns_dns_response_size_bytes_bucket{${SEL}}[${RATE}])))`,
        legendFormat: 'answer {{proto}}',
      },
    ],
  },
  {
    title: 'DNSSEC OK queries',
    description: 'Queries per second with the DO bit set.',
    type: 'timeseries',
    unit: 'reqps',
    width: 12,
    targets: [{ expr: `sum by (zone) (rate(coredns_dns_do_requests_total{${SEL}}[${RATE}]))`, legendFormat: '{{zone}}' }],
  },
  row('Cache'),
  {
    title: 'Cache hit ratio by node',
    description: 'Share of lookups answered from the cache, per node.',
    type: 'timeseries',
    unit: 'percentunit',
    width: 12,
    targets: [
      {
        expr: `sum by (node) (rate(coredns_cache_hits_total{${SEL}}[${RATE}])) / sum by (node) (rate(coredns_cache_requests_total{${SEL}}[${RATE}]))`,
        legendFormat: '{{node}}',
      },
    ],
  },
  {
    title: 'Cache size',
    description: 'Entries held, by cache (success = positive answers, denial = NXDOMAIN/NODATA).',
    type: 'timeseries',
    unit: 'none',
    width: 12,
    targets: [{ expr: `sum by (type) (coredns_cache_entries{${SEL}})`, legendFormat: '{{type}}' }],
  },
  {
    title: 'Cache hits and misses',
    description: 'Lookups per second.',
    type: 'timeseries',
    unit: 'reqps',
    width: 12,
    targets: [
      { expr: `sum by (type) (rate(coredns_cache_hits_total{${SEL}}[${RATE}]))`, legendFormat: 'hit {{type}}' },
      { expr: `sum(rate(coredns_cache_misses_total{${SEL}}[${RATE}]))`, legendFormat: 'miss' },
    ],
  },
  {
    title: 'Cache churn',
    description: 'Evictions (cache full), prefetches, stale answers served and drops.',
    type: 'timeseries',
    unit: 'ops',
    width: 12,
    targets: [
      { expr: `sum by (type) (rate(coredns_cache_evictions_total{${SEL}}[${RATE}]))`, legendFormat: 'evicted {{type}}' },
      { expr: `sum(rate(coredns_cache_prefetch_total{${SEL}}[${RATE}]))`, legendFormat: 'prefetch' },
      { expr: `sum(rate(coredns_cache_served_stale_total{${SEL}}[${RATE}]))`, legendFormat: 'served stale' },
      { expr: `sum(rate(coredns_cache_drops_total{${SEL}}[${RATE}]))`, legendFormat: 'dropped' },
    ],
  },
  row('Upstreams'),
  {
    title: 'Upstream latency (p99) by upstream',
    description: 'Round trip to each upstream (CoreDNS via kube-dns-upstream, resolv.conf servers).',
    type: 'timeseries',
    unit: 's',
    width: 12,
    targets: [
      {
        expr: `histogram_quantile(0.99, sum by (le, to) (rate(coredns_proxy_request_duration_seconds_bucket{${SEL}}[${RATE}])))`,
        legendFormat: '{{to}}',
      },
    ],
  },
  {
    title: 'Upstream answers by rcode',
    description: 'Answers per second from each upstream.',
    type: 'timeseries',
    unit: 'reqps',
    width: 12,
    targets: [
      {
        expr: `sum by (to, rcode) (rate(coredns_proxy_request_duration_seconds_count{${SEL}}[${RATE}]))`,
        legendFormat: '{{to}} {{rcode}}',
      },
    ],
  },
  {
    title: 'Upstream health-check failures',
    description: 'Failed health checks per upstream, and checks that found every upstream down.',
    type: 'timeseries',
    unit: 'ops',
    width: 12,
    targets: [
      {
        expr: `sum by (node, to) (rate(coredns_proxy_healthcheck_failures_total{${SEL}}[${RATE}]))`,
        legendFormat: '{{node}} {{to}}',
      },
      {
        expr: `sum by (node) (rate(coredns_forward_healthcheck_broken_total{${SEL}}[${RATE}]))`,
        legendFormat: '{{node}} all down',
      },
    ],
  },
  {
    title: 'Upstream connection reuse',
    description: 'Share of upstream queries that reused a pooled connection.',
    type: 'timeseries',
    unit: 'percentunit',
    width: 12,
    targets: [
      {
        expr: `sum by (to, proto) (rate(coredns_proxy_conn_cache_hits_total{${SEL}}[${RATE}])) / (sum by (to, proto) (rate(coredns_proxy_conn_cache_hits_total{${SEL}}[${RATE}])) + sum by (to, proto) (rate(coredns_proxy_conn_cache_misses_total{${SEL}}[${RATE}])))`,
        legendFormat: '{{to}} {{proto}}',
      },
    ],
  },
  row('Agent'),
  {
    title: 'Setup errors by type',
    description: 'coredns_nodecache_setup_errors_total increase, per node and error type.',
    type: 'timeseries',
    unit: 'none',
    width: 12,
    targets: [
      {
        expr: `sum by (node, errortype) (increase(coredns_nodecache_setup_errors_total{${SEL}}[${RATE}]))`,
        legendFormat: '{{node}} {{errortype}}',
      },
    ],
  },
  {
    title: 'Panics and rejected reloads',
    description: 'Recovered panics while serving, Corefile reloads that failed.',
    type: 'timeseries',
    unit: 'none',
    width: 12,
    targets: [
      { expr: `sum by (node) (increase(coredns_panics_total{${SEL}}[${RATE}]))`, legendFormat: '{{node}} panics' },
      { expr: `sum by (node) (increase(coredns_reload_failed_total{${SEL}}[${RATE}]))`, legendFormat: '{{node}} reload failed' },
    ],
  },
  {
    title: 'Memory per node',
    description: 'Resident set size of the agent process.',
    type: 'timeseries',
    unit: 'bytes',
    width: 12,
    targets: [{ expr: `sum by (node) (process_resident_memory_bytes{${SEL}})`, legendFormat: '{{node}}' }],
  },
  {
    title: 'CPU per node',
    description: 'CPU seconds per second used by the agent process.',
    type: 'timeseries',
    unit: 'percentunit',
    width: 12,
    targets: [{ expr: `sum by (node) (rate(process_cpu_seconds_total{${SEL}}[${RATE}]))`, legendFormat: '{{node}}' }],
  },
  {
    title: 'Versions',
    description: 'Agent version per node.',
    type: 'table',
    unit: 'none',
    width: 24,
    height: 6,
    targets: [{ expr: `count by (node, version, revision, goversion) (coredns_build_info{${SEL}})`, legendFormat: '', instant: true }],
  },
];

const DATASOURCE = { type: 'prometheus', uid: '${datasource}' };

function panelJson(spec: PanelSpec, id: number, x: number, y: number, height: number): Record<string, unknown> {
  const refIds = 'ABCDEFGHIJ';
  const fieldConfig =
    spec.type === 'timeseries'
      ? { defaults: { unit: spec.unit, custom: { drawStyle: 'line', lineWidth: 1, fillOpacity: 10, showPoints: 'never' } }, overrides: [] }
      : { defaults: { unit: spec.unit }, overrides: [] };
  const options =
    spec.type === 'timeseries'
      ? { legend: { displayMode: 'list', placement: 'bottom', showLegend: true }, tooltip: { mode: 'multi', sort: 'desc' } }
      : spec.type === 'stat'
        ? { reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false }, colorMode: 'value', graphMode: 'area' }
        : { showHeader: true };
  return {
    id,
    type: spec.type,
    title: spec.title,
    description: spec.description,
    datasource: DATASOURCE,
    gridPos: { h: height, w: spec.width, x, y },
    fieldConfig,
    options,
    ...(spec.type === 'table' ? { transformations: [{ id: 'labelsToFields', options: {} }] } : {}),
    targets: spec.targets.map((t, i) => ({
      datasource: DATASOURCE,
      refId: refIds[i],
      expr: t.expr,
      legendFormat: t.legendFormat,
      ...(t.instant === true ? { instant: true, range: false, format: 'table' } : { range: true }),
    })),
  };
}

/** The dashboard model (Grafana schemaVersion 39, Grafana 10 and later). */
export function buildDashboard(): Record<string, unknown> {
  const panels: Record<string, unknown>[] = [];
  let id = 1;
  let x = 0;
  let y = 0;
  let rowHeight = 0;
  for (const item of sections) {
    if ('row' in item) {
      if (x > 0) y += rowHeight;
      x = 0;
      rowHeight = 0;
      panels.push({ id: id++, type: 'row', title: item.title, collapsed: false, gridPos: { h: 1, w: 24, x: 0, y }, panels: [] });
      y += 1;
      continue;
    }
    const height = item.height ?? (item.type === 'stat' ? 4 : 8);
    if (x + item.width > 24) {
      y += rowHeight;
      x = 0;
      rowHeight = 0;
    }
    panels.push(panelJson(item, id++, x, y, height));
    x += item.width;
    rowHeight = Math.max(rowHeight, height);
  }
  return {
    title: 'node-local-dns',
    uid: 'node-local-dns',
    description: 'NodeLocal DNSCache (node-local-dns): queries, cache, upstreams and agent health per node.',
    tags: ['dns', 'kubernetes', 'node-local-dns'],
    editable: true,
    graphTooltip: 1,
    refresh: '30s',
    schemaVersion: 39,
    version: 1,
    time: { from: 'now-6h', to: 'now' },
    timezone: 'browser',
    annotations: { list: [] },
    links: [],
    templating: {
      list: [
        {
          name: 'datasource',
          label: 'Data source',
          type: 'datasource',
          query: 'prometheus',
          current: {},
          hide: 0,
          refresh: 1,
        },
        {
          name: 'job',
          label: 'Job',
          type: 'query',
          datasource: DATASOURCE,
          query: { query: 'label_values(coredns_build_info, job)', refId: 'job' },
          definition: 'label_values(coredns_build_info, job)',
          regex: '',
          current: { text: 'node-local-dns', value: 'node-local-dns' },
          includeAll: false,
          multi: false,
          refresh: 2,
          sort: 1,
          hide: 0,
        },
        {
          name: 'node',
          label: 'Node',
          type: 'query',
          datasource: DATASOURCE,
          query: { query: 'label_values(coredns_build_info{job=~"$job"}, node)', refId: 'node' },
          definition: 'label_values(coredns_build_info{job=~"$job"}, node)',
          regex: '',
          current: { text: 'All', value: '$__all' },
          includeAll: true,
          allValue: '.*',
          multi: true,
          refresh: 2,
          sort: 1,
          hide: 0,
        },
      ],
    },
    panels,
  };
}

export function dashboardJson(): string {
  return `${JSON.stringify(buildDashboard(), null, 2)}\n`;
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const text = dashboardJson();
  writeFileSync(DASHBOARD_PATH, text);
  writeFileSync(CHART_DASHBOARD_PATH, text);
}
