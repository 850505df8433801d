/**
 * deploy/monitoring: ServiceMonitor and PrometheusRule validate against the Prometheus
 * Operator CRD schemas; every PromQL query (alerts, dashboard panels, dashboard variables)
 * parses with Prometheus's grammar and reads only series and labels node-local-dns exports
 * (test/deploy/lib/contract.ts) or Prometheus adds; the dashboard JSON is the generator's
 * output and covers what operators need; thresholds agree with the manifests.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { CHART_DASHBOARD_PATH, DASHBOARD_PATH, dashboardJson } from '../../deploy/monitoring/dashboard.ts';
import { STANDBY_TEMPLATE_PATH, TEMPLATE_PATH } from '../../deploy/render.ts';
import { CONTRACT, SYNTHETIC_SERIES, TARGET_LABELS } from './lib/contract.ts';
import { findOne, parseManifests, quantityBytes, validateObject, type DaemonSetShape, type K8sObject, type ServiceShape } from './lib/k8s.ts';
import { RULES_PATH, SERVICEMONITOR_PATH, dashboardQueries, loadDashboard, loadRules, ruleQueries, type Query, type Rule } from './lib/monitoring.ts';
import { analyzePromql } from './lib/promql.ts';

const manifests = parseManifests(readFileSync(TEMPLATE_PATH, 'utf8'), 'template');

/** Problems of one query against the export contract (empty when fine). */
function contractProblems(q: Query): string[] {
  const problems: string[] = [];
  const a = analyzePromql(q.expr);
  for (const e of a.errors) problems.push(`${q.source}: PromQL syntax: ${e}`);
  if (a.selectors.length === 0) problems.push(`${q.source}: reads no series`);
  for (const sel of a.selectors) {
    if (SYNTHETIC_SERIES.has(sel.metric)) continue;
    const labels = CONTRACT.get(sel.metric);
    if (labels === undefined) {
      problems.push(`${q.source}: ${sel.metric} is not exported`);
      continue;
    }
    for (const l of sel.labels) {
      if (!labels.includes(l) && !TARGET_LABELS.has(l)) problems.push(`${q.source}: ${sel.metric} has no label ${l}`);
    }
  }
  for (const g of [...a.groupings, { clause: 'label_values', labels: q.extraLabels, metrics: a.selectors.map((s) => s.metric) }]) {
    for (const l of g.labels) {
      if (TARGET_LABELS.has(l)) continue;
      const carriers = g.metrics.filter((m) => CONTRACT.get(m)?.includes(l));
      if (carriers.length === 0) problems.push(`${q.source}: ${g.clause} (${l}) but no metric in scope has ${l}`);
    }
  }
  return problems;
}

describe('the contract checker itself', () => {
  test('flags unknown series, unknown labels, bad groupings and syntax errors', () => {
    const src = 'test';
    assert.deepEqual(contractProblems({ source: src, expr: 'sum by (zone) (rate(coredns_dns_requests_total[5m]))', extraLabels: [] }), []);
    assert.equal(contractProblems({ source: src, expr: 'rate(coredns_dns_request_total[5m])', extraLabels: [] }).length, 1);
    assert.equal(contractProblems({ source: src, expr: 'coredns_cache_misses_total{type="denial"}', extraLabels: [] }).length, 1);
    assert.equal(contractProblems({ source: src, expr: 'sum by (rcode) (coredns_cache_entries)', extraLabels: [] }).length, 1);
    assert.ok(contractProblems({ source: src, expr: 'sum(rate(coredns_panics_total[5m]) ', extraLabels: [] }).length >= 1);
    assert.deepEqual(contractProblems({ source: src, expr: 'up{job="x"} == 0', extraLabels: [] }), []);
  });
});

describe('deploy/monitoring/servicemonitor.yaml', () => {
  const [sm] = parseManifests(readFileSync(SERVICEMONITOR_PATH, 'utf8'), 'sm') as [
    K8sObject & {
      spec: {
        jobLabel: string;
        namespaceSelector: { matchNames: string[] };
        selector: { matchLabels: Record<string, string> };
        endpoints: Array<{ port: string; relabelings?: Array<{ targetLabel?: string; sourceLabels?: string[] }> }>;
      };
    },
  ];

  test('validates against the ServiceMonitor CRD schema', () => {
    validateObject(sm);
  });

  test('selects the metrics Service of deploy/kubernetes and scrapes both of its ports', () => {
    const svc = findOne<ServiceShape>(
      manifests.filter((o) => o.kind === 'Service' && o.metadata.name === 'node-local-dns'),
      'Service',
    );
    assert.ok(sm.spec.namespaceSelector.matchNames.includes(svc.metadata.namespace!));
    for (const [k, v] of Object.entries(sm.spec.selector.matchLabels)) assert.equal(svc.metadata.labels?.[k], v);
    assert.deepEqual(sm.spec.endpoints.map((e) => e.port).sort(), svc.spec.ports.map((p) => p.name).sort());
    // job label = the Service's k8s-app label, which the alerts and dashboard select on.
    assert.equal(svc.metadata.labels?.[sm.spec.jobLabel], 'node-local-dns');
    for (const e of sm.spec.endpoints) {
      assert.ok(
        e.relabelings?.some((r) => r.targetLabel === 'node' && r.sourceLabels?.[0] === '__meta_kubernetes_pod_node_name'),
        `${e.port} adds node`,
      );
    }
  });

  test('selects the standby metrics Service too, under the same job, and scrapes both of its ports', () => {
    const standby = parseManifests(readFileSync(STANDBY_TEMPLATE_PATH, 'utf8'), 'standby');
    const svc = findOne<ServiceShape>(standby, 'Service', 'node-local-dns-standby');
    const ds = findOne<DaemonSetShape>(standby, 'DaemonSet');
    assert.ok(sm.spec.namespaceSelector.matchNames.includes(svc.metadata.namespace!));
    for (const [k, v] of Object.entries(sm.spec.selector.matchLabels)) assert.equal(svc.metadata.labels?.[k], v);
    assert.equal(svc.metadata.labels?.[sm.spec.jobLabel], 'node-local-dns');
    assert.deepEqual(sm.spec.endpoints.map((e) => e.port).sort(), svc.spec.ports.map((p) => p.name).sort());
    // It selects the standby pods, not the primary's (those are behind node-local-dns).
    const primaryPods = findOne<DaemonSetShape>(manifests, 'DaemonSet').spec.template.metadata.labels;
    const selects = (labels: Record<string, string>): boolean => Object.entries(svc.spec.selector ?? {}).every(([k, v]) => labels[k] === v);
    assert.ok(selects(ds.spec.template.metadata.labels));
    assert.ok(!selects(primaryPods));
  });
});

describe('deploy/monitoring/prometheusrule.yaml', () => {
  const rules = loadRules();

  test('validates against the PrometheusRule CRD schema', () => {
    validateObject(parseManifests(readFileSync(RULES_PATH, 'utf8'), 'pr')[0]!);
  });

  test('every expression parses and reads only exported series and labels', () => {
    assert.deepEqual(ruleQueries().flatMap(contractProblems), []);
  });

  test('every alert is named once, has a severity and explains itself', () => {
    const names = rules.map((r) => r.alert);
    assert.equal(new Set(names).size, names.length);
    for (const r of rules) {
      assert.match(r.alert, /^NodeLocalDNS[A-Z][A-Za-z]+$/);
      assert.ok(['warning', 'critical'].includes(r.labels?.severity ?? ''), `${r.alert} severity`);
      assert.ok(r.annotations?.summary && r.annotations.description, `${r.alert} annotations`);
      assert.match(r.expr, /job="node-local-dns"/, `${r.alert} selects the job`);
      if (r.for !== undefined) assert.match(r.for, /^\d+[smh]$/);
    }
  });

  test('covers: down, SERVFAIL ratio, upstream health checks, cache hit ratio, setup errors, memory', () => {
    const byMetric = (m: string): Rule[] => rules.filter((r) => analyzePromql(r.expr).selectors.some((s) => s.metric === m));
    assert.ok(byMetric('up').length > 0);
    assert.ok(byMetric('coredns_dns_responses_total').some((r) => /rcode="SERVFAIL"/.test(r.expr)));
    assert.ok(byMetric('coredns_proxy_healthcheck_failures_total').length > 0);
    assert.ok(byMetric('coredns_cache_hits_total').some((r) => /offset/.test(r.expr)));
    assert.ok(byMetric('coredns_nodecache_setup_errors_total').length > 0);
    assert.ok(byMetric('process_resident_memory_bytes').length > 0);
  });

  test('the memory threshold is 90% of the DaemonSet memory limit', () => {
    const ds = findOne<DaemonSetShape>(manifests, 'DaemonSet');
    const limit = quantityBytes(ds.spec.template.spec.containers[0]!.resources!.limits!.memory!);
    const rule = rules.find((r) => r.alert === 'NodeLocalDNSMemoryNearLimit');
    const m = /> ([0-9.]+) \* (\d+)\s*$/.exec(rule?.expr ?? '');
    assert.ok(m, rule?.expr);
    assert.equal(Number(m[2]), limit);
    assert.equal(Number(m[1]), 0.9);
  });
});

describe('deploy/monitoring/grafana-dashboard.json', () => {
  const dash = loadDashboard();

  test('is the output of deploy/monitoring/dashboard.ts, and the chart holds the same file', () => {
    const generated = dashboardJson();
    assert.equal(readFileSync(DASHBOARD_PATH, 'utf8'), generated, 'run: node deploy/monitoring/dashboard.ts');
    assert.equal(readFileSync(CHART_DASHBOARD_PATH, 'utf8'), generated, 'run: node deploy/monitoring/dashboard.ts');
  });

  test('every panel query and variable query parses and reads only exported series and labels', () => {
    const queries = dashboardQueries(dash);
    assert.ok(queries.length > 20);
    assert.deepEqual(queries.flatMap(contractProblems), []);
  });

  test('panels: unique ids, on the 24-column grid without overlap, Prometheus data source variable', () => {
    const ids = dash.panels.map((p) => p.id);
    assert.equal(new Set(ids).size, ids.length);
    const cells = new Set<string>();
    for (const p of dash.panels) {
      const g = p.gridPos;
      assert.ok(g.x >= 0 && g.w > 0 && g.x + g.w <= 24, `${p.title} inside the grid`);
      for (let x = g.x; x < g.x + g.w; x++) {
        for (let y = g.y; y < g.y + g.h; y++) {
          const cell = `${x},${y}`;
          assert.ok(!cells.has(cell), `${p.title} overlaps another panel at ${cell}`);
          cells.add(cell);
        }
      }
      if (p.type === 'row') continue;
      assert.deepEqual(p.datasource, { type: 'prometheus', uid: '${datasource}' });
      const refIds = (p.targets ?? []).map((t) => t.refId);
      assert.ok(refIds.length > 0, `${p.title} has queries`);
      assert.equal(new Set(refIds).size, refIds.length);
    }
    const vars = dash.templating.list.map((v) => `${v.name}:${v.type}`);
    assert.deepEqual(vars, ['datasource:datasource', 'job:query', 'node:query']);
  });

  test('covers QPS by zone and type, rcodes, cache hit ratio and size, upstream latency, setup errors, memory and CPU per node', () => {
    const analyses = dashboardQueries(dash).map((q) => ({ q, a: analyzePromql(q.expr) }));
    const has = (metric: string, groupBy?: string): boolean =>
      analyses.some(({ a }) => a.selectors.some((s) => s.metric === metric) && (groupBy === undefined || a.groupings.some((g) => g.labels.includes(groupBy))));
    assert.ok(has('coredns_dns_requests_total', 'zone'), 'QPS by zone');
    assert.ok(has('coredns_dns_requests_total', 'type'), 'QPS by type');
    assert.ok(has('coredns_dns_responses_total', 'rcode'), 'rcodes');
    assert.ok(
      analyses.some(({ a }) => ['coredns_cache_hits_total', 'coredns_cache_requests_total'].every((m) => a.selectors.some((s) => s.metric === m))),
      'hit ratio',
    );
    assert.ok(has('coredns_cache_entries'), 'cache size');
    assert.ok(has('coredns_proxy_request_duration_seconds_bucket', 'to'), 'upstream latency by upstream');
    assert.ok(has('coredns_nodecache_setup_errors_total', 'errortype'), 'setup errors');
    assert.ok(has('process_resident_memory_bytes', 'node'), 'memory per node');
    assert.ok(has('process_cpu_seconds_total', 'node'), 'CPU per node');
  });
});
