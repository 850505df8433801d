/**
 * The default bound on forwarded queries in flight, for forward instances whose Corefile
 * block sets no `max_concurrent` (CoreDNS has none by default; an upstream that never
 * answers then lets queries pile up until the process is OOM-killed).
 *
 * All such instances of one config load (one serving thread's engine) share a total of
 * DEFAULT_INFLIGHT_TOTAL queries, split evenly: each gets floor(total / instances) as its
 * `max_concurrent`, with CoreDNS's semantics past it (REFUSED, counted in
 * coredns_forward_max_concurrent_rejects_total, the errors line `concurrent queries exceeded
 * maximum N`). Split per instance rather than pooled, so a dead upstream of one block (say
 * cluster.local) cannot take the share of another (`.`). An explicit `max_concurrent N`
 * (0 = no limit) takes the instance out of the split.
 *
 * The total, from the manifests' 256 MiB memory limit: forwarded queries in flight get
 * 32 MiB of it. One query in flight costs ~0.7 KiB of live heap (the client's Request and
 * message, the forward Exchange) and ~2.2-3 KiB of RSS once V8's old-space slack is counted
 * (measured: RSS against in-flight count under a never-answering upstream, shipped Node.js
 * flags). 10,000 × 3 KiB ≈ 30 MiB. The shipped Corefile has 4 forward blocks: 2,500 each.
 * With `-workers N`, each serving thread has its own engine and so its own total.
 */

export const DEFAULT_INFLIGHT_TOTAL = 10_000;

const SHARED_KEY = 'forward/inflight-budget';

export class InflightBudget {
  readonly total: number;
  /** Instances sharing the total (those without max_concurrent). */
  instances = 0;
  /** The max_concurrent each of them applies. */
  perInstance: number;

  constructor(total: number) {
    this.total = total;
    this.perInstance = total;
  }

  /** A new instance takes its share; the others' shares shrink (all are set up before serving). */
  join(): void {
    this.instances++;
    this.perInstance = Math.max(1, Math.floor(this.total / this.instances));
  }
}

/** The budget of the config load `shared` belongs to (created by the first instance). */
export function sharedBudget(shared: Map<string, unknown>, total: number): InflightBudget {
  let b = shared.get(SHARED_KEY);
  if (!(b instanceof InflightBudget)) {
    b = new InflightBudget(total);
    shared.set(SHARED_KEY, b);
  }
  return b as InflightBudget;
}
