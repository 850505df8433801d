/**
 * Process-wide metrics that are not per zone and belong to no plugin: build info and the
 * server's own bounds. Plain fields, exported at scrape time (plugins export theirs from their
 * folders, see src/plugin.ts).
 *
 * node-local-dns's own: nodelocaldns_http_connections_dropped_total{address,reason} (the HTTP
 * listeners' bounds, see HttpDropReason) and nodelocaldns_metrics_renders_total (how often the
 * exposition was built, see MetricsHub.scrape) and nodelocaldns_log_lines_dropped_total{stream}
 * (src/util/log.ts writeLine), each exported from its first event.
 */
import type { SnapshotBuilder } from './snapshot.ts';
import { VERSION } from '../version.ts';
import { droppedLogLines } from '../util/log.ts';

export const PROCESS_METRICS = {
  buildInfo: {
    name: 'coredns_build_info',
    help: "A metric with a constant '1' value labeled by version, revision, and goversion from which CoreDNS was built.",
  },
  httpDropped: {
    name: 'nodelocaldns_http_connections_dropped_total',
    help: 'Connections to the HTTP listeners (metrics, health, ready) closed by a bound, by listen address and reason.',
  },
  logLinesDropped: {
    name: 'nodelocaldns_log_lines_dropped_total',
    help: 'Log lines dropped because the log reader fell behind (more than 1 MiB unwritten on that stream), by stream.',
  },
  metricsRenders: {
    name: 'nodelocaldns_metrics_renders_total',
    help: 'Times the /metrics exposition was rendered (scrapes within one render interval share a render).',
  },
} as const;

/**
 * Why a bound closed an HTTP connection (src/metrics/http-endpoints.ts `hardenHttpServer`):
 *  - evicted: the listener was at its connection cap and this was its least recently active
 *    connection without a request in progress, closed to admit a new one;
 *  - evicted_busy: the same, when every held connection had a request in progress;
 *  - timeout: headers or request not received in time, or the socket inactive too long;
 *  - bad_request: malformed request or headers over the size limit;
 *  - accept_error: accept() failed and Node reported it (ENOBUFS, ENOMEM...). EMFILE/ENFILE are
 *    normally absorbed by libuv, which closes the pending connections with a reserved
 *    descriptor without telling the process: the connection caps keep the process from there.
 */
export const HttpDropReason = {
  EVICTED: 'evicted',
  EVICTED_BUSY: 'evicted_busy',
  TIMEOUT: 'timeout',
  BAD_REQUEST: 'bad_request',
  ACCEPT_ERROR: 'accept_error',
} as const;
export type HttpDropReasonValue = (typeof HttpDropReason)[keyof typeof HttpDropReason];

/** nodelocaldns_http_connections_dropped_total: counts per (address, reason), process-wide. */
export class HttpConnectionDrops {
  /** `${address} ${reason}` -> count (an address has no space). */
  private readonly counts = new Map<string, number>();

  add(address: string, reason: HttpDropReasonValue): void {
    const key = `${address} ${reason}`;
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
  }

  count(address: string, reason: HttpDropReasonValue): number {
    return this.counts.get(`${address} ${reason}`) ?? 0;
  }

  collect(out: SnapshotBuilder): void {
    if (this.counts.size === 0) return;
    const m = PROCESS_METRICS.httpDropped;
    const f = out.family(m.name, m.help, 'counter');
    for (const [key, n] of this.counts) {
      const i = key.lastIndexOf(' ');
      f.add({ address: key.slice(0, i), reason: key.slice(i + 1) }, n);
    }
  }
}

/** The process's HTTP listeners all count here (they run on the main thread only). */
export const httpConnectionDrops = new HttpConnectionDrops();

export interface BuildInfo {
  version: string;
  revision: string;
  /** CoreDNS puts runtime.Version() here; we put the Node.js version (`v24.x.y`). */
  goversion: string;
}

export class ProcessMetrics {
  buildInfo: BuildInfo = { version: VERSION, revision: process.env.NODE_LOCAL_DNS_REVISION ?? '', goversion: process.version };
  /** nodelocaldns_http_connections_dropped_total (the process-wide counter unless given). */
  readonly httpDrops: HttpConnectionDrops;
  /** nodelocaldns_metrics_renders_total: renders of the scrape cache (MetricsHub.scrape). */
  metricsRenders = 0;

  constructor(opts: { httpDrops?: HttpConnectionDrops } = {}) {
    this.httpDrops = opts.httpDrops ?? httpConnectionDrops;
  }

  collect(out: SnapshotBuilder): void {
    const b = PROCESS_METRICS;
    out.family(b.buildInfo.name, b.buildInfo.help, 'gauge', { merge: 'max' }).add({ ...this.buildInfo }, 1);
    this.httpDrops.collect(out);
    if (this.metricsRenders > 0) out.family(b.metricsRenders.name, b.metricsRenders.help, 'counter').add({}, this.metricsRenders);
    for (const stream of ['stdout', 'stderr'] as const) {
      const n = droppedLogLines[stream];
      if (n > 0) out.family(b.logLinesDropped.name, b.logLinesDropped.help, 'counter').add({ stream }, n);
    }
  }
}
