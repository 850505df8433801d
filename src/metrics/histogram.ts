/**
 * Fixed-bucket histograms stored in typed arrays, observed without allocating.
 *
 * Layout: `counts[i]` counts observations v with bounds[i-1] < v <= bounds[i] (client_golang's
 * `le` semantics); `counts[bounds.length]` is the overflow (+Inf only). Counts are NOT
 * cumulative here; the exposition accumulates them.
 */

/** Index of the bucket an observation falls in (bounds.length for +Inf). */
export function bucketIndex(bounds: readonly number[], v: number): number {
  // Linear scan: the common observations (sub-millisecond answers, small messages) hit the
  // first buckets, and there are at most 16 bounds.
  const n = bounds.length;
  for (let i = 0; i < n; i++) if (v <= bounds[i]!) return i;
  return n;
}

/**
 * Many histograms with the same bounds in one Float64Array: series `s` owns
 * counts at [s*stride, s*stride + bounds.length] and its sum in `sums[s]`.
 */
export class HistogramSet {
  readonly bounds: readonly number[];
  readonly stride: number;
  readonly series: number;
  readonly counts: Float64Array;
  readonly sums: Float64Array;

  constructor(bounds: readonly number[], series: number) {
    this.bounds = bounds;
    this.stride = bounds.length + 1;
    this.series = series;
    this.counts = new Float64Array(this.stride * series);
    this.sums = new Float64Array(series);
  }

  observe(series: number, v: number): void {
    this.counts[series * this.stride + bucketIndex(this.bounds, v)]!++;
    this.sums[series]! += v;
  }

  /** Total observations of one series. */
  count(series: number): number {
    let n = 0;
    const base = series * this.stride;
    for (let i = 0; i < this.stride; i++) n += this.counts[base + i]!;
    return n;
  }

  /** Non-cumulative counts of one series, +Inf overflow last (a copy). */
  bucketCounts(series: number): number[] {
    const base = series * this.stride;
    return Array.from(this.counts.subarray(base, base + this.stride));
  }
}

/** One histogram (process-wide metrics such as the health check duration). */
export class Histogram {
  private readonly set: HistogramSet;
  constructor(bounds: readonly number[]) {
    this.set = new HistogramSet(bounds, 1);
  }
  get bounds(): readonly number[] {
    return this.set.bounds;
  }
  observe(v: number): void {
    this.set.observe(0, v);
  }
  get count(): number {
    return this.set.count(0);
  }
  get sum(): number {
    return this.set.sums[0]!;
  }
  bucketCounts(): number[] {
    return this.set.bucketCounts(0);
  }
}
