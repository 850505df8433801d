/**
 * Worker-neutral metric snapshots: plain objects (structured-clone safe, so they cross
 * `worker_threads` message ports as they are) that every collector writes into at scrape time,
 * that snapshots of several workers merge into, and that the exposition formats.
 *
 * Merge rules, per family (`merge`):
 *  - 'sum': counters, histograms and per-worker gauges (cache entries of each worker's own
 *    cache) add up sample by sample (same label set);
 *  - 'max': process-wide gauges every worker reports the same way (build info, plugin enabled)
 *    take the largest value.
 * A family's type, help and buckets must agree across snapshots; the first one seen wins.
 */

export type MetricType = 'counter' | 'gauge' | 'histogram';
export type MergeRule = 'sum' | 'max';

export interface SampleSnapshot {
  /** Label names in the order they are printed (CoreDNS prints them sorted by name). */
  labels: Record<string, string>;
  /** Counter/gauge value; for histograms the observation count. */
  value: number;
  /** Histograms: non-cumulative counts per bound, then the +Inf overflow. */
  buckets?: number[];
  /** Histograms: sum of observations. */
  sum?: number;
}

export interface FamilySnapshot {
  name: string;
  help: string;
  type: MetricType;
  merge: MergeRule;
  /** Histograms: bucket upper bounds (without +Inf). */
  bounds?: number[];
  samples: SampleSnapshot[];
}

export interface MetricsSnapshot {
  families: FamilySnapshot[];
}

/** Stable identity of a label set. */
function labelKey(labels: Record<string, string>): string {
  return JSON.stringify(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** Orders label names alphabetically, as client_golang prints them. */
export function sortedLabels(labels: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of Object.keys(labels).sort()) out[k] = labels[k]!;
  return out;
}

export class FamilyWriter {
  readonly family: FamilySnapshot;
  private readonly index = new Map<string, SampleSnapshot>();

  constructor(family: FamilySnapshot) {
    this.family = family;
    for (const s of family.samples) this.index.set(labelKey(s.labels), s);
  }

  /** Adds value to the sample with these labels (creating it at 0), or takes the max for 'max' families. */
  add(labels: Record<string, string>, value: number): void {
    const key = labelKey(labels);
    const s = this.index.get(key);
    if (s === undefined) {
      const n: SampleSnapshot = { labels: sortedLabels(labels), value };
      this.index.set(key, n);
      this.family.samples.push(n);
    } else if (this.family.merge === 'max') {
      s.value = Math.max(s.value, value);
    } else {
      s.value += value;
    }
  }

  /** Adds a histogram's non-cumulative bucket counts (+Inf last) and sum. */
  addHistogram(labels: Record<string, string>, buckets: ArrayLike<number>, sum: number): void {
    const bounds = this.family.bounds ?? [];
    if (buckets.length !== bounds.length + 1) {
      throw new RangeError(`${this.family.name}: ${buckets.length} bucket counts for ${bounds.length} bounds`);
    }
    let count = 0;
    for (let i = 0; i < buckets.length; i++) count += buckets[i]!;
    const key = labelKey(labels);
    const s = this.index.get(key);
    if (s === undefined) {
      const n: SampleSnapshot = { labels: sortedLabels(labels), value: count, buckets: Array.from(buckets), sum };
      this.index.set(key, n);
      this.family.samples.push(n);
      return;
    }
    const b = s.buckets!;
    for (let i = 0; i < b.length; i++) b[i]! += buckets[i]!;
    s.value += count;
    s.sum = (s.sum ?? 0) + sum;
  }
}

/** Collects families for one snapshot. */
export class SnapshotBuilder {
  private readonly families = new Map<string, FamilyWriter>();

  family(name: string, help: string, type: MetricType, opts: { merge?: MergeRule; bounds?: readonly number[] } = {}): FamilyWriter {
    let w = this.families.get(name);
    if (w === undefined) {
      const f: FamilySnapshot = { name, help, type, merge: opts.merge ?? 'sum', samples: [] };
      if (type === 'histogram') f.bounds = [...(opts.bounds ?? [])];
      w = new FamilyWriter(f);
      this.families.set(name, w);
    }
    return w;
  }

  /** Merges a whole snapshot in (another worker's). */
  merge(snapshot: MetricsSnapshot): void {
    for (const f of snapshot.families) {
      const w = this.family(f.name, f.help, f.type, { merge: f.merge, bounds: f.bounds });
      for (const s of f.samples) {
        if (f.type === 'histogram' && s.buckets) w.addHistogram(s.labels, s.buckets, s.sum ?? 0);
        else w.add(s.labels, s.value);
      }
    }
  }

  build(): MetricsSnapshot {
    return { families: [...this.families.values()].map((w) => w.family) };
  }
}

/** Merges per-worker snapshots into one (see the merge rules above). */
export function mergeSnapshots(snapshots: readonly MetricsSnapshot[]): MetricsSnapshot {
  const b = new SnapshotBuilder();
  for (const s of snapshots) b.merge(s);
  return b.build();
}
