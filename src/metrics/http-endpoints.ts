/**
 * Process-wide HTTP listeners for the observability plugins (prometheus `/metrics`, health
 * `/health`, ready `/ready`), one per listen address, shared by every plugin instance and
 * every server block that names that address. This module is the plugins' only HTTP server
 * code: they parse their address with `listenAddressArg` and hold a `PluginRoute`.
 *
 * Lifetime: a plugin opens its route in `start()` and closes it in `stop()`. A listener
 * closes when its last route is released: at once when the release is `immediate` (process
 * shutdown), otherwise after a short grace period, so that on a reload (old plugins stop, then
 * the new ones start) the port stays open and scrapes and probes see no gap. CoreDNS closes and
 * reopens these listeners on every reload.
 *
 * Addresses are CoreDNS's `[host]:port` strings: an empty host listens on every address;
 * `localhost` listens on 127.0.0.1 (as Go does). Unknown paths answer 404 `404 page not found`
 * like Go's http.ServeMux.
 *
 * Bounds: every HTTP server of the process (these listeners and node-cache's setup metrics
 * listener, src/agent/setup-metrics.ts) is made with `createHardenedServer`, so that no client
 * can hold more than a fixed number of file descriptors or a connection for long (see
 * HttpLimits and DEFAULT_HTTP_LIMITS). What a bound closes is counted in
 * nodelocaldns_http_connections_dropped_total{address,reason} (process-metrics.ts).
 *
 * Sharing: every HTTP listener of the process is bound with SO_REUSEPORT (`reusePort`), so a
 * second instance on the same node (a surge pod during a DaemonSet rollout, whatever its
 * version, as long as it sets SO_REUSEPORT too) binds the same ports while the first still
 * runs. The kernel then spreads new connections over the instances by a hash of the
 * connection's addresses: a probe or scrape reaches one of them, and each answers for itself
 * (its own /health, /ready, /metrics). What that means for kubelet's probes is in
 * docs/operations.md, "Upgrades". Only a process of the same user can join a port (Linux's
 * SO_REUSEPORT rule). Within this process one port is never bound twice: an address whose
 * port overlaps an open listener of another address string (`:8080` and `0.0.0.0:8080`) is
 * refused with `address already in use`, as without SO_REUSEPORT.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { isIP, type AddressInfo, type Socket } from 'node:net';
import type { EngineHooks, Logger } from '../plugin.ts';
import type { Directive } from '../corefile/types.ts';
import { errorAt, expectArgs } from '../corefile/setup-helpers.ts';
import { HttpDropReason, httpConnectionDrops, type HttpConnectionDrops, type HttpDropReasonValue } from './process-metrics.ts';
import { log as defaultLog } from '../util/log.ts';
// Not `import { ... } from 'node:http'`: an ES-module import of node:http reads every export,
// including the lazy WebSocket/EventSource getters, which loads undici (~70-190 ms of start-up
// here, measured in bench/PROFILE.md). process.getBuiltinModule returns the module as is.
const { createServer } = process.getBuiltinModule('node:http');

export type RouteHandler = (req: IncomingMessage, res: ServerResponse) => void;

/** Content type of the plain-text answers (Go's http.Error and the plugins' `OK`). */
export const TEXT_PLAIN = 'text/plain; charset=utf-8';

/** Go's net.SplitHostPort, with its error texts. */
export function splitHostPort(hostport: string): { host: string; port: string } {
  const err = (why: string) => new AddressError(`address ${hostport}: ${why}`);
  const i = hostport.lastIndexOf(':');
  if (i < 0) throw err('missing port in address');
  let host: string;
  let j = 0;
  let k = 0;
  if (hostport[0] === '[') {
    const end = hostport.indexOf(']');
    if (end < 0) throw err("missing ']' in address");
    if (end + 1 === hostport.length) throw err('missing port in address');
    if (end + 1 !== i) throw err(hostport[end + 1] === ':' ? 'too many colons in address' : 'missing port in address');
    host = hostport.slice(1, end);
    j = 1;
    k = end + 1;
  } else {
    host = hostport.slice(0, i);
    if (host.includes(':')) throw err('too many colons in address');
  }
  if (hostport.slice(j).includes('[')) throw err("unexpected '[' in address");
  if (hostport.slice(k).includes(']')) throw err("unexpected ']' in address");
  return { host, port: hostport.slice(i + 1) };
}

export const AddressErrorCode = 'ERR_LISTEN_ADDRESS' as const;

export class AddressError extends Error {
  readonly code = AddressErrorCode;
  constructor(message: string) {
    super(message);
    this.name = 'AddressError';
  }
}

/** Validates a listen address (host:port with a numeric port) and returns its parts. */
export function parseListenAddress(address: string): { host: string; port: number } {
  const { host, port } = splitHostPort(address);
  if (!/^[0-9]{1,5}$/.test(port) || Number(port) > 65535) throw new AddressError(`address ${address}: invalid port`);
  return { host, port: Number(port) };
}

/**
 * The `[ADDRESS]` argument of `health`, `ready` and `prometheus` (at most one; `defaultAddress`
 * without it), checked as CoreDNS checks it: a bad address is a Corefile error at its word.
 */
export function listenAddressArg(d: Directive, defaultAddress: string): string {
  const args = expectArgs(d, 0, 1);
  if (args.length === 0) return defaultAddress;
  const word = args[0]!;
  try {
    parseListenAddress(word.text);
  } catch (err) {
    if (err instanceof AddressError) errorAt(word, err.message);
    throw err;
  }
  return word.text;
}

/** Whether listeners on `a` and `b` (same port) would take each other's connections: `` and `::` take every family's, `0.0.0.0` IPv4's. */
function hostsOverlap(a: string, b: string): boolean {
  const norm = (h: string) => (h === 'localhost' ? '127.0.0.1' : h);
  const [x, y] = [norm(a), norm(b)];
  if (x === '' || x === '::' || y === '' || y === '::' || x === y) return true;
  if (x === '0.0.0.0') return isIP(y) !== 6;
  if (y === '0.0.0.0') return isIP(x) !== 6;
  return false;
}

/** Host to dial to reach a listener on `host` from this machine (Go dials localhost for ""). */
export function dialHost(host: string): string {
  if (host === '' || host === '0.0.0.0' || host === 'localhost') return '127.0.0.1';
  if (host === '::') return '::1';
  return host;
}

const DEFAULT_GRACE_MS = 2000;

/**
 * Bounds of one HTTP listener. Probes and scrapes send one small GET at once and read a reply
 * of at most a few hundred KiB, so every bound sits far above what they need and far below
 * what a flood can use:
 *  - maxConnections: connections held per listener. At the cap a new connection is always
 *    admitted and one held connection is closed: of the client (remote IP) holding the most,
 *    the least recently active one without a request in progress (`evicted`), else its least
 *    recently active one (`evicted_busy`); see ConnectionTable. A flood of held or slow
 *    connections therefore never keeps a new client (kubelet's probe, a scrape) out and only
 *    pushes out the flooder's own connections. Refusing new connections at the cap (Node's
 *    server.maxConnections) would lock the probe out for as long as the flood lasts.
 *    4 listeners (health, ready, metrics, setup metrics) x 64 = 256 descriptors at most.
 *  - headersTimeoutMs / requestTimeoutMs: the request head / whole request must arrive within
 *    these (slowloris: headers a byte at a time); answered 408 and closed (`timeout`).
 *  - keepAliveTimeoutMs: an idle keep-alive connection is closed after this (not counted).
 *  - idleTimeoutMs: a socket with no traffic either way (a client that stops reading its
 *    reply, a connection that never sends) is closed (`timeout`).
 *  - maxHeaderBytes: request head larger than this: 431 and closed (`bad_request`).
 */
export interface HttpLimits {
  maxConnections: number;
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  keepAliveTimeoutMs: number;
  idleTimeoutMs: number;
  maxHeaderBytes: number;
}

export const DEFAULT_HTTP_LIMITS: Readonly<HttpLimits> = Object.freeze({
  maxConnections: 64,
  headersTimeoutMs: 5_000,
  requestTimeoutMs: 10_000,
  keepAliveTimeoutMs: 5_000,
  idleTimeoutMs: 10_000,
  maxHeaderBytes: 8 * 1024,
});

/** Accept errors are logged at most this often per listener (each one is counted). */
const ACCEPT_ERROR_LOG_INTERVAL_MS = 60_000;

/** A held connection: its client, requests in progress, requests answered. */
interface ConnState {
  readonly client: string;
  inFlight: number;
  served: number;
}

/** Replies written to a connection closed for a malformed or late request head (as Node's defaults). */
const CLIENT_ERROR_REPLY: Record<string, string> = {
  HPE_HEADER_OVERFLOW: 'HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n\r\n',
  ERR_HTTP_REQUEST_TIMEOUT: 'HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n',
};
const BAD_REQUEST_REPLY = 'HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n';

/**
 * The connection table of one listener: admission at HttpLimits.maxConnections with eviction.
 * Connections are grouped by client (remote IP); each group is ordered least recently active
 * first (a connection moves to the end when a request on it starts and when one ends). At the
 * cap the victim is taken from the client holding the most connections (ties: the client
 * whose connections were admitted first): its least recently active connection without a
 * request in progress, else its least recently active one. A client flooding the port only
 * ever evicts its own connections once it holds the most; kubelet's probe, one connection
 * from the node's address, is never the victim while another client holds two.
 */
class ConnectionTable {
  readonly #byClient = new Map<string, Map<Socket, ConnState>>();
  readonly #state = new Map<Socket, ConnState>();
  readonly #max: number;
  readonly #onEvict: (busy: boolean) => void;

  constructor(max: number, onEvict: (busy: boolean) => void) {
    this.#max = Math.max(1, max);
    this.#onEvict = onEvict;
  }

  get size(): number {
    return this.#state.size;
  }

  get(socket: Socket): ConnState | undefined {
    return this.#state.get(socket);
  }

  admit(socket: Socket): void {
    while (this.#state.size >= this.#max) this.#evictOne();
    const client = socket.remoteAddress ?? '';
    const st: ConnState = { client, inFlight: 0, served: 0 };
    this.#state.set(socket, st);
    let group = this.#byClient.get(client);
    if (group === undefined) {
      group = new Map();
      this.#byClient.set(client, group);
    }
    group.set(socket, st);
    socket.once('close', () => this.#forget(socket));
  }

  /** Moves the connection to its client's most recently active end; its state, or undefined once gone. */
  touch(socket: Socket): ConnState | undefined {
    const st = this.#state.get(socket);
    if (st === undefined) return undefined;
    const group = this.#byClient.get(st.client)!;
    group.delete(socket);
    group.set(socket, st);
    return st;
  }

  #forget(socket: Socket): void {
    const st = this.#state.get(socket);
    if (st === undefined) return;
    this.#state.delete(socket);
    const group = this.#byClient.get(st.client)!;
    group.delete(socket);
    if (group.size === 0) this.#byClient.delete(st.client);
  }

  #evictOne(): void {
    let top = 0;
    for (const g of this.#byClient.values()) top = Math.max(top, g.size);
    // Among the clients holding `top` connections, the first in admission order with an idle one.
    let victim: Socket | undefined;
    let fallback: Socket | undefined;
    for (const g of this.#byClient.values()) {
      if (g.size !== top) continue;
      for (const [sock, st] of g) {
        fallback ??= sock;
        if (st.inFlight === 0) {
          victim = sock;
          break;
        }
      }
      if (victim !== undefined) break;
    }
    const busy = victim === undefined;
    victim ??= fallback!;
    this.#forget(victim);
    victim.destroy();
    this.#onEvict(busy);
  }
}

/**
 * An http.Server with the process's HTTP bounds (HttpLimits), serving `handler`. `address` is
 * the label of its drops counter and of its log lines. Errors after listening (accept()
 * failing: EMFILE, ENFILE, ENOBUFS) are counted and logged, never thrown; errors while
 * binding stay the caller's (listen's own 'error' listener).
 */
export function createHardenedServer(
  address: string,
  handler: RouteHandler,
  opts: { limits?: Readonly<HttpLimits>; drops?: HttpConnectionDrops; log?: Logger } = {},
): Server {
  const limits = opts.limits ?? DEFAULT_HTTP_LIMITS;
  const drops = opts.drops ?? httpConnectionDrops;
  const logger = opts.log ?? defaultLog;
  const count = (reason: HttpDropReasonValue) => drops.add(address, reason);
  const table = new ConnectionTable(limits.maxConnections, (busy) => count(busy ? HttpDropReason.EVICTED_BUSY : HttpDropReason.EVICTED));
  const server = createServer(
    {
      maxHeaderSize: limits.maxHeaderBytes,
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      keepAliveTimeout: limits.keepAliveTimeoutMs,
      // Node checks the two timeouts above on this period (default 30 s).
      connectionsCheckingInterval: Math.min(1_000, limits.headersTimeoutMs),
    },
    (req, res) => {
      const socket = req.socket;
      const st = table.touch(socket);
      if (st !== undefined) st.inFlight++;
      res.once('close', () => {
        if (st === undefined) return;
        st.inFlight--;
        st.served++;
        table.touch(socket);
      });
      handler(req, res);
    },
  );
  server.on('connection', (socket: Socket) => table.admit(socket));
  // Socket inactivity: a connection that never sends, or stops reading its reply. A keep-alive
  // connection between requests times out here too (keepAliveTimeout): closed, not counted.
  server.setTimeout(limits.idleTimeoutMs, (socket: Socket) => {
    const st = table.get(socket);
    if (st === undefined || st.inFlight > 0 || st.served === 0) count(HttpDropReason.TIMEOUT);
    socket.destroy();
  });
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    const code = err.code ?? '';
    if (code !== 'ECONNRESET' && code !== 'EPIPE') {
      count(code === 'ERR_HTTP_REQUEST_TIMEOUT' ? HttpDropReason.TIMEOUT : HttpDropReason.BAD_REQUEST);
    }
    const pending = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
    if (socket.writable && (pending === undefined || pending === null || !pending.headersSent)) {
      socket.end(CLIENT_ERROR_REPLY[code] ?? BAD_REQUEST_REPLY);
    }
    socket.destroy();
  });
  let lastAcceptLogMs = -Infinity;
  let unlogged = 0;
  server.on('error', (err: NodeJS.ErrnoException) => {
    if (!server.listening) return; // binding: the caller's listen() reports it
    count(HttpDropReason.ACCEPT_ERROR);
    unlogged++;
    const now = performance.now();
    if (now - lastAcceptLogMs < ACCEPT_ERROR_LOG_INTERVAL_MS) return;
    lastAcceptLogMs = now;
    logger.error(`http ${address}: accept: ${err.code ?? err.message} (${unlogged} connection(s) dropped since the last report)`);
    unlogged = 0;
  });
  return server;
}

/** A handler serving a path, and the plugin instance holding it (see `Lease.holders`). */
interface Route {
  readonly handler: RouteHandler;
  readonly owner: object | null;
}

class Endpoint {
  readonly address: string;
  readonly server: Server;
  /** Per path, the routes in acquisition order; the newest one serves. */
  readonly routes = new Map<string, Route[]>();
  port = 0;
  closeTimer: NodeJS.Timeout | null = null;
  closed: Promise<void> | null = null;

  constructor(address: string, limits: Readonly<HttpLimits>, drops: HttpConnectionDrops) {
    this.address = address;
    this.server = createHardenedServer(address, (req, res) => this.dispatch(req, res), { limits, drops });
  }

  private dispatch(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '/').split('?', 1)[0]!;
    const routes = this.routes.get(path);
    if (routes === undefined || routes.length === 0) {
      res.writeHead(404, { 'content-type': TEXT_PLAIN, 'x-content-type-options': 'nosniff' });
      res.end('404 page not found\n');
      return;
    }
    try {
      routes[routes.length - 1]!.handler(req, res);
    } catch (err) {
      if (!res.headersSent) res.writeHead(500, { 'content-type': TEXT_PLAIN });
      res.end(`${(err as Error).message}\n`);
    }
  }

  async listen(): Promise<void> {
    const { host, port } = parseListenAddress(this.address);
    const bindHost = host === 'localhost' ? '127.0.0.1' : host;
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => {
        reject(new Error(`listen tcp ${this.address}: ${err.code === 'EADDRINUSE' ? 'bind: address already in use' : err.message}`));
      };
      this.server.once('error', onError);
      this.server.listen({ host: bindHost === '' ? undefined : bindHost, port, reusePort: true }, () => {
        this.server.off('error', onError);
        resolve();
      });
    });
    this.port = (this.server.address() as AddressInfo).port;
  }

  close(): Promise<void> {
    if (this.closed === null) {
      this.closed = new Promise<void>((resolve) => {
        this.server.close(() => resolve());
        this.server.closeAllConnections();
      });
    }
    return this.closed;
  }
}

/** A route held by one plugin instance. */
export interface Lease {
  /** The listener's bound port (useful with port 0). */
  readonly port: number;
  /** The owners of the routes held on this listener for this path right now, oldest first. */
  holders(): object[];
  /** Gives the route back; `immediate` closes an unused listener at once (shutdown). */
  release(opts?: { immediate?: boolean }): Promise<void>;
}

export class HttpEndpoints {
  private readonly endpoints = new Map<string, Endpoint>();
  private readonly graceMs: number;
  private readonly limits: Readonly<HttpLimits>;
  private readonly drops: HttpConnectionDrops;

  constructor(opts: { graceMs?: number; limits?: Partial<HttpLimits>; drops?: HttpConnectionDrops } = {}) {
    this.graceMs = opts.graceMs ?? DEFAULT_GRACE_MS;
    this.limits = { ...DEFAULT_HTTP_LIMITS, ...opts.limits };
    this.drops = opts.drops ?? httpConnectionDrops;
  }

  /**
   * Serves `path` on `address` with `handler`, binding the listener if needed. While several
   * routes hold one path, the newest serves it. `owner` is what `Lease.holders()` reports.
   */
  async acquire(address: string, path: string, handler: RouteHandler, owner: object | null = null): Promise<Lease> {
    let ep = this.endpoints.get(address);
    if (ep !== undefined && ep.closed !== null) {
      await ep.closed;
      if (this.endpoints.get(address) === ep) this.endpoints.delete(address);
      ep = undefined;
    }
    if (ep === undefined) {
      this.#refuseOverlap(address);
      const created = new Endpoint(address, this.limits, this.drops);
      this.endpoints.set(address, created);
      try {
        await created.listen();
      } catch (err) {
        if (this.endpoints.get(address) === created) this.endpoints.delete(address);
        throw err;
      }
      ep = created;
    }
    if (ep.closeTimer !== null) {
      clearTimeout(ep.closeTimer);
      ep.closeTimer = null;
    }
    const route: Route = { handler, owner };
    const list = ep.routes.get(path) ?? [];
    list.push(route);
    ep.routes.set(path, list);
    const endpoint = ep;
    let released = false;
    return {
      port: endpoint.port,
      holders: () => (endpoint.routes.get(path) ?? []).flatMap((r) => (r.owner === null ? [] : [r.owner])),
      release: async (opts = {}) => {
        if (released) return;
        released = true;
        const l = endpoint.routes.get(path);
        if (l) {
          const i = l.indexOf(route);
          if (i >= 0) l.splice(i, 1);
          if (l.length === 0) endpoint.routes.delete(path);
        }
        if (endpoint.routes.size > 0) return;
        if (opts.immediate || this.graceMs <= 0) {
          if (endpoint.closeTimer !== null) clearTimeout(endpoint.closeTimer);
          endpoint.closeTimer = null;
          if (this.endpoints.get(address) === endpoint) this.endpoints.delete(address);
          await endpoint.close();
          return;
        }
        if (endpoint.closeTimer === null) {
          endpoint.closeTimer = setTimeout(() => {
            endpoint.closeTimer = null;
            if (endpoint.routes.size > 0) return;
            if (this.endpoints.get(address) === endpoint) this.endpoints.delete(address);
            void endpoint.close();
          }, this.graceMs);
          endpoint.closeTimer.unref();
        }
      },
    };
  }

  /**
   * SO_REUSEPORT would let this process bind one port twice under two address strings and
   * split the connections between them: refused as a bind without it would be.
   */
  #refuseOverlap(address: string): void {
    const { host, port } = parseListenAddress(address);
    if (port === 0) return;
    for (const [other, ep] of this.endpoints) {
      if (ep.closed !== null) continue;
      if (ep.port === port && hostsOverlap(host, parseListenAddress(other).host)) {
        throw new Error(`listen tcp ${address}: bind: address already in use`);
      }
    }
  }

  /** Addresses with an open listener. */
  open(): string[] {
    return [...this.endpoints.keys()];
  }

  /** Closes every listener now. */
  async closeAll(): Promise<void> {
    const eps = [...this.endpoints.values()];
    this.endpoints.clear();
    for (const ep of eps) if (ep.closeTimer !== null) clearTimeout(ep.closeTimer);
    await Promise.all(eps.map((ep) => ep.close()));
  }
}

/** The process's shared listeners. */
export const httpEndpoints = new HttpEndpoints();

/**
 * One plugin instance's route: all the listener handling a `health`, `ready` or `prometheus`
 * plugin does. `open()` (from the plugin's start) binds the address's listener or joins it;
 * `close()` (from its stop) gives the route back, and the listener closes with its last route
 * at once when the engine is shutting down, else after the grace period, so that a reload
 * (old plugins stop, new ones start) leaves the port open throughout.
 */
export class PluginRoute {
  readonly address: string;
  readonly path: string;
  readonly #endpoints: HttpEndpoints;
  readonly #handler: RouteHandler;
  readonly #engine: Pick<EngineHooks, 'isShuttingDown'>;
  readonly #owner: object | null;
  #lease: Lease | null = null;

  constructor(opts: {
    endpoints: HttpEndpoints;
    address: string;
    path: string;
    handler: RouteHandler;
    engine: Pick<EngineHooks, 'isShuttingDown'>;
    /** The plugin instance, reported by `holders()` of every route on this address and path. */
    owner?: object;
  }) {
    this.address = opts.address;
    this.path = opts.path;
    this.#endpoints = opts.endpoints;
    this.#handler = opts.handler;
    this.#engine = opts.engine;
    this.#owner = opts.owner ?? null;
  }

  /** The listener's bound port while open (the real one with port 0), else 0. */
  get port(): number {
    return this.#lease?.port ?? 0;
  }

  get isOpen(): boolean {
    return this.#lease !== null;
  }

  /** Binds the route; false when it was open already. Rejects with Go's `listen tcp ...` wording. */
  async open(): Promise<boolean> {
    if (this.#lease !== null) return false;
    this.#lease = await this.#endpoints.acquire(this.address, this.path, this.#handler, this.#owner);
    return true;
  }

  /** Gives the route back; false when it was not open. */
  async close(): Promise<boolean> {
    const lease = this.#lease;
    if (lease === null) return false;
    this.#lease = null;
    await lease.release({ immediate: this.#engine.isShuttingDown() });
    return true;
  }

  /** The owners of the open routes on this listener and path, this one's included while open. */
  holders(): object[] {
    return this.#lease?.holders() ?? [];
  }
}
