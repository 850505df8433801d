/**
 * `prometheus [ADDRESS] { legacy_metrics }` (CoreDNS plugin/metrics): serves the process's
 * metrics at http://ADDRESS/metrics (default `localhost:9153`; node-local-dns uses `:9253`).
 *
 * Every block naming the same address shares one listener (src/metrics/http-endpoints.ts),
 * and every listener serves the same process-wide metrics, as CoreDNS's shared registry does.
 * The plugin also marks its block's routes as exported (queries of blocks without
 * `prometheus` are not reported, as in CoreDNS) and lets coredns_plugin_enabled list the
 * block's plugins. Recording is done by the server (src/metrics/zone-stats.ts), so the plugin
 * adds nothing to the query path.
 *
 * Options:
 *  - `legacy_metrics`: also serve the CoreDNS 1.6 names (src/metrics/legacy.ts) on this
 *    address. With several blocks on one address, one asking is enough.
 *  - `runtime_metrics`: accepted for Corefile compatibility; Node's runtime metrics
 *    (nodejs_*, process_*) are always served.
 *  - `tls`: not supported (an error).
 */
import { gzipSync } from 'node:zlib';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { EngineHooks, Handler, Plugin } from '../../plugin.ts';
import type { MetricsHub } from '../../metrics/hub.ts';
import { EngineCollector } from '../../metrics/engine-collector.ts';
import type { HttpEndpoints, Lease } from '../../metrics/http-endpoints.ts';

export interface PrometheusOptions {
  address: string;
  legacy: boolean;
}

/** The plugins serving each address of a listener set right now (for `legacy_metrics`). */
const active = new WeakMap<HttpEndpoints, Map<string, Set<PrometheusPlugin>>>();

function activeOn(endpoints: HttpEndpoints, address: string): Set<PrometheusPlugin> {
  let byAddress = active.get(endpoints);
  if (byAddress === undefined) active.set(endpoints, (byAddress = new Map()));
  let set = byAddress.get(address);
  if (set === undefined) byAddress.set(address, (set = new Set()));
  return set;
}

/** One engine collector per hub. */
const engineCollectors = new WeakMap<MetricsHub, EngineCollector>();

function engineCollectorOf(hub: MetricsHub): EngineCollector {
  let c = engineCollectors.get(hub);
  if (c === undefined) {
    c = new EngineCollector();
    hub.addCollector(c);
    engineCollectors.set(hub, c);
  }
  return c;
}

export interface PrometheusDeps {
  hub: MetricsHub;
  endpoints: HttpEndpoints;
  engine: EngineHooks;
  /** The block's server labels and zones: the routes whose queries are exported. */
  serverLabels: readonly string[];
  zones: readonly string[];
}

export class PrometheusPlugin implements Plugin {
  readonly name = 'prometheus';
  readonly address: string;
  readonly legacy: boolean;
  private readonly deps: PrometheusDeps;
  private lease: Lease | null = null;

  constructor(opts: PrometheusOptions, deps: PrometheusDeps) {
    this.address = opts.address;
    this.legacy = opts.legacy;
    this.deps = deps;
  }

  compose(next: Handler): Handler {
    return next;
  }

  /** The bound port (after start). */
  get port(): number {
    return this.lease?.port ?? 0;
  }

  async start(): Promise<void> {
    if (this.lease !== null) return;
    const { hub, serverLabels, zones } = this.deps;
    for (const server of serverLabels) for (const zone of zones) hub.zoneStats.monitor(server, zone);
    engineCollectorOf(hub).attach(this.deps.engine);
    this.lease = await this.deps.endpoints.acquire(this.address, '/metrics', (req, res) => this.serve(req, res));
    activeOn(this.deps.endpoints, this.address).add(this);
  }

  async stop(): Promise<void> {
    const lease = this.lease;
    if (lease === null) return;
    this.lease = null;
    activeOn(this.deps.endpoints, this.address).delete(this);
    await lease.release({ immediate: this.deps.engine.isShuttingDown() });
  }

  private serve(req: IncomingMessage, res: ServerResponse): void {
    const legacy = [...activeOn(this.deps.endpoints, this.address)].some((p) => p.legacy);
    this.deps.hub.render({ legacy }).then(
      (text) => {
        const headers: Record<string, string> = { 'content-type': this.deps.hub.contentType };
        let body: Buffer | string = text;
        if (/\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''))) {
          body = gzipSync(text);
          headers['content-encoding'] = 'gzip';
        }
        res.writeHead(200, headers);
        res.end(req.method === 'HEAD' ? undefined : body);
      },
      (err: unknown) => {
        res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
        res.end(`An error has occurred while serving metrics:\n\n${(err as Error).message}\n`);
      },
    );
  }
}
