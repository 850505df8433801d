/**
 * `ready [ADDRESS] { monitor until-ready|continuously }` (CoreDNS plugin/ready): GET /ready on
 * ADDRESS (default `:8181`) answers 200 `OK` once the engine serves (every listener bound),
 * 503 before that, and 503 `Shutting down` from the moment shutdown starts (lameduck
 * included), so load balancers stop sending queries before the listeners close.
 *
 * CoreDNS asks plugins that implement Readiness; node-local-dns's plugins are ready as soon
 * as they are set up, so readiness is the engine's (`isReady()`). `monitor` is parsed for
 * compatibility; both modes behave the same here.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { EngineHooks, Handler, Plugin } from '../../plugin.ts';
import type { HttpEndpoints, Lease } from '../../metrics/http-endpoints.ts';

export const MonitorMode = { UNTIL_READY: 'until-ready', CONTINUOUSLY: 'continuously' } as const;
export type MonitorModeValue = (typeof MonitorMode)[keyof typeof MonitorMode];

export interface ReadyOptions {
  address: string;
  monitor: MonitorModeValue;
}

export interface ReadyDeps {
  endpoints: HttpEndpoints;
  engine: EngineHooks;
}

export class ReadyPlugin implements Plugin {
  readonly name = 'ready';
  readonly address: string;
  readonly monitor: MonitorModeValue;
  private readonly deps: ReadyDeps;
  private lease: Lease | null = null;

  constructor(opts: ReadyOptions, deps: ReadyDeps) {
    this.address = opts.address;
    this.monitor = opts.monitor;
    this.deps = deps;
  }

  compose(next: Handler): Handler {
    return next;
  }

  get port(): number {
    return this.lease?.port ?? 0;
  }

  async start(): Promise<void> {
    if (this.lease !== null) return;
    this.lease = await this.deps.endpoints.acquire(this.address, '/ready', (req, res) => this.serve(req, res));
  }

  async stop(): Promise<void> {
    const lease = this.lease;
    this.lease = null;
    if (lease !== null) await lease.release({ immediate: this.deps.engine.isShuttingDown() });
  }

  private serve(_req: IncomingMessage, res: ServerResponse): void {
    const engine = this.deps.engine;
    const headers = { 'content-type': 'text/plain; charset=utf-8' };
    if (engine.isShuttingDown()) {
      res.writeHead(503, headers);
      res.end('Shutting down');
      return;
    }
    if (!engine.isReady()) {
      res.writeHead(503, headers);
      res.end();
      return;
    }
    res.writeHead(200, headers);
    res.end('OK');
  }
}
