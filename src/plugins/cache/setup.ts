/**
 * `cache` directive, parsed as CoreDNS's plugin/cache/setup.go does:
 *
 *   cache [TTL] [ZONES...] {
 *       success CAPACITY [TTL] [MINTTL]
 *       denial CAPACITY [TTL] [MINTTL]
 *       prefetch AMOUNT [[DURATION] [PERCENTAGE%]]
 *       serve_stale [DURATION] [immediate|verify]
 *       servfail DURATION
 *       disable success|denial [ZONES...]
 *       keepttl
 *       serve_stale_on_failure [DURATION [TTL]] | off
 *   }
 *
 * `serve_stale_on_failure` is node-local-dns's (README.md): the stale fallback of cache.ts
 * (RFC 8767 when every upstream fails). Without the line it is on for the cache's cluster
 * zones only (`staleFallbackFor`); with it, it applies to all the cache's zones, or to none
 * with `off`.
 *
 * A first argument that parses as an integer (Go strconv.Atoi) is the max TTL of both caches;
 * the other arguments are zones (default: the server block's zones). Error texts are CoreDNS's,
 * at the offending line: `Corefile:12 - Error during parsing: cache TTL can not be zero or negative: 0`.
 * The "only once per server block" rule (plugin.ErrOnce) is the config loader's.
 */
import type { Plugin, PluginSetup, SetupContext } from '../../plugin.ts';
import type { Directive, Token } from '../../corefile/types.ts';
import { argCountError, blockLines, errorAt } from '../../corefile/setup-helpers.ts';
import { excerpt } from '../../corefile/errors.ts';
import { normalizeZone, parseServerKey } from '../../corefile/address.ts';
import { DurationError, parseGoDurationMs } from '../../util/duration.ts';
import { encodeName } from '../../wire/name.ts';
import { MAX_SERVFAIL_MS, DEFAULT_STALE_UP_TO_MS, defaultCacheConfig, type CacheConfig, type CacheClassConfig } from './config.ts';
import { CachePlugin, DEFAULT_STALE_FALLBACK, type StaleFallbackOptions } from './cache.ts';
import { DEFAULT_CLUSTER_ZONES, clusterZonesFrom } from '../../config/cluster-zones.ts';

export { CLUSTER_ZONES_ENV, DEFAULT_CLUSTER_ZONES, clusterZonesFrom } from '../../config/cluster-zones.ts';

/** Largest TTL `serve_stale_on_failure` may give stale answers (s). */
const MAX_STALE_ANSWER_TTL_SEC = 3600;

/**
 * Zones served stale by default when every upstream fails: the cluster zones and any zone
 * below one of them (by default `cluster.local.`, `in-addr.arpa.`, `ip6.arpa.`). Other zones
 * (the `.` block forwarding to the node's resolvers) are not.
 */
export function isClusterZone(zone: string, clusterZones: readonly string[] = DEFAULT_CLUSTER_ZONES): boolean {
  const z = zone.toLowerCase();
  for (const base of clusterZones) {
    if (z === base || z.endsWith('.' + base)) return true;
  }
  return false;
}

/**
 * The stale fallback a cache directive asks for: the written `serve_stale_on_failure`, or
 * without it DEFAULT_STALE_FALLBACK (answers TTL 30 s, up to 1 h after expiry, 30 s failure
 * recheck, 1.8 s client response timer) on the cache's cluster zones; null for none.
 */
export function staleFallbackFor(cfg: CacheConfig, clusterZones: readonly string[] = DEFAULT_CLUSTER_ZONES): StaleFallbackOptions | null {
  const written = cfg.staleOnFailure;
  if (written === null) {
    const zones = cfg.zones.filter((z) => isClusterZone(z, clusterZones));
    return zones.length === 0 ? null : { zones, ...DEFAULT_STALE_FALLBACK };
  }
  if (!written.enabled) return null;
  return { ...DEFAULT_STALE_FALLBACK, zones: [...cfg.zones], maxStaleMs: written.maxStaleMs, answerTtlSec: written.answerTtlSec };
}

const INT64_MAX = (1n << 63n) - 1n;
const INT64_MIN = -(1n << 63n);

/** Go's strconv.Quote for the ASCII words a Corefile holds. */
function goQuote(s: string): string {
  return JSON.stringify(s);
}

/** Go's strconv.Atoi on a 64-bit platform; null instead of an error. */
function tryAtoi(text: string): number | null {
  if (!/^[+-]?[0-9]+$/.test(text)) return null;
  const v = BigInt(text);
  if (v > INT64_MAX || v < INT64_MIN) return null;
  return Number(v);
}

/** strconv.Atoi, failing with its error text at the word's line. */
function atoi(tok: Token): number {
  const v = tryAtoi(tok.text);
  if (v !== null) return v;
  const reason = /^[+-]?[0-9]+$/.test(tok.text) ? 'value out of range' : 'invalid syntax';
  return errorAt(tok, `strconv.Atoi: parsing ${goQuote(excerpt(tok.text))}: ${reason}`);
}

/** time.ParseDuration in ms, failing with Go's error text. */
function duration(tok: Token): number {
  try {
    return parseGoDurationMs(tok.text);
  } catch (err) {
    if (err instanceof DurationError) errorAt(tok, err.message);
    throw err;
  }
}

/** caddy's ArgErr after RemainingArgs: it names the last word read on the line. */
function argErr(line: Directive): never {
  const n = line.args.length;
  return argCountError(n === 0 ? line : line.args[n - 1]!);
}

/** `success|denial CAPACITY [TTL] [MINTTL]`. */
function parseClass(line: Directive, cls: CacheClassConfig): void {
  const args = line.args;
  if (args.length === 0) argErr(line);
  cls.capacity = atoi(args[0]!);
  if (args.length > 1) {
    const ttl = atoi(args[1]!);
    // CoreDNS reserves 0 and below.
    if (ttl <= 0) errorAt(args[1]!, `cache TTL can not be zero or negative: ${ttl}`);
    cls.maxTtlSec = ttl;
    if (args.length > 2) {
      const min = atoi(args[2]!);
      if (min < 0) errorAt(args[2]!, `cache min TTL can not be negative: ${min}`);
      cls.minTtlSec = min;
    }
  }
}

function parsePrefetch(line: Directive, cfg: CacheConfig): void {
  const args = line.args;
  if (args.length === 0 || args.length > 3) argErr(line);
  const amount = atoi(args[0]!);
  if (amount < 0) errorAt(args[0]!, `prefetch amount should be positive: ${amount}`);
  cfg.prefetchAmount = amount;
  if (args.length > 1) cfg.prefetchWindowMs = duration(args[1]!);
  if (args.length > 2) {
    const tok = args[2]!;
    const text = tok.text;
    const last = text.length > 0 ? text[text.length - 1]! : '';
    // Go prints the byte with %q: '5'.
    if (last !== '%') errorAt(tok, `last character of percentage should be \`%\`, but is: '${last}'`);
    const numTok: Token = { ...tok, text: text.slice(0, -1) };
    const num = atoi(numTok);
    if (num < 10 || num > 90) errorAt(tok, `percentage should fall in range [10, 90]: ${num}`);
    cfg.prefetchPercentage = num;
  }
}

function parseServeStale(line: Directive, cfg: CacheConfig): void {
  const args = line.args;
  if (args.length > 2) argErr(line);
  cfg.staleUpToMs = DEFAULT_STALE_UP_TO_MS;
  if (args.length > 0) {
    const d = duration(args[0]!);
    if (d < 0) errorAt(args[0]!, 'invalid negative duration for serve_stale');
    cfg.staleUpToMs = d;
  }
  cfg.staleVerify = false;
  if (args.length > 1) {
    const mode = args[1]!.text.toLowerCase();
    if (mode !== 'immediate' && mode !== 'verify') errorAt(args[1]!, `invalid value for serve_stale refresh mode: ${mode}`);
    cfg.staleVerify = mode === 'verify';
  }
}

/** `serve_stale_on_failure [DURATION [TTL]]` or `serve_stale_on_failure off`. */
function parseStaleOnFailure(line: Directive, cfg: CacheConfig): void {
  const args = line.args;
  if (args.length > 2) argErr(line);
  if (args.length === 1 && args[0]!.text.toLowerCase() === 'off') {
    cfg.staleOnFailure = { enabled: false, maxStaleMs: 0, answerTtlSec: 0 };
    return;
  }
  let maxStaleMs: number = DEFAULT_STALE_FALLBACK.maxStaleMs;
  if (args.length > 0) {
    maxStaleMs = duration(args[0]!);
    // Expiry is compared in whole seconds; "off" is the way to turn it off.
    if (maxStaleMs < 1000) errorAt(args[0]!, `serve_stale_on_failure duration must be at least 1s (or "off"): ${excerpt(args[0]!.text)}`);
  }
  let answerTtlSec: number = DEFAULT_STALE_FALLBACK.answerTtlSec;
  if (args.length > 1) {
    answerTtlSec = atoi(args[1]!);
    if (answerTtlSec < 1 || answerTtlSec > MAX_STALE_ANSWER_TTL_SEC) {
      errorAt(args[1]!, `serve_stale_on_failure TTL must be between 1 and ${MAX_STALE_ANSWER_TTL_SEC}: ${answerTtlSec}`);
    }
  }
  cfg.staleOnFailure = { enabled: true, maxStaleMs, answerTtlSec };
}

function parseServfail(line: Directive, cfg: CacheConfig): void {
  const args = line.args;
  if (args.length !== 1) argErr(line);
  const d = duration(args[0]!);
  if (d < 0) errorAt(args[0]!, 'invalid negative ttl for servfail');
  if (d > MAX_SERVFAIL_MS) errorAt(args[0]!, 'caching SERVFAIL responses over 5 minutes is not permitted');
  cfg.servfailMs = d;
}

function parseDisable(line: Directive, cfg: CacheConfig): void {
  const args = line.args;
  if (args.length < 1) argErr(line);
  let zones: string[];
  if (args.length > 1) {
    zones = [];
    for (const tok of args.slice(1)) {
      const z = normalizeZone(tok.text);
      try {
        encodeName(z);
      } catch {
        errorAt(tok, `invalid disabled zone: ${excerpt(tok.text)}`);
      }
      zones.push(z);
    }
  } else {
    zones = ['.'];
  }
  const which = args[0]!.text;
  if (which === 'denial') cfg.disableDenial = zones;
  else if (which === 'success') cfg.disableSuccess = zones;
  else errorAt(args[0]!, 'cache type for disable must be "success" or "denial"');
}

/** Parses a `cache` directive into settings (exported for tests and for config diffing). */
export function parseCacheDirective(d: Directive, blockZones: readonly string[]): CacheConfig {
  const cfg = defaultCacheConfig([...blockZones]);
  let args = d.args;
  if (args.length > 0) {
    const ttl = tryAtoi(args[0]!.text);
    if (ttl !== null) {
      if (ttl <= 0) errorAt(args[0]!, `cache TTL can not be zero or negative: ${ttl}`);
      cfg.success.maxTtlSec = ttl;
      cfg.denial.maxTtlSec = ttl;
      args = args.slice(1);
    }
  }
  if (args.length > 0) {
    const zones: string[] = [];
    for (const tok of args) {
      const z = parseServerKey(tok).zone;
      if (!zones.includes(z)) zones.push(z);
    }
    cfg.zones = zones;
  }

  for (const line of blockLines(d)) {
    switch (line.name) {
      case 'success':
        parseClass(line, cfg.success);
        break;
      case 'denial':
        parseClass(line, cfg.denial);
        break;
      case 'prefetch':
        parsePrefetch(line, cfg);
        break;
      case 'serve_stale':
        parseServeStale(line, cfg);
        break;
      case 'servfail':
        parseServfail(line, cfg);
        break;
      case 'disable':
        parseDisable(line, cfg);
        break;
      case 'keepttl':
        if (line.args.length !== 0) argErr(line);
        cfg.keepTtl = true;
        break;
      case 'serve_stale_on_failure':
        parseStaleOnFailure(line, cfg);
        break;
      default:
        // CoreDNS answers an unknown property with ArgErr, naming the property.
        argCountError(line);
    }
    if (line.block !== null) argCountError(line);
  }
  return cfg;
}

export const cacheSetup: PluginSetup = {
  name: 'cache',
  setup(d: Directive, ctx: SetupContext): Plugin {
    const cfg = parseCacheDirective(d, ctx.zones);
    const plugin = new CachePlugin(cfg, { clock: ctx.clock, log: ctx.log });
    plugin.setStaleFallback(staleFallbackFor(cfg, ctx.clusterZones ?? clusterZonesFrom(ctx.env)));
    return plugin;
  },
};
