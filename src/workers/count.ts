/**
 * How many serving workers `-workers 0` (the default) means.
 *
 * Today: one. Caches are per worker (a shared cache costs more per query than a whole hit,
 * bench/PROFILE.md), and the kernel spreads one client's queries over every SO_REUSEPORT
 * socket by source port, so with N workers a name is fetched up to N times per TTL and — worse
 * for a node cache — a stale answer kept for an upstream outage (serve_stale, the cluster-zone
 * stale fallback) exists only in the worker that cached it: most retries would land elsewhere
 * and get SERVFAIL. One worker answers ~60-70k cached queries per second here, far above a
 * node's DNS load, so the default favours one consistent cache; `-workers N` trades that for
 * throughput on hosts that need it (at most one per usable CPU is useful).
 */

/** Workers when `-workers` is 0 (the default): one cache per node, see above. */
export const DEFAULT_WORKERS = 1;

/** `-workers` flag value to worker count (0: the default). */
export function resolveWorkerCount(flag: number): number {
  return flag > 0 ? Math.floor(flag) : DEFAULT_WORKERS;
}
