/**
 * Every PromQL query of deploy/monitoring: PrometheusRule expressions, Grafana panel targets
 * and Grafana variable queries (label_values(SELECTOR, LABEL) → SELECTOR, LABEL used).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseManifests, ROOT } from './k8s.ts';

export const RULES_PATH = join(ROOT, 'deploy/monitoring/prometheusrule.yaml');
export const SERVICEMONITOR_PATH = join(ROOT, 'deploy/monitoring/servicemonitor.yaml');
export const DASHBOARD_JSON_PATH = join(ROOT, 'deploy/monitoring/grafana-dashboard.json');

export interface Query {
  /** Where it comes from, for messages. */
  source: string;
  expr: string;
  /** Labels the query uses outside PromQL (Grafana label_values). */
  extraLabels: string[];
}

export interface Rule {
  alert: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export function loadRules(): Rule[] {
  const [pr] = parseManifests(readFileSync(RULES_PATH, 'utf8'), RULES_PATH);
  const spec = (pr as unknown as { spec: { groups: Array<{ name: string; rules: Rule[] }> } }).spec;
  return spec.groups.flatMap((g) => g.rules);
}

export interface DashboardTarget {
  refId: string;
  expr: string;
  legendFormat?: string;
  datasource?: { type: string; uid: string };
}

export interface DashboardPanel {
  id: number;
  type: string;
  title: string;
  gridPos: { h: number; w: number; x: number; y: number };
  datasource?: { type: string; uid: string };
  targets?: DashboardTarget[];
}

export interface Dashboard {
  uid: string;
  title: string;
  schemaVersion: number;
  panels: DashboardPanel[];
  templating: { list: Array<{ name: string; type: string; query?: string | { query: string } }> };
}

export function loadDashboard(): Dashboard {
  return JSON.parse(readFileSync(DASHBOARD_JSON_PATH, 'utf8')) as Dashboard;
}

export function ruleQueries(): Query[] {
  return loadRules().map((r) => ({ source: `alert ${r.alert}`, expr: r.expr, extraLabels: [] }));
}

export function dashboardQueries(dash: Dashboard = loadDashboard()): Query[] {
  const out: Query[] = [];
  for (const p of dash.panels) {
    for (const t of p.targets ?? []) out.push({ source: `panel "${p.title}" ${t.refId}`, expr: t.expr, extraLabels: [] });
  }
  for (const v of dash.templating.list) {
    if (v.type !== 'query' || v.query === undefined) continue;
    const q = typeof v.query === 'string' ? v.query : v.query.query;
    const m = /^label_values\((.+),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)$/.exec(q);
    if (m === null) throw new Error(`variable ${v.name}: unsupported query ${q}`);
    out.push({ source: `variable ${v.name}`, expr: m[1]!, extraLabels: [m[2]!] });
  }
  return out;
}
