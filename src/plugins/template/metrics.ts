/**
 * The template plugin's counters, with CoreDNS's names, help texts and labels
 * (plugin/template/metrics.go):
 *   coredns_template_matches_total{server, zone, view, class, type}
 *   coredns_template_template_failures_total{server, zone, view, class, type, section, template}
 *   coredns_template_rr_failures_total{server, zone, view, class, type, section, template}
 * As CoreDNS's counter vectors they are process-wide and outlive reloads: one store per thread,
 * a series appears at its first increment, exported by `collectTemplateGlobal` (the workers'
 * snapshots add up). `view` is always "" (node-local-dns has no view plugin); `template` is
 * the template's source text, as CoreDNS's `Tree.Root.String()` gives it.
 */
import type { MetricsOut } from '../../plugin.ts';

const TEMPLATE_METRICS = {
  matches: { name: 'coredns_template_matches_total', help: 'Counter of template regex matches.' },
  templateFailures: { name: 'coredns_template_template_failures_total', help: 'Counter of go template failures.' },
  rrFailures: { name: 'coredns_template_rr_failures_total', help: 'Counter of mis-templated RRs.' },
} as const;

interface Series {
  labels: Record<string, string>;
  value: number;
}

class CounterVec {
  readonly series = new Map<string, Series>();

  inc(labels: Record<string, string>): void {
    const key = JSON.stringify(labels);
    const s = this.series.get(key);
    if (s === undefined) this.series.set(key, { labels, value: 1 });
    else s.value++;
  }

  collect(out: MetricsOut, m: { name: string; help: string }): void {
    if (this.series.size === 0) return;
    const f = out.family(m.name, m.help, 'counter');
    for (const s of this.series.values()) f.add(s.labels, s.value);
  }
}

export const templateMetrics = {
  matches: new CounterVec(),
  templateFailures: new CounterVec(),
  rrFailures: new CounterVec(),
};

export function countMatch(server: string, zone: string, cls: string, type: string): void {
  templateMetrics.matches.inc({ server, zone, view: '', class: cls, type });
}

export function countFailure(rr: boolean, server: string, zone: string, cls: string, type: string, section: string, template: string): void {
  (rr ? templateMetrics.rrFailures : templateMetrics.templateFailures).inc({ server, zone, view: '', class: cls, type, section, template });
}

export function collectTemplateGlobal(out: MetricsOut): void {
  templateMetrics.matches.collect(out, TEMPLATE_METRICS.matches);
  templateMetrics.templateFailures.collect(out, TEMPLATE_METRICS.templateFailures);
  templateMetrics.rrFailures.collect(out, TEMPLATE_METRICS.rrFailures);
}
