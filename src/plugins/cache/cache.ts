/**
 * The `cache` plugin's query path (CoreDNS plugin/cache: handler.go, cache.go, item.go), with
 * a dnsdist-style packet cache underneath: responses are stored as wire bytes and a hit is a
 * copy plus a few patched bytes.
 *
 * Hit: one Buffer (exact size) is allocated; ID, header flags and the client's qname bytes (so
 * the client's letter case comes back) are written over the stored copy; every TTL holds the
 * entry's remaining TTL (CoreDNS item.toMsg), or the stored TTL with `keepttl`; an OPT
 * (UDP size 1232, DO echoed) is appended iff the client used EDNS (RFC 6891 §7). No decode,
 * no strings, no closure, no promise.
 *
 * Miss: the request's writer is wrapped by a CacheWriter that classifies the response as
 * CoreDNS's response.Typify does, stores it when cacheable, rewrites its TTLs to the cached
 * duration ("avoid jarring TTL experience", cache.go) and passes it on.
 *
 * Classification and TTLs (cache.go WriteMsg, dnsutil.MinimalTTL):
 *  - NOERROR with answers, NOERROR without SOA (incl. delegations) → success cache;
 *    NXDOMAIN or NOERROR-no-answer with an SOA in authority → denial cache; SERVFAIL and NOTIMP
 *    (Typify's ServerError) → denial cache for `servfail` seconds; anything else (REFUSED,
 *    FORMERR, NXDOMAIN without SOA, TC=1, AXFR/IXFR, UPDATE/NOTIFY, malformed) is not cached.
 *  - The message TTL is the smallest TTL of all records (OPT excluded) capped at 3600; 5 s for
 *    a message without records and for delegations. For denial it is further capped by the
 *    SOA's negative TTL, min(SOA TTL, SOA MINIMUM) (RFC 2308 §5). It is then clamped to
 *    [MINTTL, TTL] of its class; a result of 0 (MINTTL 0 and a record TTL 0) is not cached.
 *  - Remaining TTL = stored TTL − whole seconds elapsed; an entry is fresh while it is > 0.
 *
 * Differences from CoreDNS, deliberate:
 *  - Storing a key in one class removes it from the other (CoreDNS can leave a stale denial
 *    entry that shadows a newer success entry when serve_stale is on).
 *  - A background refresh (prefetch, serve_stale immediate) never replaces an entry with a
 *    SERVFAIL, and at most one refresh per entry is in flight.
 *  - An expired SERVFAIL or NOTIMP entry is never served stale (RFC 8767 is about stale data).
 *  - The DO-bit RRSIG expiry check of Typify is not done.
 */
// Imported, not the globals: Node defines `Buffer` and `performance` on globalThis as accessors,
// which cost a LoadGlobalIC call on every use in a hot function.
import { Buffer } from 'node:buffer';
import { PluginScope } from '../../plugin.ts';
import type { BlockInfo, Clock, Handler, Logger, MetricsOut, Plugin, ResponseWriter } from '../../plugin.ts';
import { collectCache } from './metrics.ts';
import { Proto, Request } from '../../server/request.ts';
import { Edns, Flag, Header, Rcode } from '../../wire/codes.ts';
import { ResponseScan, questionMatches, scanResponse, writeOpt } from '../../wire/message.ts';
import { clearFlags, headerRcode, setAdditionalCount, setCounts, setMessageFlags, setMessageId, setU32 } from '../../wire/header.ts';
import { ParseResult, parseQuery } from '../../wire/query.ts';
import { MAX_TTL_SEC, MIN_TTL_SEC, effectiveCapacity, type CacheConfig } from './config.ts';
import { EntryKind, EntryStore, KeyFlag, keyHash, type Entry, type EntryKindValue } from './store.ts';
import { ZoneMatcher } from '../../wire/zone-match.ts';
import { ResponseClass, typify, type ResponseClassValue } from '../../wire/typify.ts';

/**
 * Serving stale answers for chosen zones when the upstreams fail (RFC 8767), independent of
 * `serve_stale`. Meant for the resilience layer: e.g. the cluster zones keep answering from
 * expired entries while kube-dns is unreachable.
 *
 * When a query finds an expired entry of a listed zone that `serve_stale` does not cover and
 * that expired less than `maxStaleMs` ago, the query is forwarded first (like `serve_stale
 * verify`). A NOERROR or NXDOMAIN answer refreshes the entry and goes to the client; anything
 * else (SERVFAIL, REFUSED, a timeout turned into SERVFAIL, a malformed reply) is replaced by the
 * expired entry with every TTL set to `answerTtlSec` (RFC 8767 §4: 30 s), and for `recheckMs`
 * afterwards that entry is served stale at once, without asking upstream (§5 failure recheck
 * timer). When no answer came within `clientTimeoutMs` (§5 client response timer), the client
 * gets the stale entry at once and the upstream query goes on in the background: its answer
 * refreshes the entry (or starts the recheck timer) but is not sent. Counted in `servedStale`.
 */
export interface StaleFallbackOptions {
  /** Zones (any case, fully qualified or not); `.` means all names the cache serves. */
  zones: string[];
  /** How long after expiry an entry may still be served (ms). */
  maxStaleMs: number;
  /** TTL of a stale answer (s); RFC 8767 §4 suggests 30. */
  answerTtlSec: number;
  /** After a failed refresh, serve stale without forwarding for this long (ms); RFC 8767 §5 suggests 30 s. */
  recheckMs: number;
  /**
   * Answer stale when upstream has not answered within this long (ms), refreshing in the
   * background; RFC 8767 §5 suggests 1.8 s. 0 or absent: wait for upstream's answer or failure.
   */
  clientTimeoutMs?: number;
}

export const DEFAULT_STALE_FALLBACK: Readonly<Required<Omit<StaleFallbackOptions, 'zones'>>> = {
  maxStaleMs: 3_600_000,
  answerTtlSec: 30,
  recheckMs: 30_000,
  clientTimeoutMs: 1_800,
};

export interface CacheDeps {
  clock: Clock;
  log?: Logger;
}

const WriterMode = {
  /** A miss: store, fix TTLs, pass on to the client. */
  CLIENT: 0,
  /** A stale entry (serve_stale verify or the stale fallback): refreshed answer or the stale one. */
  VERIFY: 1,
  /** Background refresh (prefetch, serve_stale immediate): store and discard. */
  REFRESH: 2,
} as const;
type WriterModeValue = (typeof WriterMode)[keyof typeof WriterMode];

/** A refresh that got no answer within this time no longer blocks a new one. */
const REFRESH_GUARD_MS = 10_000;
const QUERY_FLAG_MASK = Flag.OPCODE_MASK | Flag.RD | Flag.CD;
const HIT_FLAGS = Flag.QR | Flag.AA;

/** Wraps the request's writer on a miss, a verification or a refresh. */
class CacheWriter implements ResponseWriter {
  readonly cache: CachePlugin;
  readonly prev: ResponseWriter | null;
  readonly mode: WriterModeValue;
  /** The stale entry being verified or the entry being refreshed. */
  readonly entry: Entry | null;
  /** VERIFY: the TTL to give a stale answer. */
  readonly staleTtlSec: number;
  /** VERIFY: whether this is the stale fallback (sets the entry's recheck timer on failure). */
  readonly fallback: boolean;
  /** Stale fallback: the client response timer (RFC 8767 §5), null when not armed. */
  clientTimer: NodeJS.Timeout | null = null;
  /** Stale fallback: the client already got the stale entry; upstream's answer only refreshes. */
  answered = false;
  /** The hold on `entry` was given back (at most once). */
  released = false;

  constructor(cache: CachePlugin, prev: ResponseWriter | null, mode: WriterModeValue, entry: Entry | null, staleTtlSec: number, fallback: boolean) {
    this.cache = cache;
    this.prev = prev;
    this.mode = mode;
    this.entry = entry;
    this.staleTtlSec = staleTtlSec;
    this.fallback = fallback;
    // The entry's bytes must stay put until this writer has its answer (store.ts: holders).
    entry?.hold();
  }

  /** Gives back the hold on `entry`; the writer must not read it afterwards. */
  release(): void {
    if (this.released) return;
    this.released = true;
    this.entry?.unhold();
  }

  writeMsg(req: Request, msg: Buffer, len: number): void {
    try {
      this.cache.onResponse(this, req, msg, len);
    } finally {
      this.release();
    }
  }
}

/** The handler composed into the chain; the plugin holds the state. */
class CacheHandler implements Handler {
  private readonly cache: CachePlugin;
  private readonly next: Handler;
  constructor(cache: CachePlugin, next: Handler) {
    this.cache = cache;
    this.next = next;
  }
  serve(req: Request): void {
    this.cache.serveWith(req, this.next);
  }
}

export class CachePlugin implements Plugin {
  readonly scope = PluginScope.QUERY;
  readonly handler = true;
  readonly name = 'cache';
  readonly config: CacheConfig;

  // Counters, read by the metrics exporter at scrape time (labels server/zones are its job).
  /** coredns_cache_requests_total */
  requests = 0;
  /** coredns_cache_hits_total{type="success"} */
  hitsSuccess = 0;
  /** coredns_cache_hits_total{type="denial"} */
  hitsDenial = 0;
  /** coredns_cache_misses_total */
  misses = 0;
  /** coredns_cache_prefetch_total (prefetches and serve_stale immediate refreshes) */
  prefetches = 0;
  /** coredns_cache_drops_total: cacheable responses whose question did not match the query. */
  drops = 0;
  /** coredns_cache_served_stale_total */
  servedStale = 0;
  /** coredns_cache_evictions_total{type="success"} */
  evictionsSuccess = 0;
  /** coredns_cache_evictions_total{type="denial"} */
  evictionsDenial = 0;

  private success: EntryStore;
  private denial: EntryStore;
  private readonly clock: Clock;
  private readonly log: Logger | null;
  private readonly zones: ZoneMatcher<string>;
  private readonly disableSuccess: ZoneMatcher<string> | null;
  private readonly disableDenial: ZoneMatcher<string> | null;
  private readonly scan = new ResponseScan();
  private readonly staleUpToSec: number;
  private readonly servfailSec: number;
  private fallback: StaleFallbackOptions | null = null;
  private fallbackZones: ZoneMatcher<string> | null = null;
  private fallbackStaleSec = 0;

  constructor(config: CacheConfig, deps: CacheDeps) {
    this.config = config;
    this.clock = deps.clock;
    this.log = deps.log ?? null;
    this.zones = ZoneMatcher.of(config.zones);
    this.disableSuccess = config.disableSuccess ? ZoneMatcher.of(config.disableSuccess) : null;
    this.disableDenial = config.disableDenial ? ZoneMatcher.of(config.disableDenial) : null;
    this.success = new EntryStore(effectiveCapacity(config.success.capacity));
    this.denial = new EntryStore(effectiveCapacity(config.denial.capacity));
    // CoreDNS compares whole seconds: -ttl < int(staleUpTo.Seconds()), origTTL = uint32(d.Seconds()).
    this.staleUpToSec = config.staleUpToMs > 0 ? Math.trunc(config.staleUpToMs / 1000) : 0;
    this.servfailSec = Math.trunc(config.servfailMs / 1000);
  }

  compose(next: Handler): Handler {
    return new CacheHandler(this, next);
  }

  /** Number of entries of one class (coredns_cache_entries{type}). */
  entries(type: 'success' | 'denial'): number {
    return type === 'success' ? this.success.size : this.denial.size;
  }

  /** Capacity of one class's store (after CoreDNS's rounding). */
  capacity(type: 'success' | 'denial'): number {
    return type === 'success' ? this.success.capacity : this.denial.capacity;
  }

  /** Equal for two plugins whose cache settings are equal (then entries can be handed over). */
  configKey(): string {
    const c = this.config;
    return JSON.stringify([
      c.zones,
      effectiveCapacity(c.success.capacity),
      c.success.maxTtlSec,
      c.success.minTtlSec,
      effectiveCapacity(c.denial.capacity),
      c.denial.maxTtlSec,
      c.denial.minTtlSec,
      c.servfailMs,
      c.prefetchAmount,
      c.prefetchWindowMs,
      c.prefetchPercentage,
      c.staleUpToMs,
      c.staleVerify,
      c.disableSuccess,
      c.disableDenial,
      c.keepTtl,
    ]);
  }

  /**
   * On reload: when `old` has the same settings, this plugin takes over its stores, so cached
   * entries survive. The stores are shared from then on (in-flight queries of the old chain
   * still fill them). Returns whether the entries were adopted.
   */
  adoptEntriesFrom(old: CachePlugin): boolean {
    if (old === this || old.configKey() !== this.configKey()) return false;
    this.success = old.success;
    this.denial = old.denial;
    return true;
  }

  /**
   * Reload (Plugin.takeOver): the counters always carry over (they stay monotonic); the entries
   * too when the settings are equal. CoreDNS's reload loses the cache; we keep it.
   */
  takeOver(previous: Plugin): void {
    if (!(previous instanceof CachePlugin) || previous === this) return;
    this.adoptCountersFrom(previous);
    this.adoptEntriesFrom(previous);
  }

  collect(block: BlockInfo, out: MetricsOut): void {
    collectCache(block, this, out);
  }

  /** Carries the counters over a reload so the exported counters stay monotonic. */
  adoptCountersFrom(old: CachePlugin): void {
    this.requests += old.requests;
    this.hitsSuccess += old.hitsSuccess;
    this.hitsDenial += old.hitsDenial;
    this.misses += old.misses;
    this.prefetches += old.prefetches;
    this.drops += old.drops;
    this.servedStale += old.servedStale;
    this.evictionsSuccess += old.evictionsSuccess;
    this.evictionsDenial += old.evictionsDenial;
  }

  /** Turns the stale fallback on (see StaleFallbackOptions) or off (null). */
  setStaleFallback(opts: StaleFallbackOptions | null): void {
    if (opts === null) {
      this.fallback = null;
      this.fallbackZones = null;
      this.fallbackStaleSec = 0;
      return;
    }
    const zones = opts.zones.map((z) => {
      const lower = z.toLowerCase();
      return lower.endsWith('.') ? lower : lower + '.';
    });
    this.fallback = { ...opts, zones };
    this.fallbackZones = ZoneMatcher.of(zones);
    this.fallbackStaleSec = Math.trunc(opts.maxStaleMs / 1000);
  }

  staleFallback(): StaleFallbackOptions | null {
    return this.fallback === null ? null : { ...this.fallback, zones: [...this.fallback.zones] };
  }

  /** Drops every entry. */
  purge(): void {
    this.success.clear();
    this.denial.clear();
  }

  // ---------------------------------------------------------------------------------------
  // Query path.

  serveWith(req: Request, next: Handler): void {
    const zones = this.zones;
    if (!zones.matchesAll && zones.match(req.msg, req.qnameEnd) === null) {
      next.serve(req);
      return;
    }
    this.requests++;
    const keyFlags = (req.dnssecOk ? KeyFlag.DO : 0) | ((req.flags & Flag.CD) !== 0 ? KeyFlag.CD : 0);
    const hash = keyHash(req.nameHash, req.qtype, req.qclass, keyFlags);
    // A key lives in at most one store (store() removes it from the other); success hits are the common case.
    let e = this.success.find(req.msg, req.qnameEnd, req.nameHash, req.qtype, req.qclass, keyFlags, hash);
    if (e === null) e = this.denial.find(req.msg, req.qnameEnd, req.nameHash, req.qtype, req.qclass, keyFlags, hash);
    if (e === null) {
      this.miss(req, next);
      return;
    }

    // The query's arrival time when the server stamped it (same clock; one clock read less per hit).
    const now = req.startMs > 0 ? req.startMs : this.clock();
    const ttl = e.origTtlSec - Math.trunc((now - e.storedMs) / 1000);
    if (ttl > 0) {
      this.countHit(e);
      const prefetch = this.config.prefetchAmount > 0 && this.shouldPrefetch(e, now, ttl);
      this.answer(req, e, this.config.keepTtl ? e.origTtlSec : ttl);
      if (prefetch) this.refresh(e, req, next, now);
      return;
    }

    // Stale data is worth serving, a stale server error (SERVFAIL, NOTIMP) is not: it is a miss.
    const entryRcode = e.baseFlags & Flag.RCODE_MASK;
    const servfail = entryRcode === Rcode.SERVFAIL || entryRcode === Rcode.NOTIMP;
    if (this.staleUpToSec > 0 && -ttl < this.staleUpToSec && !servfail) {
      // serve_stale (RFC 8767): the hit is counted as CoreDNS does, stale answers carry TTL 0.
      this.countHit(e);
      const staleTtl = this.config.keepTtl ? e.origTtlSec : 0;
      if (this.config.staleVerify) {
        req.writer = new CacheWriter(this, req.writer, WriterMode.VERIFY, e, staleTtl, false);
        next.serve(req);
        return;
      }
      this.servedStale++;
      this.answer(req, e, staleTtl);
      this.refresh(e, req, next, now);
      return;
    }

    const fb = this.fallback;
    if (fb !== null && !servfail && -ttl < this.fallbackStaleSec && this.fallbackZones!.contains(req.msg, req.qnameEnd)) {
      if (e.failedAtMs >= 0 && now - e.failedAtMs < fb.recheckMs) {
        this.countHit(e);
        this.servedStale++;
        this.answer(req, e, fb.answerTtlSec);
        return;
      }
      this.misses++;
      const w = new CacheWriter(this, req.writer, WriterMode.VERIFY, e, fb.answerTtlSec, true);
      req.writer = w;
      const clientTimeoutMs = fb.clientTimeoutMs ?? 0;
      if (clientTimeoutMs > 0) {
        w.clientTimer = setTimeout(() => this.onClientTimeout(w, req), clientTimeoutMs);
        w.clientTimer.unref();
      }
      next.serve(req);
      return;
    }

    this.miss(req, next);
  }

  private miss(req: Request, next: Handler): void {
    this.misses++;
    req.writer = new CacheWriter(this, req.writer, WriterMode.CLIENT, null, 0, false);
    next.serve(req);
  }

  private countHit(e: Entry): void {
    if (e.kind === EntryKind.SUCCESS) this.hitsSuccess++;
    else this.hitsDenial++;
  }

  /** CoreDNS shouldPrefetch: count the hit in the entry's window, then compare the remaining TTL. */
  private shouldPrefetch(e: Entry, now: number, ttl: number): boolean {
    const cfg = this.config;
    if (e.freqLastMs < now - cfg.prefetchWindowMs) e.freqHits = 1;
    else e.freqHits++;
    e.freqLastMs = Math.floor(now);
    const threshold = Math.ceil((cfg.prefetchPercentage / 100) * e.origTtlSec);
    return e.freqHits >= cfg.prefetchAmount && ttl <= threshold;
  }

  /** Sends the entry to the client with every TTL set to ttlSec. */
  private answer(req: Request, e: Entry, ttlSec: number): void {
    const out = this.build(req, e, ttlSec);
    req.reply(out, out.length, 'cache');
  }

  /** The hit response for req from entry e (see the file comment). */
  private build(req: Request, e: Entry, ttlSec: number): Buffer {
    if (e.ttlWrittenSec !== ttlSec) e.writeTtls(ttlSec);
    const n = e.len;
    const edns = req.edns;
    const out = Buffer.allocUnsafe(edns ? n + Edns.OPT_FIXED_SIZE : n);
    // A ranged Buffer copy: no view object (a TypedArray set of a subarray would make one).
    e.buf.copy(out, 0, e.off, e.off + n);
    setMessageId(out, req.id);
    const flags =
      HIT_FLAGS |
      (req.flags & QUERY_FLAG_MASK) |
      e.baseFlags |
      // RFC 6840 §5.7-5.8: AD only to a client that asked with DO or AD.
      (e.authenticData && (req.dnssecOk || (req.flags & Flag.AD) !== 0) ? Flag.AD : 0);
    setMessageFlags(out, flags);
    const msg = req.msg;
    const qEnd = e.qnameEnd;
    for (let i = Header.SIZE; i < qEnd; i++) out[i] = msg[i]!;
    if (edns) {
      writeOpt(out, n, req.udpSize, 0, req.dnssecOk);
      setAdditionalCount(out, e.arcount + 1);
    }
    return out;
  }

  /** Issues a background refresh of e through next (prefetch; serve_stale immediate). */
  private refresh(e: Entry, trigger: Request, next: Handler, now: number): void {
    if (e.refreshSinceMs >= 0 && now - e.refreshSinceMs < REFRESH_GUARD_MS) return;
    e.refreshSinceMs = Math.floor(now);
    this.prefetches++;
    const req = this.refreshRequest(e, trigger);
    if (req === null) {
      e.refreshSinceMs = -1;
      return;
    }
    // Plugins further down may wrap req.writer; the hold belongs to this writer.
    const w = req.writer as CacheWriter;
    try {
      next.serve(req);
    } catch (err) {
      e.refreshSinceMs = -1;
      w.release();
      this.log?.error(`prefetch of ${req.name()} failed: ${(err as Error).message}`);
    }
  }

  /**
   * A query for e's question, as CoreDNS's prefetch sends it: RD set, CD and DO as in the
   * key, an OPT advertising 1232 bytes, over TCP (so the refresh is never truncated), with the
   * triggering client's address and server for logs.
   */
  private refreshRequest(e: Entry, trigger: Request): Request | null {
    const qEnd = e.qnameEnd + 4;
    const len = qEnd + Edns.OPT_FIXED_SIZE;
    const buf = Buffer.allocUnsafe(len);
    const id = (Math.random() * 0x10000) & 0xffff;
    const flags = Flag.RD | ((e.keyFlags & KeyFlag.CD) !== 0 ? Flag.CD : 0);
    setMessageId(buf, id);
    setMessageFlags(buf, flags);
    setCounts(buf, 1, 0, 0, 1);
    e.buf.copy(buf, Header.SIZE, e.off + Header.SIZE, e.off + qEnd);
    writeOpt(buf, qEnd, Edns.ADVERTISED_UDP_SIZE, 0, (e.keyFlags & KeyFlag.DO) !== 0);
    const w = new CacheWriter(this, null, WriterMode.REFRESH, e, 0, false);
    const req = new Request(buf, len, w);
    if (parseQuery(req) !== ParseResult.OK) {
      w.release();
      return null;
    }
    req.proto = Proto.TCP;
    req.family = trigger.family;
    req.remoteAddress = trigger.remoteAddress;
    req.remotePort = trigger.remotePort;
    req.server = trigger.server;
    req.zone = trigger.zone;
    req.startMs = this.clock();
    return req;
  }

  // ---------------------------------------------------------------------------------------
  // Response path.

  /** Called by CacheWriter with the response to a miss, a verification or a refresh. */
  onResponse(w: CacheWriter, req: Request, msg: Buffer, len: number): void {
    const s = this.scan;
    const ok = scanResponse(msg, len, s);

    if (w.mode === WriterMode.VERIFY) {
      if (w.clientTimer !== null) {
        clearTimeout(w.clientTimer);
        w.clientTimer = null;
      }
      // RFC 8767 / CoreDNS verifyStaleResponseWriter: only NOERROR and NXDOMAIN refresh.
      if (!ok || (s.rcode !== Rcode.NOERROR && s.rcode !== Rcode.NXDOMAIN)) {
        if (w.answered) {
          // The client already has the stale entry: start the failure recheck timer only.
          if (w.fallback) w.entry!.failedAtMs = Math.floor(this.clock());
          return;
        }
        this.serveStaleInstead(w, req);
        return;
      }
    } else if (w.mode === WriterMode.REFRESH) {
      w.entry!.refreshSinceMs = -1;
    }
    if (!ok) {
      if (w.prev !== null) w.prev.writeMsg(req, msg, len);
      return;
    }

    const cls = typify(s, msg);
    const durationSec = this.durationSec(cls, s);
    const cacheable = cls !== ResponseClass.UNCACHEABLE && (s.flags & Flag.TC) === 0 && !req.errorReply;
    // A refresh never turns a good entry into a SERVFAIL.
    if (cacheable && durationSec > 0 && !(w.mode === WriterMode.REFRESH && cls === ResponseClass.SERVER_ERROR)) {
      if (s.qnameEnd === req.qnameEnd && questionMatches(req.msg, req.qnameEnd, msg, len)) {
        this.store(req, msg, cls, durationSec, w.mode === WriterMode.REFRESH ? w.entry : null);
      } else {
        this.drops++;
      }
    }
    if (w.prev === null || w.answered) return;

    // CoreDNS sends the miss with every TTL set to the cached duration, and drops AD for
    // clients that asked with neither DO nor AD (RFC 6840 §5.7-5.8).
    const offs = s.ttlOffsets;
    for (let i = 0; i < offs.length; i++) setU32(msg, offs[i]!, durationSec);
    if (!req.dnssecOk && (req.flags & Flag.AD) === 0) clearFlags(msg, Flag.AD);
    w.prev.writeMsg(req, msg, len);
  }

  /**
   * The stale fallback's client response timer fired (RFC 8767 §5): the client gets the stale
   * entry now; upstream's later answer (or failure) reaches onResponse, which then only
   * refreshes the entry. req.reply has not run yet, so the request's response fields are set
   * here for the writers and metrics downstream.
   */
  private onClientTimeout(w: CacheWriter, req: Request): void {
    w.clientTimer = null;
    if (w.answered || req.replied) return;
    w.answered = true;
    this.servedStale++;
    const out = this.build(req, w.entry!, w.staleTtlSec);
    req.respondedBy = 'cache';
    req.rcode = headerRcode(out);
    req.responseLen = out.length;
    w.prev!.writeMsg(req, out, out.length);
  }

  /** The verification failed: the client gets the stale entry instead. */
  private serveStaleInstead(w: CacheWriter, req: Request): void {
    const e = w.entry!;
    if (w.fallback) e.failedAtMs = Math.floor(this.clock());
    this.servedStale++;
    const out = this.build(req, e, w.staleTtlSec);
    req.respondedBy = 'cache';
    req.rcode = headerRcode(out);
    req.responseLen = out.length;
    w.prev!.writeMsg(req, out, out.length);
  }

  /** CoreDNS's cache duration for a response (seconds). */
  private durationSec(cls: ResponseClassValue, s: ResponseScan): number {
    const cfg = this.config;
    if (cls === ResponseClass.SERVER_ERROR) return this.servfailSec;
    let msgTtl: number;
    if (cls === ResponseClass.NO_ERROR || cls === ResponseClass.NAME_ERROR || cls === ResponseClass.NO_DATA) {
      msgTtl = s.recordCount === 0 ? MIN_TTL_SEC : Math.min(MAX_TTL_SEC, s.minTtl);
    } else {
      msgTtl = MIN_TTL_SEC;
    }
    if (cls === ResponseClass.NAME_ERROR || cls === ResponseClass.NO_DATA) {
      // RFC 2308 §5: the negative TTL is min(SOA TTL, SOA MINIMUM).
      if (s.soaNegativeTtl >= 0 && s.soaNegativeTtl < msgTtl) msgTtl = s.soaNegativeTtl;
      return clamp(msgTtl, cfg.denial.minTtlSec, cfg.denial.maxTtlSec);
    }
    return clamp(msgTtl, cfg.success.minTtlSec, cfg.success.maxTtlSec);
  }

  /** Stores a scanned, cacheable response for req's key. */
  private store(req: Request, msg: Buffer, cls: ResponseClassValue, durationSec: number, refreshed: Entry | null): void {
    const s = this.scan;
    const kind: EntryKindValue = cls === ResponseClass.NO_ERROR || cls === ResponseClass.DELEGATION ? EntryKind.SUCCESS : EntryKind.DENIAL;
    const except = kind === EntryKind.SUCCESS ? this.disableSuccess : this.disableDenial;
    if (except !== null && except.contains(req.msg, req.qnameEnd)) return;
    // OPT is hop-by-hop and is rebuilt per client; it must be the last record to be cut off.
    let end = s.end;
    if (s.optStart >= 0) {
      if (s.optEnd !== s.end) return;
      end = s.optStart;
    }
    const arcount = s.optStart >= 0 ? s.arcount - 1 : s.arcount;
    const keyFlags = (req.dnssecOk ? KeyFlag.DO : 0) | ((req.flags & Flag.CD) !== 0 ? KeyFlag.CD : 0);
    const now = this.clock();
    const target = kind === EntryKind.SUCCESS ? this.success : this.denial;
    const other = kind === EntryKind.SUCCESS ? this.denial : this.success;
    const e = target.acquire();
    target.fill(e, req.nameHash, req.qtype, req.qclass, keyFlags, kind, req.qnameEnd, now, durationSec, msg, end, arcount, s.ttlOffsets);
    if (refreshed !== null) {
      // CoreDNS doPrefetch: the new item keeps the popularity gathered so far.
      e.freqHits = refreshed.freqHits;
      e.freqLastMs = Math.floor(now);
    }
    const stale = other.find(req.msg, e.qnameEnd, e.nameHash, e.qtype, e.qclass, keyFlags, e.keyHash);
    if (stale !== null) other.remove(stale);
    if (target.insert(e)) {
      if (kind === EntryKind.SUCCESS) this.evictionsSuccess++;
      else this.evictionsDenial++;
    }
  }
}

/** CoreDNS computeTTL, kept within the 31 bits a TTL field may carry (RFC 2181 §8). */
function clamp(ttl: number, min: number, max: number): number {
  let v = ttl;
  if (v < min) v = min;
  if (v > max) v = max;
  return Math.min(v, 0x7fffffff);
}
