/**
 * `ready [ADDRESS] { monitor until-ready|continuously }` (CoreDNS plugin/ready): GET /ready on
 * ADDRESS (default `:8181`) answers 200 `OK` once the engine serves (every listener bound),
 * 503 before that, and 503 `Shutting down` from the moment shutdown starts (lameduck
 * included), so load balancers stop sending queries before the listeners close.
 *
 * CoreDNS asks plugins that implement Readiness; node-local-dns's plugins are ready as soon
 * as they are set up, so readiness is the engine's (`isReady()`, which in agent mode also asks
 * the agent: rules in place, no newer instance of its role starting; src/agent/agent.ts).
 * `monitor` is parsed for compatibility; both modes behave the same here. The port may be
 * shared with another instance on the node (SO_REUSEPORT, src/metrics/http-endpoints.ts): each
 * answers for itself.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { PluginScope } from '../../plugin.ts';
import type { EngineHooks, Handler, Plugin } from '../../plugin.ts';
import { PluginRoute, TEXT_PLAIN, type HttpEndpoints } from '../../metrics/http-endpoints.ts';

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
  readonly scope = PluginScope.PROCESS;
  readonly handler = false;
  readonly name = 'ready';
  readonly address: string;
  readonly monitor: MonitorModeValue;
  private readonly deps: ReadyDeps;
  private readonly route: PluginRoute;

  constructor(opts: ReadyOptions, deps: ReadyDeps) {
    this.address = opts.address;
    this.monitor = opts.monitor;
    this.deps = deps;
    this.route = new PluginRoute({
      endpoints: deps.endpoints,
      address: opts.address,
      path: '/ready',
      handler: (req, res) => this.serve(req, res),
      engine: deps.engine,
    });
  }

  compose(next: Handler): Handler {
    return next;
  }

  get port(): number {
    return this.route.port;
  }

  async start(): Promise<void> {
    await this.route.open();
  }

  async stop(): Promise<void> {
    await this.route.close();
  }

  private serve(_req: IncomingMessage, res: ServerResponse): void {
    const engine = this.deps.engine;
    const headers = { 'content-type': TEXT_PLAIN };
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
