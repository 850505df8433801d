/**
 * The metrics hub: everything the `prometheus` plugin serves, gathered at scrape time.
 *
 *  - Collectors write samples into a SnapshotBuilder: the zone stats (coredns_dns_*), the
 *    process-wide metrics (build info, health, reload) and the engine collector (plugin
 *    enabled, cache, forward). Nothing is built before a scrape.
 *  - `snapshot()` is this thread's view as a plain object. With worker threads, each worker
 *    answers a request for its `snapshot()` and the main thread installs
 *    `setRemoteSnapshots(() => Promise<MetricsSnapshot[]>)`; `gather()` merges all of them
 *    (mergeSnapshots: counters and histograms add up, build info and plugin_enabled take the
 *    max).
 *  - `render()` formats the merged snapshot with prom-client's text exposition, together
 *    with prom-client's default process metrics (process_*, nodejs_*) of this process.
 *    Families are sorted by name, labels by name, samples by label values (client_golang's
 *    order); families without samples are left out, as client_golang does for vectors.
 *  - prom-client is loaded on the first `render()`, not before: it costs ~0.1 s of CPU and
 *    ~14 MiB of RSS per thread, which start-up and the serving workers (which never render)
 *    should not pay. Its default metrics therefore count from the first scrape on.
 */
import type { Metric, Registry } from 'prom-client';
import { SnapshotBuilder, mergeSnapshots, type FamilySnapshot, type MetricsSnapshot } from './snapshot.ts';
import { ZoneStatsRegistry, zoneStatsRegistry } from './zone-stats.ts';
import { ProcessMetrics } from './process-metrics.ts';
import { withLegacyFamilies } from './legacy.ts';
import { leLabel } from './labels.ts';

export interface Collector {
  collect(out: SnapshotBuilder): void;
}

export interface RenderOptions {
  /** Also serve the CoreDNS 1.6-era names (see legacy.ts). */
  legacy?: boolean;
}

interface PromValue {
  labels: Record<string, string | number>;
  value: number;
  metricName?: string;
}

function compareSamples(a: Record<string, string>, b: Record<string, string>): number {
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  const n = Math.min(ka.length, kb.length);
  for (let i = 0; i < n; i++) {
    if (ka[i] !== kb[i]) return ka[i]! < kb[i]! ? -1 : 1;
    const va = a[ka[i]!]!;
    const vb = b[kb[i]!]!;
    if (va !== vb) return va < vb ? -1 : 1;
  }
  return ka.length - kb.length;
}

/** A family as a prom-client metric object (what Registry formats). */
function toPromMetric(f: FamilySnapshot): Metric<string> {
  const values: PromValue[] = [];
  const samples = [...f.samples].sort((a, b) => compareSamples(a.labels, b.labels));
  for (const s of samples) {
    if (f.type !== 'histogram') {
      values.push({ labels: s.labels, value: s.value });
      continue;
    }
    const bounds = f.bounds ?? [];
    const buckets = s.buckets ?? [];
    let cum = 0;
    for (let i = 0; i < bounds.length; i++) {
      cum += buckets[i] ?? 0;
      values.push({ metricName: `${f.name}_bucket`, labels: { ...s.labels, le: leLabel(bounds[i]!) }, value: cum });
    }
    values.push({ metricName: `${f.name}_bucket`, labels: { ...s.labels, le: '+Inf' }, value: s.value });
    values.push({ metricName: `${f.name}_sum`, labels: s.labels, value: s.sum ?? 0 });
    values.push({ metricName: `${f.name}_count`, labels: s.labels, value: s.value });
  }
  const obj = { name: f.name, help: f.help, type: f.type, aggregator: 'sum', values };
  return { ...obj, get: async () => obj } as unknown as Metric<string>;
}

export class MetricsHub {
  readonly zoneStats: ZoneStatsRegistry;
  readonly process: ProcessMetrics;
  private readonly collectors = new Set<Collector>();
  private remote: (() => Promise<MetricsSnapshot[]>) | null = null;
  private readonly wantDefaultMetrics: boolean;
  /** prom-client's default metrics, registered on the first render (see the module comment). */
  private defaultMetrics: Registry | null = null;

  constructor(opts: { zoneStats?: ZoneStatsRegistry; process?: ProcessMetrics; defaultMetrics?: boolean } = {}) {
    this.zoneStats = opts.zoneStats ?? new ZoneStatsRegistry();
    this.process = opts.process ?? new ProcessMetrics();
    this.wantDefaultMetrics = opts.defaultMetrics ?? true;
  }

  /** Adds a collector; returns the function that removes it. */
  addCollector(c: Collector): () => void {
    this.collectors.add(c);
    return () => this.collectors.delete(c);
  }

  /** Installs the source of the other workers' snapshots (null: this thread only). */
  setRemoteSnapshots(fn: (() => Promise<MetricsSnapshot[]>) | null): void {
    this.remote = fn;
  }

  /** This thread's samples, as a plain structured-clone-safe object. */
  snapshot(): MetricsSnapshot {
    const b = new SnapshotBuilder();
    this.process.collect(b);
    this.zoneStats.collect(b);
    for (const c of this.collectors) c.collect(b);
    return b.build();
  }

  /** This thread's snapshot merged with the workers' (when a remote source is installed). */
  async gather(): Promise<MetricsSnapshot> {
    const local = this.snapshot();
    if (this.remote === null) return local;
    return mergeSnapshots([local, ...(await this.remote())]);
  }

  /** prom-client's Registry.PROMETHEUS_CONTENT_TYPE (a constant, so prom-client need not be loaded). */
  get contentType(): string {
    return PROMETHEUS_CONTENT_TYPE;
  }

  /** The Prometheus text exposition (format 0.0.4). */
  async render(opts: RenderOptions = {}): Promise<string> {
    const { Registry, collectDefaultMetrics } = await import('prom-client');
    if (this.wantDefaultMetrics && this.defaultMetrics === null) {
      this.defaultMetrics = new Registry();
      collectDefaultMetrics({ register: this.defaultMetrics });
    }
    let snap = await this.gather();
    if (opts.legacy) snap = withLegacyFamilies(snap);
    const metrics: Metric<string>[] = [];
    for (const f of snap.families) if (f.samples.length > 0) metrics.push(toPromMetric(f));
    if (this.defaultMetrics) metrics.push(...(this.defaultMetrics.getMetricsAsArray() as unknown as Metric<string>[]));
    metrics.sort((a, b) => (nameOf(a) < nameOf(b) ? -1 : nameOf(a) > nameOf(b) ? 1 : 0));
    const reg = new Registry();
    for (const m of metrics) reg.registerMetric(m);
    // prom-client prints NaN (event loop percentiles before any sample) as `Nan`; the format's spelling is `NaN`.
    return (await reg.metrics()).replace(/ Nan$/gm, ' NaN');
  }
}

const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

function nameOf(m: Metric<string>): string {
  return (m as unknown as { name: string }).name;
}

let defaultHub: MetricsHub | null = null;

/** The process's hub (created on first use, with prom-client's default process metrics). */
export function metricsHub(): MetricsHub {
  defaultHub ??= new MetricsHub({ zoneStats: zoneStatsRegistry });
  return defaultHub;
}
