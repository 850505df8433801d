/**
 * Settings of one `cache` directive, with CoreDNS's defaults (plugin/cache/cache.go New(),
 * plugin/pkg/dnsutil/ttl.go): max TTL 3600 s for success and 1800 s for denial, min TTL 5 s,
 * capacity 9984 per cache, prefetch window 1m and 10%, SERVFAIL cached 5 s, serve_stale 1h.
 */

/** Per-cache settings of `success CAPACITY [TTL] [MINTTL]` / `denial CAPACITY [TTL] [MINTTL]`. */
export interface CacheClassConfig {
  /** CAPACITY as written (CoreDNS pcap/ncap); the store holds `effectiveCapacity(capacity)`. */
  capacity: number;
  maxTtlSec: number;
  minTtlSec: number;
}

export interface CacheConfig {
  /** Zones the cache answers for (normalised); other names pass through. */
  zones: string[];
  success: CacheClassConfig;
  denial: CacheClassConfig;
  /** `servfail DURATION`: how long SERVFAIL answers are cached; 0 disables. */
  servfailMs: number;
  /** `prefetch AMOUNT [DURATION] [PERCENTAGE%]`; amount 0 disables. */
  prefetchAmount: number;
  prefetchWindowMs: number;
  prefetchPercentage: number;
  /** `serve_stale [DURATION] [immediate|verify]`; 0 disables. */
  staleUpToMs: number;
  staleVerify: boolean;
  /** `disable success|denial [ZONES...]`: zones whose answers of that class are not stored; null when not set. */
  disableSuccess: string[] | null;
  disableDenial: string[] | null;
  /** `keepttl`: answers carry the stored TTL instead of the remaining one. */
  keepTtl: boolean;
  /**
   * `serve_stale_on_failure` as written (node-local-dns's, see README.md); null when the line
   * is absent, and then setup.ts turns the stale fallback on for the cluster zones.
   */
  staleOnFailure: StaleOnFailureConfig | null;
}

/** `serve_stale_on_failure [DURATION [TTL]]` / `serve_stale_on_failure off`. */
export interface StaleOnFailureConfig {
  enabled: boolean;
  /** How long after expiry an entry may still be served (ms). */
  maxStaleMs: number;
  /** TTL of a stale answer (s). */
  answerTtlSec: number;
}

/** dnsutil.MaximumDefaulTTL: also the ceiling of a message's minimal TTL before clamping. */
export const MAX_TTL_SEC = 3600;
/** dnsutil.MaximumDefaulTTL / 2. */
const MAX_DENIAL_TTL_SEC = 1800;
/** dnsutil.MinimalDefaultTTL: min TTL, SERVFAIL TTL, and the TTL of a message without records. */
export const MIN_TTL_SEC = 5;
/** CoreDNS's defaultCap. */
const DEFAULT_CAPACITY = 10000;
const DEFAULT_PREFETCH_WINDOW_MS = 60_000;
const DEFAULT_PREFETCH_PERCENTAGE = 10;
export const DEFAULT_STALE_UP_TO_MS = 3_600_000;
/** RFC 2308 §7.1: SERVFAIL must not be cached longer than 5 minutes. */
export const MAX_SERVFAIL_MS = 300_000;

/** CoreDNS's shard layout (plugin/pkg/cache): 256 shards of max(4, capacity/256) items. */
const SHARDS = 256;
const MIN_SHARD_ITEMS = 4;

/**
 * The number of entries a cache of CAPACITY holds in CoreDNS: rounded down to a multiple of
 * 256, at least 1024 (10000 → 9984).
 */
export function effectiveCapacity(capacity: number): number {
  const perShard = Math.max(MIN_SHARD_ITEMS, Math.trunc(capacity / SHARDS));
  return perShard * SHARDS;
}

export function defaultCacheConfig(zones: string[]): CacheConfig {
  return {
    zones,
    success: { capacity: DEFAULT_CAPACITY, maxTtlSec: MAX_TTL_SEC, minTtlSec: MIN_TTL_SEC },
    denial: { capacity: DEFAULT_CAPACITY, maxTtlSec: MAX_DENIAL_TTL_SEC, minTtlSec: MIN_TTL_SEC },
    servfailMs: MIN_TTL_SEC * 1000,
    prefetchAmount: 0,
    prefetchWindowMs: DEFAULT_PREFETCH_WINDOW_MS,
    prefetchPercentage: DEFAULT_PREFETCH_PERCENTAGE,
    staleUpToMs: 0,
    staleVerify: false,
    disableSuccess: null,
    disableDenial: null,
    keepTtl: false,
    staleOnFailure: null,
  };
}
