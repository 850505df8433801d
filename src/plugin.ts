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
import type { Request } from './server/request.ts';
import type { Directive } from './corefile/types.ts';

export interface Handler {
  serve(req: Request): void;
}

export interface ResponseWriter {
  /**
   * Sends msg[0..len). The message's ID and question must already be the request's
   * (plugins patch them); the terminal writer handles UDP truncation and framing.
   */
  writeMsg(req: Request, msg: Buffer, len: number): void;
}

/** Monotonic milliseconds; injectable in tests. */
export type Clock = () => number;

export interface Logger {
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
  debug?(msg: string): void;
}

/** What a plugin's setup sees of its server block and of the whole config load. */
export interface SetupContext {
  /** The block's zones, normalised: lower-case, fully qualified (`cluster.local.`, `.`). */
  zones: string[];
  /** The block's port. */
  port: number;
  /** The block's addresses as CoreDNS labels them: `dns://169.254.20.10:53` (one per bind address). */
  serverLabels: string[];
  /** Index of the block in the Corefile. */
  blockIndex: number;
  /** Corefile path, for error messages. */
  file: string;
  /** Shared by all blocks of one config load: e.g. one prometheus listener per address. */
  shared: Map<string, unknown>;
  env: Record<string, string | undefined>;
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
}

/** One configured plugin of one server block. */
export interface Plugin {
  readonly name: string;
  /** Wraps next into this plugin's query handler. Setup-only plugins return next. */
  compose(next: Handler): Handler;
  /** Called once the block's listeners are bound (timers, health checks, HTTP servers). */
  start?(): Promise<void> | void;
  /** Stops timers and sockets; in-flight queries have been drained before this is called. */
  stop?(): Promise<void> | void;
}

export interface PluginSetup {
  readonly name: string;
  /**
   * Parses one directive of this plugin (name, args, nested block) into a configured plugin.
   * Errors are `CorefileError`s naming `file:line`.
   */
  setup(d: Directive, ctx: SetupContext): Plugin;
}
