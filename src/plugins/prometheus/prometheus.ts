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
import type { IncomingMessage, ServerResponse } from 'node:http';
import { PluginScope } from '../../plugin.ts';
import type { EngineHooks, Handler, Plugin } from '../../plugin.ts';
import type { MetricsHub } from '../../metrics/hub.ts';
import { EngineCollector } from '../../metrics/engine-collector.ts';
import { PluginRoute, TEXT_PLAIN, type HttpEndpoints } from '../../metrics/http-endpoints.ts';
import { monitorRoutes } from '../../metrics/zone-stats.ts';

export interface PrometheusOptions {
  address: string;
  legacy: boolean;
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
  readonly scope = PluginScope.PROCESS;
  readonly handler = true;
  readonly enablesMetrics = true;
  readonly name = 'prometheus';
  readonly address: string;
  readonly legacy: boolean;
  private readonly deps: PrometheusDeps;
  private readonly route: PluginRoute;

  constructor(opts: PrometheusOptions, deps: PrometheusDeps) {
    this.address = opts.address;
    this.legacy = opts.legacy;
    this.deps = deps;
    this.route = new PluginRoute({
      endpoints: deps.endpoints,
      address: opts.address,
      path: '/metrics',
      handler: (req, res) => this.serve(req, res),
      engine: deps.engine,
      owner: this,
    });
  }

  compose(next: Handler): Handler {
    return next;
  }

  /** The bound port (after start). */
  get port(): number {
    return this.route.port;
  }

  async start(): Promise<void> {
    if (this.route.isOpen) return;
    const { hub } = this.deps;
    monitorRoutes(hub.zoneStats, [this.deps]);
    engineCollectorOf(hub).attach(this.deps.engine);
    await this.route.open();
  }

  async stop(): Promise<void> {
    await this.route.close();
  }

  private serve(req: IncomingMessage, res: ServerResponse): void {
    // Every block on this address serves the same text: the 1.6 names if any of them asks.
    const legacy = this.route.holders().some((p) => p instanceof PrometheusPlugin && p.legacy);
    const gzip = /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''));
    // The next render, shared by every scrape it answers (at most one per second, hub.scrape);
    // its gzip is made once per render, on zlib's thread pool.
    this.deps.hub
      .scrape({ legacy })
      .then(async (r) => ({ body: gzip ? await r.gzip() : r.body, gzip }))
      .then(
        ({ body }) => {
          if (res.destroyed) return; // the client left (or was evicted) while waiting
          const headers: Record<string, string | number> = { 'content-type': this.deps.hub.contentType, 'content-length': body.length };
          if (gzip) headers['content-encoding'] = 'gzip';
          res.writeHead(200, headers);
          res.end(req.method === 'HEAD' ? undefined : body);
        },
        (err: unknown) => {
          if (res.destroyed) return;
          res.writeHead(500, { 'content-type': TEXT_PLAIN });
          res.end(`An error has occurred while serving metrics:\n\n${(err as Error).message}\n`);
        },
      );
  }
}
