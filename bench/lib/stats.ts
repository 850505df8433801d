/**
 * Small statistics helpers for the benchmark. Percentiles use the nearest-rank method
 * (the value at rank ceil(p/100 * n) of the sorted sample), so every reported percentile is a
 * latency that was actually observed.
 */

/** Median of the finite values; NaN when there are none. Even counts average the middle pair. */
export function median(values: readonly number[]): number {
  const xs = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (xs.length === 0) return NaN;
  const mid = xs.length >> 1;
  return xs.length % 2 === 1 ? xs[mid]! : (xs[mid - 1]! + xs[mid]!) / 2;
}

/** Nearest-rank percentile of an already sorted sample; NaN for an empty sample. */
export function percentileSorted(sorted: ArrayLike<number>, p: number): number {
  const n = sorted.length;
  if (n === 0) return NaN;
  if (p <= 0) return sorted[0]!;
  if (p >= 100) return sorted[n - 1]!;
  const rank = Math.ceil((p / 100) * n);
  return sorted[Math.max(0, rank - 1)]!;
}

/** a / b, or NaN when either side is missing or b is zero. */
export function ratio(a: number, b: number): number {
  if (!Number.isFinite(a) || !Number.isFinite(b) || b === 0) return NaN;
  return a / b;
}

/** Grows a Float64Array as needed; used to collect per-query latencies without boxing. */
export class SampleBuffer {
  #data: Float64Array;
  #len = 0;

  constructor(initialCapacity = 1 << 16) {
    this.#data = new Float64Array(initialCapacity);
  }

  push(v: number): void {
    if (this.#len === this.#data.length) {
      const next = new Float64Array(this.#data.length * 2);
      next.set(this.#data);
      this.#data = next;
    }
    this.#data[this.#len++] = v;
  }

  get length(): number {
    return this.#len;
  }

  /** A sorted copy of the samples. */
  sorted(): Float64Array {
    return this.#data.slice(0, this.#len).sort();
  }
}
