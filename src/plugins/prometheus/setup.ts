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
import type { EngineHooks, Handler, Plugin, PluginSetup, SetupContext } from '../../plugin.ts';
import type { Directive } from '../../corefile/types.ts';
import { blockLines, errorAt, expectArgs } from '../../corefile/setup-helpers.ts';
import { metricsHub, type MetricsHub } from '../../metrics/hub.ts';
import { EngineCollector } from '../../metrics/engine-collector.ts';
import { AddressError, httpEndpoints, parseListenAddress, type HttpEndpoints, type Lease } from '../../metrics/http-endpoints.ts';

/** CoreDNS's default metrics address. */
export const DEFAULT_METRICS_ADDRESS = 'localhost:9153';

export interface PrometheusOptions {
  address: string;
  legacy: boolean;
}

/** Parses the directive (no side effects). */
export function parsePrometheus(d: Directive): PrometheusOptions {
  const args = expectArgs(d, 0, 1);
  const address = args.length === 1 ? args[0]!.text : DEFAULT_METRICS_ADDRESS;
  if (args.length === 1) {
    try {
      parseListenAddress(address);
    } catch (err) {
      if (err instanceof AddressError) errorAt(args[0]!, err.message);
      throw err;
    }
  }
  let legacy = false;
  for (const line of blockLines(d)) {
    switch (line.name) {
      case 'legacy_metrics':
      case 'runtime_metrics':
        expectArgs(line, 0, 0);
        if (line.name === 'legacy_metrics') legacy = true;
        break;
      case 'tls':
        errorAt(line, 'tls is not supported by node-local-dns');
        break;
      default:
        errorAt(line, `unknown option: ${line.name}`);
    }
  }
  return { address, legacy };
}

/** The plugins serving each address right now (for `legacy_metrics`). */
const activeByAddress = new Map<string, Set<PrometheusPlugin>>();

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
    let set = activeByAddress.get(this.address);
    if (set === undefined) activeByAddress.set(this.address, (set = new Set()));
    set.add(this);
  }

  async stop(): Promise<void> {
    const lease = this.lease;
    if (lease === null) return;
    this.lease = null;
    activeByAddress.get(this.address)?.delete(this);
    await lease.release({ immediate: this.deps.engine.isShuttingDown() });
  }

  private serve(req: IncomingMessage, res: ServerResponse): void {
    const legacy = [...(activeByAddress.get(this.address) ?? [])].some((p) => p.legacy);
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

export const prometheusSetup: PluginSetup = {
  name: 'prometheus',
  setup(d: Directive, ctx: SetupContext): Plugin {
    const opts = parsePrometheus(d);
    return new PrometheusPlugin(opts, {
      hub: metricsHub(),
      endpoints: httpEndpoints,
      engine: ctx.engine,
      serverLabels: ctx.serverLabels,
      zones: ctx.zones,
    });
  },
};
