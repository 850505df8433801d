/**
 * `health [ADDRESS] { lameduck DURATION }` (CoreDNS plugin/health): GET /health on ADDRESS
 * (default `:8080`) answers 200 `OK` for as long as the process serves.
 *
 * Lameduck contract with the engine: the plugin exposes `lameduckMs`. When shutdown starts
 * the engine marks itself shutting down (ready answers 503), waits the largest `lameduckMs`
 * of its plugins while still answering DNS (logging `Going into lameduck mode for 5s`), then
 * drains and closes the DNS listeners, and only then calls `stop()`: so /health answers 200
 * during lameduck, as CoreDNS's does.
 *
 * Self check (CoreDNS's "overloaded" loop): once a second the plugin requests its own
 * /health, with a 3 s timeout, and exports the time it took
 * (coredns_health_request_duration_seconds) and the failures
 * (coredns_health_request_failures_total), warning as CoreDNS does when a request fails or
 * takes more than 1 s.
 */
import type { ClientRequest, IncomingMessage, ServerResponse } from 'node:http';
import { PluginScope } from '../../plugin.ts';
import type { EngineHooks, Handler, Logger, Plugin } from '../../plugin.ts';
import { formatGoDuration } from '../../util/duration.ts';
import type { HealthMetrics } from './metrics.ts';
import { PluginRoute, TEXT_PLAIN, dialHost, parseListenAddress, type HttpEndpoints } from '../../metrics/http-endpoints.ts';
// Not `import { ... } from 'node:http'`: an ES-module import of node:http reads every export,
// including the lazy WebSocket/EventSource getters, which loads undici (~70-190 ms of start-up
// here, measured in bench/PROFILE.md). process.getBuiltinModule returns the module as is.
const { request: httpRequest } = process.getBuiltinModule('node:http');

/** Self check period and timeout (CoreDNS: 1 s ticker, 3 s client timeout). */
const SELF_CHECK_INTERVAL_MS = 1000;
const SELF_CHECK_TIMEOUT_MS = 3000;
/** A local /health request slower than this is logged. */
const SLOW_MS = 1000;

export interface HealthOptions {
  address: string;
  lameduckMs: number;
}

export interface HealthDeps {
  metrics: HealthMetrics;
  endpoints: HttpEndpoints;
  engine: EngineHooks;
  log: Logger;
  /** Self check period (tests shorten it). */
  selfCheckIntervalMs?: number;
}

export class HealthPlugin implements Plugin {
  readonly scope = PluginScope.PROCESS;
  readonly handler = false;
  readonly name = 'health';
  readonly address: string;
  /** How long shutdown waits, still serving, before closing listeners (see the module comment). */
  readonly lameduckMs: number;
  private readonly deps: HealthDeps;
  private readonly route: PluginRoute;
  private timer: NodeJS.Timeout | null = null;
  /** The self check in flight, aborted (and not counted) by stop(), as CoreDNS cancels its context. */
  private inFlight: ClientRequest | null = null;

  constructor(opts: HealthOptions, deps: HealthDeps) {
    this.address = opts.address;
    this.lameduckMs = opts.lameduckMs;
    this.deps = deps;
    this.route = new PluginRoute({ endpoints: deps.endpoints, address: opts.address, path: '/health', handler: serveHealth, engine: deps.engine });
  }

  compose(next: Handler): Handler {
    return next;
  }

  get port(): number {
    return this.route.port;
  }

  async start(): Promise<void> {
    if (!(await this.route.open())) return;
    this.timer = setInterval(() => this.selfCheck(), this.deps.selfCheckIntervalMs ?? SELF_CHECK_INTERVAL_MS);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    const pending = this.inFlight;
    this.inFlight = null;
    pending?.destroy();
    await this.route.close();
  }

  /** One self check: GET our own /health, observe the time taken, count failures. */
  private selfCheck(): void {
    if (this.inFlight !== null || !this.route.isOpen) return;
    const { host } = parseListenAddress(this.address);
    const url = `http://${this.address}/health`;
    const metrics = this.deps.metrics;
    const started = performance.now();
    let settled = false;
    const done = (err: Error | null) => {
      if (settled || this.inFlight !== req) return; // already counted, or cancelled by stop()
      settled = true;
      this.inFlight = null;
      const ms = performance.now() - started;
      metrics.duration.observe(ms / 1000);
      if (err !== null) {
        metrics.failures++;
        this.deps.log.warn(`Local health request to "${url}" failed: Get "${url}": ${goNetError(err, this.address)}`);
      } else if (ms > SLOW_MS) {
        this.deps.log.warn(`Local health request to "${url}" took more than 1s: ${formatGoDuration(ms)}`);
      }
    };
    const req = httpRequest(
      { host: dialHost(host), port: this.route.port, path: '/health', method: 'GET', timeout: SELF_CHECK_TIMEOUT_MS, agent: false },
      (res) => {
        res.resume();
        res.on('end', () => done(null));
        res.on('error', (e) => done(e));
      },
    );
    req.on('timeout', () => req.destroy(new Error(`context deadline exceeded (Client.Timeout exceeded while awaiting headers)`)));
    req.on('error', (e) => done(e));
    this.inFlight = req;
    req.end();
  }
}

/** Go's wording for the common failures of a local HTTP GET (else Node's message). */
function goNetError(err: Error, address: string): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ECONNREFUSED') return `dial tcp ${address}: connect: connection refused`;
  if (code === 'ECONNRESET') return 'EOF';
  return err.message;
}

/** CoreDNS's handler: always healthy while the listener is up. */
function serveHealth(_req: IncomingMessage, res: ServerResponse): void {
  res.writeHead(200, { 'content-type': TEXT_PLAIN });
  res.end('OK');
}
