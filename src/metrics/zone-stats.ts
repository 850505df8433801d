/**
 * Per (server, zone) DNS query statistics: the counters behind CoreDNS's
 * coredns_dns_* metrics (plugin/metrics/vars), recorded on every reply.
 *
 * Hot-path contract: `ZoneStats.record(req, durationSec)` only indexes preallocated typed
 * arrays through precomputed tables (qtype → monitored-type index, responder name → index,
 * rcode → slot). It builds no strings, allocates nothing after a responder's first reply, and
 * never touches prom-client. The exposition turns these arrays into samples at scrape time
 * (`collect`).
 *
 * Label values are CoreDNS's: server `dns://169.254.20.10:53`, zone `cluster.local.` (or
 * `dropped` for queries answered before routing), view "", proto `udp`/`tcp`, family `1`/`2`,
 * type from the monitored list or `other`, rcode from miekg/dns names, plugin = the plugin
 * that wrote the reply ("" when the server did).
 *
 * Which series are exported: CoreDNS records only in blocks that have the `prometheus`
 * plugin, plus the server's own `dropped` reports. Recording here always happens; a route's
 * stats are exported once the prometheus plugin of its block called `monitor(server, zone)`
 * (a server label with port 0, as tests configure, matches the label with the bound port).
 * Stats live for the process lifetime, so counters stay monotonic across reloads, as
 * CoreDNS's global metric vectors do.
 */
import type { Request } from '../server/request.ts';
import { HistogramSet } from './histogram.ts';
import {
  FAMILY_LABELS,
  PROTO_LABELS,
  RCODE_SLOTS,
  SIZE_BUCKETS,
  TIME_BUCKETS,
  TYPE_INDEX,
  TYPE_LABEL_COUNT,
  MONITORED_TYPE_LABELS,
  rcodeLabel,
} from './labels.ts';
import type { SnapshotBuilder } from './snapshot.ts';

/** CoreDNS's zone label for queries the server answered without a plugin chain (vars.Dropped). */
export const DROPPED_ZONE = 'dropped';

/** Metric names and help texts of the current CoreDNS (1.11+) DNS metrics. */
export const DNS_METRICS = {
  requests: { name: 'coredns_dns_requests_total', help: 'Counter of DNS requests made per zone, protocol and family.' },
  duration: { name: 'coredns_dns_request_duration_seconds', help: 'Histogram of the time (in seconds) each request took per zone.' },
  requestSize: { name: 'coredns_dns_request_size_bytes', help: 'Size of the EDNS0 UDP buffer in bytes (64K for TCP) per zone and protocol.' },
  doRequests: { name: 'coredns_dns_do_requests_total', help: 'Counter of DNS requests with DO bit set per zone.' },
  responseSize: { name: 'coredns_dns_response_size_bytes', help: 'Size of the returned response in bytes.' },
  responses: { name: 'coredns_dns_responses_total', help: 'Counter of response status codes.' },
  panics: { name: 'coredns_panics_total', help: 'A metrics that counts the number of panics.' },
  drops: { name: 'nodelocaldns_dropped_packets_total', help: 'Packets dropped before routing (shorter than a DNS header, or responses), by reason.' },
} as const;

/**
 * Names of the plugins that wrote replies, interned to small indexes shared by every
 * ZoneStats (index 0 is "", the server itself).
 */
class ResponderTable {
  readonly names: string[] = [''];
  private readonly index = new Map<string, number>([['', 0]]);
  private lastName = '';
  private lastIndex = 0;

  indexOf(name: string): number {
    if (name === this.lastName) return this.lastIndex;
    let i = this.index.get(name);
    if (i === undefined) {
      i = this.names.length;
      this.names.push(name);
      this.index.set(name, i);
    }
    this.lastName = name;
    this.lastIndex = i;
    return i;
  }
}

const responders = new ResponderTable();

export class ZoneStats {
  readonly server: string;
  readonly zone: string;
  readonly view: string;
  /** Requests by [proto][family][type label]: (proto*2 + family)*TYPE_LABEL_COUNT + type. */
  readonly requests = new Float64Array(4 * TYPE_LABEL_COUNT);
  doRequests = 0;
  /** Replies per responder: responses[responder][rcode] for rcodes below RCODE_SLOTS. */
  readonly responses: (Float64Array | undefined)[] = [];
  /** Replies with rcodes >= RCODE_SLOTS (extended rcodes; practically never): "rcode|responder" → count. */
  private extendedResponses: Map<string, number> | null = null;
  readonly duration = new HistogramSet(TIME_BUCKETS, 1);
  /** Per proto (0 udp, 1 tcp). */
  readonly requestSize = new HistogramSet(SIZE_BUCKETS, 2);
  readonly responseSize = new HistogramSet(SIZE_BUCKETS, 2);

  constructor(server: string, zone: string, view = '') {
    this.server = server;
    this.zone = zone;
    this.view = view;
  }

  /**
   * Records one answered query (CoreDNS's vars.Report): the request's transport, family,
   * qtype, DO bit and size, the reply's rcode, size and writer, and the time it took.
   */
  record(req: Request, durationSec: number): void {
    const proto = req.proto === 1 ? 1 : 0;
    const fam = req.family === 6 ? 1 : 0;
    this.requests[(proto * 2 + fam) * TYPE_LABEL_COUNT + TYPE_INDEX[req.qtype & 0xffff]!]!++;
    if (req.dnssecOk) this.doRequests++;
    this.duration.observe(0, durationSec);
    this.requestSize.observe(proto, req.msgLen);
    this.responseSize.observe(proto, req.responseLen);
    const who = responders.indexOf(req.respondedBy);
    const rcode = req.rcode;
    if (rcode >= 0 && rcode < RCODE_SLOTS) {
      let row = this.responses[who];
      if (row === undefined) {
        row = new Float64Array(RCODE_SLOTS);
        this.responses[who] = row;
      }
      row[rcode]!++;
    } else {
      this.countExtended(rcode, who);
    }
  }

  private countExtended(rcode: number, who: number): void {
    const m = (this.extendedResponses ??= new Map());
    const k = `${rcode}|${who}`;
    m.set(k, (m.get(k) ?? 0) + 1);
  }

  /** Writes this zone's samples (only non-zero series exist, as with client_golang vectors). */
  collect(out: SnapshotBuilder): void {
    const base = { server: this.server, view: this.view, zone: this.zone };
    const req = out.family(DNS_METRICS.requests.name, DNS_METRICS.requests.help, 'counter');
    for (let proto = 0; proto < 2; proto++) {
      for (let fam = 0; fam < 2; fam++) {
        for (let t = 0; t < TYPE_LABEL_COUNT; t++) {
          const v = this.requests[(proto * 2 + fam) * TYPE_LABEL_COUNT + t]!;
          if (v === 0) continue;
          req.add({ ...base, proto: PROTO_LABELS[proto]!, family: FAMILY_LABELS[fam]!, type: MONITORED_TYPE_LABELS[t]! }, v);
        }
      }
    }
    if (this.doRequests > 0) out.family(DNS_METRICS.doRequests.name, DNS_METRICS.doRequests.help, 'counter').add(base, this.doRequests);
    const resp = out.family(DNS_METRICS.responses.name, DNS_METRICS.responses.help, 'counter');
    for (let who = 0; who < this.responses.length; who++) {
      const row = this.responses[who];
      if (row === undefined) continue;
      for (let rc = 0; rc < RCODE_SLOTS; rc++) {
        if (row[rc] === 0) continue;
        resp.add({ ...base, rcode: rcodeLabel(rc), plugin: responders.names[who]! }, row[rc]!);
      }
    }
    if (this.extendedResponses) {
      for (const [k, v] of this.extendedResponses) {
        const [rc, who] = k.split('|').map(Number) as [number, number];
        resp.add({ ...base, rcode: rcodeLabel(rc), plugin: responders.names[who]! }, v);
      }
    }
    if (this.duration.count(0) > 0) {
      out
        .family(DNS_METRICS.duration.name, DNS_METRICS.duration.help, 'histogram', { bounds: TIME_BUCKETS })
        .addHistogram(base, this.duration.bucketCounts(0), this.duration.sums[0]!);
    }
    for (let proto = 0; proto < 2; proto++) {
      if (this.requestSize.count(proto) === 0) continue;
      const labels = { ...base, proto: PROTO_LABELS[proto]! };
      out
        .family(DNS_METRICS.requestSize.name, DNS_METRICS.requestSize.help, 'histogram', { bounds: SIZE_BUCKETS })
        .addHistogram(labels, this.requestSize.bucketCounts(proto), this.requestSize.sums[proto]!);
      out
        .family(DNS_METRICS.responseSize.name, DNS_METRICS.responseSize.help, 'histogram', { bounds: SIZE_BUCKETS })
        .addHistogram(labels, this.responseSize.bucketCounts(proto), this.responseSize.sums[proto]!);
    }
  }
}

function routeKey(server: string, zone: string, view: string): string {
  return `${server}\u0000${zone}\u0000${view}`;
}

/** All ZoneStats of a process (or of one worker), plus the server-level panic and drop counts. */
export class ZoneStatsRegistry {
  private readonly byKey = new Map<string, ZoneStats>();
  panics = 0;
  private readonly drops = new Map<string, number>();
  private readonly monitored = new Set<string>();
  /** Routes monitored with a port-0 server label: [label prefix up to the port, zone, view]. */
  private readonly monitoredAnyPort: [string, string, string][] = [];

  /** The stats of one (server label, zone) route; the same object for the process lifetime. */
  get(server: string, zone: string, view = ''): ZoneStats {
    const key = routeKey(server, zone, view);
    let s = this.byKey.get(key);
    if (s === undefined) {
      s = new ZoneStats(server, zone, view);
      this.byKey.set(key, s);
    }
    return s;
  }

  /** Marks a route as exported (called by the prometheus plugin for its block's routes). */
  monitor(server: string, zone: string, view = ''): void {
    if (server.endsWith(':0')) {
      const prefix = server.slice(0, -1);
      if (!this.monitoredAnyPort.some(([p, z, v]) => p === prefix && z === zone && v === view)) this.monitoredAnyPort.push([prefix, zone, view]);
    } else this.monitored.add(routeKey(server, zone, view));
  }

  /** Whether a route's stats are exported (the server's own `dropped` reports always are). */
  isMonitored(s: ZoneStats): boolean {
    if (s.zone === DROPPED_ZONE || this.monitored.has(routeKey(s.server, s.zone, s.view))) return true;
    for (const [prefix, zone, view] of this.monitoredAnyPort) {
      if (zone === s.zone && view === s.view && s.server.startsWith(prefix) && /^[0-9]+$/.test(s.server.slice(prefix.length))) return true;
    }
    return false;
  }

  all(): ZoneStats[] {
    return [...this.byKey.values()];
  }

  countDrop(reason: string): void {
    this.drops.set(reason, (this.drops.get(reason) ?? 0) + 1);
  }

  dropCount(reason: string): number {
    return this.drops.get(reason) ?? 0;
  }

  countPanic(): void {
    this.panics++;
  }

  collect(out: SnapshotBuilder): void {
    out.family(DNS_METRICS.panics.name, DNS_METRICS.panics.help, 'counter').add({}, this.panics);
    if (this.drops.size > 0) {
      const f = out.family(DNS_METRICS.drops.name, DNS_METRICS.drops.help, 'counter');
      for (const [reason, n] of this.drops) f.add({ reason }, n);
    }
    for (const s of this.byKey.values()) if (this.isMonitored(s)) s.collect(out);
  }
}

/** The process's (this thread's) registry, used by the server and the prometheus plugin. */
export const zoneStatsRegistry = new ZoneStatsRegistry();

/** Stats object for a route; call once per route at config load and keep it. */
export function getZoneStats(server: string, zone: string): ZoneStats {
  return zoneStatsRegistry.get(server, zone);
}

/**
 * Counts a packet dropped before routing (`short`: shorter than a header; `response`: QR set).
 * CoreDNS does not count these (miekg/dns drops them); they are exported as
 * nodelocaldns_dropped_packets_total{reason}.
 */
export function countDrop(reason: string): void {
  zoneStatsRegistry.countDrop(reason);
}

/** Counts a handler that threw (coredns_panics_total). */
export function countPanic(): void {
  zoneStatsRegistry.countPanic();
}

/**
 * The route monitor: exports the per-zone query stats of every server label × zone of `blocks`
 * (queries of routes not monitored are not reported, as in CoreDNS). The metrics plugin calls it for
 * its block when it starts; a worker, which starts no process-scoped plugin, calls it after each
 * config it applies for the blocks that enable metrics (src/workers/worker.ts).
 */
export function monitorRoutes(
  zoneStats: Pick<ZoneStatsRegistry, 'monitor'>,
  blocks: Iterable<{ readonly serverLabels: readonly string[]; readonly zones: readonly string[] }>,
): void {
  for (const b of blocks) for (const server of b.serverLabels) for (const zone of b.zones) zoneStats.monitor(server, zone);
}
