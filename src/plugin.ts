/**
 * The contracts every plugin and the server share. The shape follows CoreDNS: a block's
 * plugins are set up from the Corefile, then composed once into a chain of handlers in the
 * order given by src/plugins/order.ts.
 *
 * Query path contract (callback style, no promise per query):
 *  - `Handler.serve(req)` must lead to exactly one `req.reply(...)` call, made by itself, by a
 *    handler further down the chain (`next.serve(req)`), or later from a timer/socket callback.
 *  - `req.reply` goes through `req.writer`; a plugin that needs to see the response (cache on a
 *    miss, log, ...) swaps in its own `ResponseWriter` that calls the previous one. The hit path
 *    must not do this, so it stays allocation-free.
 */
import type { ErrorSink, Request } from './server/request.ts';
import type { Directive } from './corefile/types.ts';
import type { SnapshotBuilder } from './metrics/snapshot.ts';

/** Where a plugin runs (CoreDNS has one process; we may have worker threads, see src/workers/). */
export const PluginScope = {
  /** In every thread that serves DNS: its handler is in the query chain. */
  QUERY: 'query',
  /** Once per process: in the control thread when there are workers (HTTP listeners, reload). */
  PROCESS: 'process',
} as const;
export type PluginScopeValue = (typeof PluginScope)[keyof typeof PluginScope];

export type { ErrorSink, QueryTap, ResponseWriter, TapPeer } from './server/request.ts';

/** Where a plugin writes its metric families at scrape time. */
export type MetricsOut = SnapshotBuilder;

/**
 * Server-level settings of a block that plugins' setup may change, as CoreDNS's setup
 * functions change dnsserver.Config (bind: listen hosts; timeouts: TCP timeouts; debug).
 * Plugins are set up in chain order, so a plugin sees what the ones before it set.
 */
export interface ServerConfig {
  /** Bind addresses (IP literals): -localip by default, `bind` replaces them. */
  listenHosts: string[];
  /** TCP listener timeouts (the `timeouts` plugin); null keeps the server default. */
  readTimeoutMs: number | null;
  writeTimeoutMs: number | null;
  idleTimeoutMs: number | null;
  /** `debug`: log [DEBUG] lines, show panics. */
  debug: boolean;
}

export interface Handler {
  serve(req: Request): void;
}

/** Monotonic milliseconds; injectable in tests. */
export type Clock = () => number;

export interface Logger {
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
  debug?(msg: string): void;
}

/** A block's server settings before any plugin changed them. */
export function defaultServerConfig(listenHosts: readonly string[]): ServerConfig {
  return { listenHosts: [...listenHosts], readTimeoutMs: null, writeTimeoutMs: null, idleTimeoutMs: null, debug: false };
}

/** What a plugin's setup sees of its server block and of the whole config load. */
export interface SetupContext {
  /** The block's zones, normalised: lower-case, fully qualified (`cluster.local.`, `.`). */
  zones: string[];
  /** The block's port. */
  port: number;
  /** The block's addresses as CoreDNS labels them: `dns://169.254.20.10:53` (one per listen host, as set so far). */
  readonly serverLabels: string[];
  /** The block's server settings; plugins set up earlier in the order may have changed them. */
  server: ServerConfig;
  /** Index of the block in the Corefile. */
  blockIndex: number;
  /** Corefile path, for error messages. */
  file: string;
  /** Shared by all blocks of one config load: e.g. one prometheus listener per address. */
  shared: Map<string, unknown>;
  env: Record<string, string | undefined>;
  /**
   * The cluster's zones, a configuration input (the node agent names them from its template;
   * src/config/cluster-zones.ts); absent: DEFAULT_CLUSTER_ZONES.
   */
  clusterZones?: readonly string[];
  clock: Clock;
  log: Logger;
  /** The running engine, for plugins that control it (reload, ready, health, loop, prometheus). */
  engine: EngineHooks;
}

/** A configured server block as the engine runs it. */
export interface BlockInfo {
  /** Normalised zones of the block. */
  zones: string[];
  port: number;
  /** Bind addresses (IP literals). */
  addresses: string[];
  /** `dns://ADDR:PORT` per address, as CoreDNS labels servers. */
  serverLabels: string[];
  /** Configured plugins in chain order (setup-only plugins included). */
  plugins: Plugin[];
}

/** What the engine offers to plugins. Valid for the process lifetime (across reloads). */
export interface EngineHooks {
  /** Re-reads the Corefile; rejects with the CorefileError and keeps the old config serving. */
  reload(reason: string): Promise<void>;
  /** True once every listener of every block is bound, until shutdown starts. */
  isReady(): boolean;
  /** True from the moment shutdown starts. */
  isShuttingDown(): boolean;
  /** The blocks of the config currently serving. */
  blocks(): BlockInfo[];
  /** Logs `[FATAL] msg` and exits the process with status 1 (CoreDNS's log.Fatal). */
  fatal(msg: string): never;
  /** Path of the Corefile being served, or null for the embedded default. */
  corefilePath(): string | null;
  /** The Corefile text currently serving. */
  corefileText(): string;
  /** Every plugin compiled in (the metrics collector asks each for its process-wide families). */
  pluginSetups(): Iterable<PluginSetup>;
}

/**
 * One configured plugin of one server block: the whole contract between a plugin and the
 * core (loader, engine, workers, metrics). The core never names a plugin; it reads these.
 */
export interface Plugin {
  readonly name: string;
  /** Where it runs: every serving thread (QUERY) or once per process (PROCESS). */
  readonly scope: PluginScopeValue;
  /**
   * Whether CoreDNS registers it as a query handler (listed in coredns_plugin_enabled).
   * Setup-only plugins (bind, reload, health, ready, debug, timeouts, ...) say false.
   */
  readonly handler: boolean;
  /** Wraps next into this plugin's query handler. Setup-only plugins return next. */
  compose(next: Handler): Handler;
  /** Called once the block's listeners are bound (timers, health checks, HTTP servers). */
  start?(): Promise<void> | void;
  /** Stops timers and sockets; in-flight queries have been drained before this is called. */
  stop?(): Promise<void> | void;
  /**
   * Reload: `previous` is the plugin of the same name in the same block (same keys and port)
   * of the config being replaced, still running. Take over what should survive (cache entries,
   * counters). Called before this plugin starts and before `previous` stops.
   */
  takeOver?(previous: Plugin): void;
  /** Shutdown: keep serving this long with readiness failing before closing (health's lameduck). */
  readonly lameduckMs?: number;
  /** The block's plugin errors go here (`req.fail`, `req.reportError`). */
  readonly errorSink?: ErrorSink;
  /** The block records and exports its zone metrics (coredns_dns_*, coredns_plugin_enabled). */
  readonly enablesMetrics?: boolean;
  /** Scrape time, in the thread where it runs: this plugin's own metric families. */
  collect?(block: BlockInfo, out: MetricsOut): void;
}

export interface PluginSetup {
  readonly name: string;
  /** May appear on several lines of one block (bind, log). */
  readonly repeatable?: boolean;
  /**
   * Parses one directive of this plugin (name, args, nested block) into a configured plugin.
   * A repeatable plugin without `setupAll` gets its lines merged into one directive.
   * Errors are `CorefileError`s naming `file:line`.
   */
  setup(d: Directive, ctx: SetupContext): Plugin;
  /** Repeatable plugins whose lines are separate rules (log): every line of the block. */
  setupAll?(ds: readonly Directive[], ctx: SetupContext): Plugin;
  /**
   * Metrics that exist whatever the configuration (CoreDNS's counters registered at init,
   * totals of instances a reload stopped). Called at every scrape in every thread.
   */
  collectGlobal?(out: MetricsOut): void;
}
