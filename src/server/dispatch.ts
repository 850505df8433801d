/**
 * From bytes to a chain: parse the query, route it to the longest matching zone of the
 * listener, run the block's chain. Errors the server answers itself (FORMERR, NOTIMP,
 * BADVERS, REFUSED for no zone, SERVFAIL when a handler throws) are built here.
 */
import { performance } from 'node:perf_hooks';
import type { Clock, Handler } from '../plugin.ts';
import type { Request } from './request.ts';
import { ParseResult, parseQuery } from '../wire/query.ts';
import { buildEmptyResponse } from '../wire/message.ts';
import { Header, Rcode } from '../wire/codes.ts';
import type { ZoneMatcher } from '../wire/zone-match.ts';
import { getZoneStats, countDrop, countPanic, type ZoneStats } from '../metrics/zone-stats.ts';
import { log } from '../util/log.ts';

/** The server clock: monotonic milliseconds. */
export function defaultClock(): number {
  return performance.now();
}

/** What a zone of a block resolves to on one listener. */
export class RouteTarget {
  readonly chain: Handler;
  readonly stats: ZoneStats;
  readonly errorSink: Request['errorSink'];
  /** The config generation this route belongs to (for draining on reload/shutdown). */
  readonly generation: Generation;
  constructor(chain: Handler, stats: ZoneStats, errorSink: Request['errorSink'], generation: Generation) {
    this.chain = chain;
    this.stats = stats;
    this.errorSink = errorSink;
    this.generation = generation;
  }
}

/** Counts queries in flight per loaded config, so an old config is stopped only once idle. */
export class Generation {
  inFlight = 0;
  readonly id: number;
  constructor(id: number) {
    this.id = id;
  }
}

/** Per listener: its label and the zone table currently serving (swapped on reload). */
export class Dispatcher {
  readonly serverLabel: string;
  table: ZoneMatcher<RouteTarget>;
  /** Stats for queries answered before routing (FORMERR, REFUSED): CoreDNS's zone "dropped". */
  private readonly unroutedStats: ZoneStats;
  /** Global in-flight count across generations of this listener. */
  inFlight = 0;
  /**
   * The engine's clock (the one plugins get): transports stamp `req.startMs` with it, so
   * plugins may use the arrival time as "now" for synchronous work (the cache hit does).
   */
  readonly clock: Clock;

  constructor(serverLabel: string, table: ZoneMatcher<RouteTarget>, clock: Clock = defaultClock) {
    this.serverLabel = serverLabel;
    this.table = table;
    this.clock = clock;
    this.unroutedStats = getZoneStats(serverLabel, 'dropped');
  }

  /**
   * An internal query (Request.lookup): routed by zone like a client's and served by that
   * block's chain; REFUSED when no zone matches, SERVFAIL when a handler throws. Its reply
   * goes to its own writer; it is not counted as a client query.
   */
  private readonly lookup = (sub: Request): void => {
    sub.server = this.serverLabel;
    sub.lookup = this.lookup;
    const route = this.table.match(sub.msg, sub.qnameEnd);
    if (route === null) {
      sub.fail('', Rcode.REFUSED, null);
      return;
    }
    sub.zone = route.zone;
    sub.target = route.target;
    sub.errorSink = route.target.errorSink;
    try {
      route.target.chain.serve(sub);
    } catch (err) {
      countPanic();
      log.error(`Recovered from panic in server: "${this.serverLabel}" ${(err as Error)?.stack ?? String(err)}`);
      sub.fail('', Rcode.SERVFAIL, null);
    }
  };

  /** Handles one parsed-or-not query. Never throws. */
  dispatch(req: Request): void {
    req.server = this.serverLabel;
    req.lookup = this.lookup;
    const res = parseQuery(req);
    if (res !== ParseResult.OK) {
      if (res === ParseResult.DROP) {
        countDrop(req.msgLen < Header.SIZE ? 'short' : 'response');
        return;
      }
      const rcode = res === ParseResult.FORMERR ? Rcode.FORMERR : res === ParseResult.NOTIMP ? Rcode.NOTIMP : Rcode.BADVERS;
      this.inFlight++;
      req.target = null;
      const out = buildEmptyResponse(req, rcode);
      req.reply(out, out.length, '');
      return;
    }
    const route = this.table.match(req.msg, req.qnameEnd);
    this.inFlight++;
    if (route === null) {
      req.target = null;
      const out = buildEmptyResponse(req, Rcode.REFUSED);
      req.reply(out, out.length, '');
      return;
    }
    const target = route.target;
    req.zone = route.zone;
    req.target = target;
    req.errorSink = target.errorSink;
    target.generation.inFlight++;
    try {
      target.chain.serve(req);
    } catch (err) {
      countPanic();
      log.error(`Recovered from panic in server: "${this.serverLabel}" ${(err as Error)?.stack ?? String(err)}`);
      if (!req.replied) {
        const out = buildEmptyResponse(req, Rcode.SERVFAIL);
        req.reply(out, out.length, '');
      }
    }
  }

  /** Called by the transport once the response bytes are handed to the socket. */
  finish(req: Request): void {
    this.inFlight--;
    const target = req.target as RouteTarget | null;
    const durationSec = (this.clock() - req.startMs) / 1000;
    if (target !== null) {
      target.generation.inFlight--;
      target.stats.record(req, durationSec);
    } else {
      this.unroutedStats.record(req, durationSec);
    }
  }
}
