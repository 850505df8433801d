/**
 * node-cache's own metric: `coredns_nodecache_setup_errors_total{errortype}`, counting failures of
 * the periodic network set-up and of Corefile templating, every error type pre-set to 0 so the
 * series exist from the start. Served with the process metrics on `-metrics-listen-address`
 * (default 0.0.0.0:9353) at /metrics, separate from the DNS metrics of the `prometheus` plugin,
 * with the same listener bounds (createHardenedServer) and at most one render per second.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Registry, collectDefaultMetrics } from 'prom-client';
import { splitListenAddress } from '../cli/options.ts';
import { createHardenedServer, type HttpLimits } from '../metrics/http-endpoints.ts';
import { RenderScheduler, SCRAPE_RENDER_INTERVAL_MS } from '../metrics/hub.ts';

export const SETUP_ERROR_TYPES = {
  iptables: 'iptables',
  iptablesLock: 'iptables_lock',
  interfaceAdd: 'interface_add',
  interfaceCheck: 'interface_check',
  configmap: 'configmap',
} as const;
export type SetupErrorType = (typeof SETUP_ERROR_TYPES)[keyof typeof SETUP_ERROR_TYPES];

export const SETUP_ERRORS_METRIC = 'coredns_nodecache_setup_errors_total';

export class SetupMetrics {
  readonly registry: Registry;
  readonly #errors: Counter<'errortype'>;
  /** /metrics renders: at most one per interval, shared by the scrapes it answers (as the DNS metrics'). */
  readonly scrapes: RenderScheduler;
  #server: Server | undefined;

  constructor(opts: { processMetrics?: boolean; renderIntervalMs?: number } = {}) {
    this.registry = new Registry();
    this.scrapes = new RenderScheduler(() => this.registry.metrics(), opts.renderIntervalMs ?? SCRAPE_RENDER_INTERVAL_MS);
    this.#errors = new Counter({
      name: SETUP_ERRORS_METRIC,
      help: 'Errors met by node-local-dns while setting up the interface, iptables rules and Corefile',
      labelNames: ['errortype'],
      registers: [this.registry],
    });
    for (const t of Object.values(SETUP_ERROR_TYPES)) this.#errors.inc({ errortype: t }, 0);
    if (opts.processMetrics ?? true) collectDefaultMetrics({ register: this.registry });
  }

  inc(type: SetupErrorType): void {
    this.#errors.inc({ errortype: type });
  }

  /** Current count for one error type. */
  async count(type: SetupErrorType): Promise<number> {
    const m = await this.#errors.get();
    return m.values.find((v) => v.labels.errortype === type)?.value ?? 0;
  }

  /**
   * Starts the /metrics listener on `host:port`; resolves with the bound address. The listener
   * has the bounds of every HTTP listener of the process (src/metrics/http-endpoints.ts).
   */
  listen(address: string, opts: { limits?: Readonly<HttpLimits> } = {}): Promise<AddressInfo> {
    const { host, port } = splitListenAddress(address, 'metrics-listen-address');
    const server = createHardenedServer(address, (req, res) => {
      const path = (req.url ?? '').split('?')[0];
      if (path !== '/metrics' || (req.method !== 'GET' && req.method !== 'HEAD')) {
        res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('404 page not found\n');
        return;
      }
      this.scrapes.request().then(
        ({ body }) => {
          if (res.destroyed) return;
          res.writeHead(200, { 'content-type': this.registry.contentType, 'content-length': body.length });
          res.end(req.method === 'HEAD' ? undefined : body);
        },
        (err: unknown) => {
          if (res.destroyed) return;
          res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end(`${String(err)}\n`);
        },
      );
    }, opts);
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: host === '' ? undefined : host, port }, () => {
        server.off('error', reject);
        this.#server = server;
        resolve(server.address() as AddressInfo);
      });
    });
  }

  async close(): Promise<void> {
    const s = this.#server;
    this.#server = undefined;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}
