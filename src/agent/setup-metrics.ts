/**
 * node-cache's own metric: `coredns_nodecache_setup_errors_total{errortype}`, counting failures of
 * the periodic network set-up and of Corefile templating, every error type pre-set to 0 so the
 * series exist from the start. Served with the process metrics on `-metrics-listen-address`
 * (default 0.0.0.0:9353) at /metrics, separate from the DNS metrics of the `prometheus` plugin,
 * with the same listener bounds (createHardenedServer) and at most one render per second.
 *
 * The listener is started with listenWithRetry(): an address that cannot be bound yet (the local
 * IP before its interface exists: EADDRNOTAVAIL; a port still held by a predecessor: EADDRINUSE)
 * is retried with a growing delay (1 s doubling to 30 s) until it binds or the process stops,
 * each failure logged and counted in nodelocaldns_setup_metrics_listen_errors_total (node-cache
 * tries once and serves no metrics for the life of the pod). The port is bound with SO_REUSEPORT,
 * as every HTTP listener of the process: a surge pod shares it with the old one (a predecessor
 * that bound it without SO_REUSEPORT still gives EADDRINUSE, retried as above).
 *
 * Rendered by src/metrics (the DNS metrics' exposition and process metrics), not prom-client:
 * prom-client cost 5–10 MiB of RSS (bench/PROFILE.md, Footprint).
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { splitListenAddress } from '../cli/options.ts';
import { createHardenedServer, type HttpLimits } from '../metrics/http-endpoints.ts';
import { PROMETHEUS_CONTENT_TYPE, RenderScheduler, SCRAPE_RENDER_INTERVAL_MS, loadNodeProcessMetrics, renderExposition } from '../metrics/hub.ts';
import type { NodeProcessMetrics } from '../metrics/node-metrics.ts';
import { SnapshotBuilder } from '../metrics/snapshot.ts';

export const SetupErrorType = {
  IPTABLES: 'iptables',
  IPTABLES_LOCK: 'iptables_lock',
  INTERFACE_ADD: 'interface_add',
  INTERFACE_CHECK: 'interface_check',
  CONFIGMAP: 'configmap',
} as const;
export type SetupErrorType = (typeof SetupErrorType)[keyof typeof SetupErrorType];

export const SETUP_ERRORS_METRIC = 'coredns_nodecache_setup_errors_total';
const LISTEN_ERRORS_METRIC = 'nodelocaldns_setup_metrics_listen_errors_total';

/** First retry delay of listenWithRetry, doubled after each failure up to LISTEN_RETRY_MAX_MS. */
const LISTEN_RETRY_INITIAL_MS = 1_000;
const LISTEN_RETRY_MAX_MS = 30_000;

export interface ListenRetryOptions {
  log: { info(msg: string): void; error(msg: string): void };
  initialDelayMs?: number;
  maxDelayMs?: number;
  limits?: Readonly<HttpLimits>;
}

export class SetupMetrics {
  readonly #errors = new Map<SetupErrorType, number>(Object.values(SetupErrorType).map((t) => [t, 0]));
  #listenErrors = 0;
  readonly #withProcessMetrics: boolean;
  #processMetrics: NodeProcessMetrics | null = null;
  #retryTimer: NodeJS.Timeout | undefined;
  #closed = false;
  /** /metrics renders: at most one per interval, shared by the scrapes it answers (as the DNS metrics'). */
  readonly scrapes: RenderScheduler;
  #server: Server | undefined;

  constructor(opts: { processMetrics?: boolean; renderIntervalMs?: number } = {}) {
    this.#withProcessMetrics = opts.processMetrics ?? true;
    this.scrapes = new RenderScheduler(() => this.render(), opts.renderIntervalMs ?? SCRAPE_RENDER_INTERVAL_MS);
  }

  inc(type: SetupErrorType): void {
    this.#errors.set(type, (this.#errors.get(type) ?? 0) + 1);
  }

  /** Current count for one error type. */
  async count(type: SetupErrorType): Promise<number> {
    return this.#errors.get(type) ?? 0;
  }

  /** The exposition: the set-up error counters, the listen errors and the process metrics. */
  async render(): Promise<string> {
    const b = new SnapshotBuilder();
    const errors = b.family(SETUP_ERRORS_METRIC, 'Errors met by node-local-dns while setting up the interface, iptables rules and Corefile', 'counter');
    for (const [errortype, n] of this.#errors) errors.add({ errortype }, n);
    b.family(LISTEN_ERRORS_METRIC, 'Failed attempts to start the -metrics-listen-address listener (retried until it binds)', 'counter').add(
      {},
      this.#listenErrors,
    );
    if (this.#withProcessMetrics) this.#processMetrics ??= await loadNodeProcessMetrics();
    return renderExposition(b.build().families, this.#processMetrics);
  }

  /**
   * Starts the /metrics listener on `host:port`; resolves with the bound address. The listener
   * has the bounds of every HTTP listener of the process (src/metrics/http-endpoints.ts).
   */
  listen(address: string, opts: { limits?: Readonly<HttpLimits> } = {}): Promise<AddressInfo> {
    const { host, port } = splitListenAddress(address, 'metrics-listen-address');
    const server = createHardenedServer(
      address,
      (req, res) => {
        const path = (req.url ?? '').split('?')[0];
        if (path !== '/metrics' || (req.method !== 'GET' && req.method !== 'HEAD')) {
          res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('404 page not found\n');
          return;
        }
        this.scrapes.request().then(
          ({ body }) => {
            if (res.destroyed) return;
            res.writeHead(200, { 'content-type': PROMETHEUS_CONTENT_TYPE, 'content-length': body.length });
            res.end(req.method === 'HEAD' ? undefined : body);
          },
          (err: unknown) => {
            if (res.destroyed) return;
            res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end(`${String(err)}\n`);
          },
        );
      },
      opts,
    );
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      // SO_REUSEPORT: a second instance on the node (a surge pod) binds the same port (http-endpoints.ts header).
      server.listen({ host: host === '' ? undefined : host, port, reusePort: true }, () => {
        server.off('error', reject);
        this.#server = server;
        resolve(server.address() as AddressInfo);
      });
    });
  }

  /** The bound address while the listener runs. */
  get address(): AddressInfo | undefined {
    return (this.#server?.address() as AddressInfo | null) ?? undefined;
  }

  /** Failed listen attempts so far. */
  async listenErrors(): Promise<number> {
    return this.#listenErrors;
  }

  /**
   * Binds `address` now; when that fails, logs, counts and retries in the background (1 s,
   * 2 s, ... 30 s) until it binds or close() is called. Resolves after the first attempt with
   * the bound address, or undefined when that attempt failed.
   */
  async listenWithRetry(address: string, o: ListenRetryOptions): Promise<AddressInfo | undefined> {
    const initial = o.initialDelayMs ?? LISTEN_RETRY_INITIAL_MS;
    const max = o.maxDelayMs ?? LISTEN_RETRY_MAX_MS;
    let failures = 0;
    const attempt = async (delay: number): Promise<AddressInfo | undefined> => {
      if (this.#closed) return undefined;
      try {
        const a = await this.listen(address, { limits: o.limits });
        if (this.#closed) {
          await this.close();
          return undefined;
        }
        if (failures > 0) o.log.info(`Metrics handler listening on ${address} after ${failures} failed attempt(s)`);
        return a;
      } catch (err) {
        failures++;
        this.#listenErrors++;
        if (this.#closed) return undefined;
        o.log.error(`Failed to start metrics handler on ${address}: ${(err as Error).message}; retrying in ${formatDelay(delay)}`);
        this.#retryTimer = setTimeout(() => {
          this.#retryTimer = undefined;
          void attempt(Math.min(delay * 2, max));
        }, delay);
        this.#retryTimer.unref();
        return undefined;
      }
    };
    return attempt(Math.min(initial, max));
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#retryTimer) clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    this.#processMetrics?.stop();
    const s = this.#server;
    this.#server = undefined;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}

function formatDelay(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}
