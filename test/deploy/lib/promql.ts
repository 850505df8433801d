/**
 * PromQL analysis with Prometheus's own grammar (@prometheus-io/lezer-promql): syntax errors,
 * metric names of every selector, label names in matchers and in by()/on()/ignoring() clauses.
 * Also a parser for the Prometheus text exposition format (what /metrics returns).
 */
import { parser } from '@prometheus-io/lezer-promql';
import type { SyntaxNode } from '@lezer/common';

export interface SelectorUse {
  metric: string;
  /** Label names in the selector's matchers. */
  labels: string[];
}

export interface GroupingUse {
  /** by/without/on/ignoring */
  clause: string;
  labels: string[];
  /** Metrics the clause's expression reads. */
  metrics: string[];
}

export interface PromqlAnalysis {
  selectors: SelectorUse[];
  groupings: GroupingUse[];
  /** Positions and text of syntax errors (empty when the expression is valid). */
  errors: string[];
}

/** Grafana's built-in interval variables, replaced by durations so the text is PromQL. */
export function substituteGrafanaVariables(expr: string): string {
  return expr.replaceAll('$__rate_interval', '5m').replaceAll('$__interval', '1m').replaceAll('$__range', '1h');
}

function text(src: string, node: SyntaxNode): string {
  return src.slice(node.from, node.to);
}

function childrenNamed(node: SyntaxNode, name: string): SyntaxNode[] {
  const out: SyntaxNode[] = [];
  for (let c = node.firstChild; c !== null; c = c.nextSibling) if (c.name === name) out.push(c);
  return out;
}

function descendants(node: SyntaxNode, name: string): SyntaxNode[] {
  const out: SyntaxNode[] = [];
  const cursor = node.cursor();
  const walk = (): void => {
    do {
      if (cursor.name === name) out.push(cursor.node);
      if (cursor.firstChild()) {
        walk();
        cursor.parent();
      }
    } while (cursor.nextSibling());
  };
  if (cursor.firstChild()) walk();
  return out;
}

function selectorMetric(src: string, sel: SyntaxNode): SelectorUse | null {
  const ident = childrenNamed(sel, 'Identifier')[0];
  const labels: string[] = [];
  let nameFromMatcher: string | null = null;
  for (const matchers of childrenNamed(sel, 'LabelMatchers')) {
    for (const m of [...descendants(matchers, 'UnquotedLabelMatcher'), ...descendants(matchers, 'QuotedLabelMatcher')]) {
      const ln = childrenNamed(m, 'LabelName')[0];
      if (ln === undefined) continue;
      const label = text(src, ln);
      if (label === '__name__') {
        const lit = childrenNamed(m, 'StringLiteral')[0];
        if (lit !== undefined) nameFromMatcher = JSON.parse(text(src, lit)) as string;
      } else {
        labels.push(label);
      }
    }
    for (const q of childrenNamed(matchers, 'QuotedLabelName')) {
      const lit = childrenNamed(q, 'StringLiteral')[0];
      if (lit !== undefined) nameFromMatcher = JSON.parse(text(src, lit)) as string;
    }
  }
  const metric = ident !== undefined ? text(src, ident) : nameFromMatcher;
  return metric === null ? null : { metric, labels };
}

/** Parses one expression (Grafana variables allowed) and lists what it reads. */
export function analyzePromql(rawExpr: string): PromqlAnalysis {
  const src = substituteGrafanaVariables(rawExpr);
  const tree = parser.parse(src);
  const result: PromqlAnalysis = { selectors: [], groupings: [], errors: [] };
  tree.iterate({
    enter(ref) {
      if (ref.type.isError) result.errors.push(`error at ${ref.from}: ${JSON.stringify(src.slice(Math.max(0, ref.from - 20), ref.to + 20))}`);
    },
  });
  const top = tree.topNode;
  for (const sel of descendants(top, 'VectorSelector')) {
    const use = selectorMetric(src, sel);
    if (use !== null) result.selectors.push(use);
  }
  const metricsUnder = (node: SyntaxNode): string[] => [
    ...new Set(
      descendants(node, 'VectorSelector')
        .map((s) => selectorMetric(src, s)?.metric)
        .filter((m): m is string => m !== undefined),
    ),
  ];
  for (const agg of descendants(top, 'AggregateExpr')) {
    for (const mod of childrenNamed(agg, 'AggregateModifier')) {
      const clause = mod.firstChild === null ? '' : text(src, mod.firstChild);
      const labels = descendants(mod, 'LabelName').map((l) => text(src, l));
      result.groupings.push({ clause, labels, metrics: metricsUnder(agg) });
    }
  }
  for (const bin of descendants(top, 'BinaryExpr')) {
    for (const mm of childrenNamed(bin, 'MatchingModifierClause')) {
      const clause = mm.firstChild === null ? '' : text(src, mm.firstChild);
      const labels = descendants(mm, 'LabelName').map((l) => text(src, l));
      result.groupings.push({ clause, labels, metrics: metricsUnder(bin) });
    }
  }
  return result;
}

export interface ExposedMetric {
  /** Declared TYPE (counter, gauge, histogram, summary, untyped). */
  type: string;
  /** Label names seen on samples of this series name. */
  labels: Set<string>;
  /** True when at least one sample line was present. */
  sampled: boolean;
}

function parseLabels(block: string): string[] {
  const names: string[] = [];
  let i = 0;
  while (i < block.length) {
    while (block[i] === ',' || block[i] === ' ') i++;
    if (i >= block.length) break;
    const eq = block.indexOf('=', i);
    if (eq < 0) throw new Error(`bad label block: ${block}`);
    names.push(block.slice(i, eq).trim());
    i = eq + 1;
    if (block[i] !== '"') throw new Error(`bad label value in: ${block}`);
    i++;
    while (i < block.length && block[i] !== '"') i += block[i] === '\\' ? 2 : 1;
    i++;
  }
  return names;
}

/**
 * Parses the text exposition format into series names (histograms and summaries also under
 * their _bucket/_sum/_count names). Throws on a malformed line.
 */
export function parseExposition(body: string): Map<string, ExposedMetric> {
  const out = new Map<string, ExposedMetric>();
  const get = (name: string, type: string): ExposedMetric => {
    let m = out.get(name);
    if (m === undefined) {
      m = { type, labels: new Set(), sampled: false };
      out.set(name, m);
    }
    return m;
  };
  const types = new Map<string, string>();
  for (const line of body.split('\n')) {
    if (line === '') continue;
    const typeLine = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (\w+)$/.exec(line);
    if (typeLine !== null) {
      const [, name, type] = typeLine as unknown as [string, string, string];
      types.set(name, type);
      if (type === 'histogram') for (const s of ['_bucket', '_sum', '_count']) get(name + s, type);
      else if (type === 'summary') for (const s of ['', '_sum', '_count']) get(name + s, type);
      else get(name, type);
      continue;
    }
    if (line.startsWith('#')) continue;
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+\S+(\s+\d+)?$/.exec(line);
    if (sample === null) throw new Error(`malformed exposition line: ${line}`);
    const name = sample[1]!;
    const base = name.replace(/_(bucket|sum|count)$/, '');
    const m = get(name, types.get(name) ?? types.get(base) ?? 'untyped');
    m.sampled = true;
    for (const l of parseLabels(sample[3] ?? '')) m.labels.add(l);
  }
  return out;
}
