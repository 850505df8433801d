/**
 * The engine: serves a Corefile. Owns the listeners (UDP + TCP per address and port),
 * swaps configurations in place on reload (listeners that stay are kept, queries in flight
 * finish on the config they started on, caches are carried over when their settings did not
 * change), and shuts down gracefully (lameduck, drain, then close).
 *
 * Roles (src/workers/ runs several engines, one per worker thread, behind one control engine):
 *  - `standalone` (default): everything in this thread.
 *  - `worker`: serves DNS on reusePort sockets; runs the query-scoped plugins (src/plugin.ts
 *    PluginScope); the control engine runs the process-scoped ones once for the process;
 *    no lameduck on stop (the control engine waited it out while this worker kept serving).
 *  - `control`: binds no DNS socket; loads and validates each config, hands its text to the
 *    worker pool (`pool.apply`, all or nothing) and then runs only the process-scoped plugins. Ready
 *    while at least one worker serves; stop waits the lameduck, then drains the workers.
 */
import { readConfigFile } from './corefile/read.ts';
import { DEFAULT_CONFIG_LIMITS } from './corefile/limits.ts';
import { PluginScope, type BlockInfo, type EngineHooks, type Logger, type Plugin, type Clock } from './plugin.ts';
import { loadConfig, serverLabel, type LoadedConfig, type LoadedBlock } from './config/load.ts';
import { Dispatcher, Generation, RouteTarget, defaultClock } from './server/dispatch.ts';
import { ZoneMatcher } from './wire/zone-match.ts';
import { UdpListener } from './server/udp.ts';
import { TcpListener } from './server/tcp.ts';
import { getZoneStats } from './metrics/zone-stats.ts';
import { log as defaultLog, setDebugOutput } from './util/log.ts';
import { formatGoDuration } from './util/duration.ts';
import { clusterZonesFrom } from './config/cluster-zones.ts';

export interface EngineOptions {
  /** Corefile to serve; null with `corefileText` for an embedded config. */
  corefilePath: string | null;
  corefileText?: string;
  /** Addresses for blocks without `bind`. */
  defaultBind: string[];
  /** Port for keys without one. */
  defaultPort: number;
  /** SO_REUSEPORT on every socket (workers, standby instances). */
  reusePort?: boolean;
  env?: Record<string, string | undefined>;
  /** The cluster's zones (SetupContext.clusterZones); default: from env (src/config/cluster-zones.ts). */
  clusterZones?: readonly string[];
  log?: Logger;
  clock?: Clock;
  /** Called instead of process.exit on a fatal error (tests). */
  onFatal?: (msg: string) => void;
  /** Print the `zone:port on address` lines at start (CoreDNS does). */
  announce?: boolean;
  /** See the module comment; default `standalone`. */
  role?: EngineRoleValue;
  /** `control` role: the workers that serve DNS. */
  pool?: ServingPool;
  /**
   * `worker` role: the port to bind for a listener configured with port 0, by `address|0`,
   * so that every worker shares the port the first one got.
   */
  portOverrides?: ReadonlyMap<string, number>;
  /** Called after each configuration is applied (start and every reload), plugins started. */
  onApplied?: (engine: Engine) => void;
}

export const EngineRole = { STANDALONE: 'standalone', WORKER: 'worker', CONTROL: 'control' } as const;
export type EngineRoleValue = (typeof EngineRole)[keyof typeof EngineRole];

/** What the control engine needs from the worker pool (src/workers/pool.ts). */
export interface ServingPool {
  /**
   * Makes every worker serve this Corefile text (starting them on the first call). Rejects,
   * with every worker still on its previous config, when the config cannot be applied.
   * `anyPortZero`: some block listens on port 0 (the first worker must bind before the others).
   */
  apply(text: string, anyPortZero: boolean, clusterZones: readonly string[]): Promise<void>;
  /** At least one worker is serving. */
  serving(): boolean;
  /** The workers' listeners (all workers bind the same ones). */
  listening(): ListenerInfo[];
  /** Drains and stops every worker (no lameduck: the caller waited it out). */
  stop(): Promise<void>;
}

interface Listener {
  key: string;
  address: string;
  configuredPort: number;
  udp: UdpListener;
  tcp: TcpListener;
  dispatcher: Dispatcher;
}

export interface ListenerInfo {
  address: string;
  /** The port as configured (0: any). */
  configuredPort: number;
  /** The bound port. */
  port: number;
  protos: ('udp' | 'tcp')[];
}

/** Longest time an old config may keep queries in flight after a reload or at shutdown. */
const DRAIN_TIMEOUT_MS = 10_000;

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export class Engine implements EngineHooks {
  private readonly opts: EngineOptions;
  private readonly log: Logger;
  private readonly listeners = new Map<string, Listener>();
  private config: LoadedConfig | null = null;
  private generation = new Generation(0);
  private ready = false;
  private shuttingDown = false;
  private reloading: Promise<void> = Promise.resolve();
  readonly role: EngineRoleValue;
  /** One clock for the listeners and every plugin (see Dispatcher.clock). */
  private readonly clock: Clock;
  /** The cluster's zones the next load uses (setClusterZones). */
  private clusterZones: readonly string[];

  private constructor(opts: EngineOptions) {
    this.opts = opts;
    this.clock = opts.clock ?? defaultClock;
    this.log = opts.log ?? defaultLog;
    this.role = opts.role ?? EngineRole.STANDALONE;
    this.clusterZones = opts.clusterZones ?? clusterZonesFrom(opts.env ?? process.env);
    if (this.role === EngineRole.CONTROL && opts.pool === undefined) throw new Error('engine: the control role needs a worker pool');
  }

  /** Whether this engine starts (and stops) plugin p in its role. */
  private runs(p: Plugin): boolean {
    if (this.role === EngineRole.STANDALONE) return true;
    return (p.scope === PluginScope.PROCESS) === (this.role === EngineRole.CONTROL);
  }

  /** Loads the Corefile, binds every listener, starts the plugins. Resolves once serving. */
  static async start(opts: EngineOptions): Promise<Engine> {
    const engine = new Engine(opts);
    const text = opts.corefileText ?? (await readConfigFile(opts.corefilePath!, DEFAULT_CONFIG_LIMITS.maxConfigBytes));
    const cfg = await engine.load(text);
    await engine.apply(cfg, true);
    engine.ready = true;
    return engine;
  }

  private load(text: string): Promise<LoadedConfig> {
    return loadConfig(text, this.opts.corefilePath ?? 'Corefile', {
      defaultBind: this.opts.defaultBind,
      defaultPort: this.opts.defaultPort,
      env: this.opts.env ?? process.env,
      clusterZones: this.clusterZones,
      clock: this.clock,
      log: this.log,
      engine: this,
    });
  }

  /** Binds what is new, swaps routes, retires the old config once idle, starts the new plugins. */
  private async apply(cfg: LoadedConfig, initial: boolean): Promise<void> {
    const old = this.config;
    if (this.role === EngineRole.CONTROL) return this.applyControl(cfg, old, initial);
    const oldGeneration = this.generation;
    const generation = new Generation(oldGeneration.id + 1);
    if (old) takeOver(old, cfg, (p) => this.runs(p));

    // Routing tables per listener for the new config.
    const tables = new Map<string, { address: string; port: number; table: ZoneMatcher<RouteTarget> }>();
    for (const block of cfg.blocks) {
      for (const address of block.addresses) {
        const key = `${address}|${block.port}`;
        let entry = tables.get(key);
        if (!entry) {
          entry = { address, port: block.port, table: new ZoneMatcher<RouteTarget>() };
          tables.set(key, entry);
        }
        const existing = this.listeners.get(key);
        const label = serverLabel(address, existing ? existing.udp.port : block.port);
        for (const zone of block.zones) {
          entry.table.add(zone, new RouteTarget(block.chain, getZoneStats(label, zone), block.errorSink, generation));
        }
      }
    }

    // Bind new listeners before touching the running ones, so a bind failure changes nothing.
    const created: Listener[] = [];
    try {
      for (const [key, { address, port, table }] of tables) {
        if (this.listeners.has(key)) continue;
        const dispatcher = new Dispatcher(serverLabel(address, port), table, this.clock);
        const bindPort = port === 0 ? (this.opts.portOverrides?.get(`${address}|0`) ?? 0) : port;
        const udp = new UdpListener(address, bindPort, dispatcher, this.opts.reusePort ?? true);
        const boundPort = await udp.bind();
        const tcp = new TcpListener(address, boundPort, dispatcher, this.opts.reusePort ?? true);
        created.push({ key, address, configuredPort: port, udp, tcp, dispatcher });
        await tcp.listen();
        if (port === 0) {
          // The label carries the real port when the Corefile asked for any port.
          const label = serverLabel(address, boundPort);
          (dispatcher as { serverLabel: string }).serverLabel = label;
          for (const r of table.all()) (r as { target: RouteTarget }).target = new RouteTarget(r.target.chain, getZoneStats(label, r.zone), r.target.errorSink, generation);
        }
      }
    } catch (err) {
      await Promise.all(created.map((l) => Promise.all([l.udp.close(), l.tcp.close()])));
      throw new Error(`listen ${(err as NodeJS.ErrnoException).code ?? ''}: ${(err as Error).message}`);
    }
    for (const l of created) this.listeners.set(l.key, l);

    // Swap: from here on, new queries run on the new config.
    for (const [key, { table }] of tables) this.listeners.get(key)!.dispatcher.table = table;
    applyServerSettings(cfg, this.listeners);
    this.config = cfg;
    this.generation = generation;

    this.announce(cfg, initial);

    if (old) {
      await this.drain(oldGeneration);
      await stopPlugins(old.blocks.flatMap((b) => b.plugins).filter((p) => this.runs(p)), this.log);
    }
    for (const p of cfg.blocks.flatMap((b) => b.plugins)) if (p.start && this.runs(p)) await p.start();

    // Close listeners no longer in the config.
    for (const [key, l] of this.listeners) {
      if (tables.has(key)) continue;
      this.listeners.delete(key);
      await Promise.all([l.udp.close(), l.tcp.close()]);
    }
    this.opts.onApplied?.(this);
  }

  /** The control role's apply: the workers take the config first; then the control plugins switch. */
  private async applyControl(cfg: LoadedConfig, old: LoadedConfig | null, initial: boolean): Promise<void> {
    await this.opts.pool!.apply(cfg.text, cfg.blocks.some((b) => b.port === 0), this.clusterZones);
    setDebugOutput(cfg.blocks.some((b) => b.server.debug));
    this.config = cfg;
    this.announce(cfg, initial);
    if (old) await stopPlugins(old.blocks.flatMap((b) => b.plugins).filter((p) => this.runs(p)), this.log);
    for (const p of cfg.blocks.flatMap((b) => b.plugins)) if (p.start && this.runs(p)) await p.start();
    this.opts.onApplied?.(this);
  }

  /** Logs CoreDNS's `zone:port on address (udp, tcp)` lines (not in workers: the control engine does). */
  private announce(cfg: LoadedConfig, initial: boolean): void {
    if (this.opts.announce === false || this.role === EngineRole.WORKER) return;
    const bound = new Map(this.listening().map((l) => [`${l.address}|${l.configuredPort}`, l.port]));
    for (const block of cfg.blocks) {
      for (const address of block.addresses) {
        const port = bound.get(`${address}|${block.port}`) ?? block.port;
        for (const zone of block.zones) this.log.info(`${initial ? '' : 'reload: '}${zone}:${port} on ${address} (udp, tcp)`);
      }
    }
  }

  private async drain(gen: Generation): Promise<void> {
    const deadline = performance.now() + DRAIN_TIMEOUT_MS;
    while (gen.inFlight > 0 && performance.now() < deadline) await sleep(10);
  }

  // ---- EngineHooks ----

  reload(reason: string): Promise<void> {
    const run = async () => {
      if (this.shuttingDown) return;
      const path = this.opts.corefilePath;
      if (path === null) return;
      const text = await readConfigFile(path, DEFAULT_CONFIG_LIMITS.maxConfigBytes);
      this.log.info('Reloading');
      const cfg = await this.load(text);
      await this.apply(cfg, false);
      this.log.info('Reloading complete');
      this.log.debug?.(`reload triggered by ${reason}`);
    };
    const p = this.reloading.then(run, run);
    this.reloading = p.catch(() => {});
    return p;
  }

  /** Reloads from the given text (used when the config file is rewritten by the agent). */
  async reloadText(text: string): Promise<void> {
    const cfg = await this.load(text);
    await this.apply(cfg, false);
  }

  /** The cluster's zones for the next load (start, reload); with workers they reach every worker then. */
  setClusterZones(zones: readonly string[]): void {
    this.clusterZones = [...zones];
  }

  isReady(): boolean {
    if (this.role === EngineRole.CONTROL && !this.opts.pool!.serving()) return false;
    return this.ready && !this.shuttingDown;
  }

  isShuttingDown(): boolean {
    return this.shuttingDown;
  }

  blocks(): BlockInfo[] {
    return this.config ? this.config.blocks : [];
  }

  fatal(msg: string): never {
    this.log.error(msg);
    process.stderr.write(`[FATAL] ${msg}\n`);
    if (this.opts.onFatal) {
      this.opts.onFatal(msg);
      throw new Error(msg);
    }
    process.exit(1);
  }

  corefilePath(): string | null {
    return this.opts.corefilePath;
  }

  corefileText(): string {
    return this.config?.text ?? '';
  }

  listening(): ListenerInfo[] {
    if (this.role === EngineRole.CONTROL) return this.opts.pool!.listening();
    return [...this.listeners.values()].map((l) => ({ address: l.address, configuredPort: l.configuredPort, port: l.udp.port, protos: ['udp', 'tcp'] }));
  }

  /** Queries in flight on every listener. */
  inFlight(): number {
    let n = 0;
    for (const l of this.listeners.values()) n += l.dispatcher.inFlight;
    return n;
  }

  /**
   * Graceful stop: ready goes 503, the health plugin's lameduck is honoured while still
   * serving, TCP stops accepting, in-flight queries are answered, then everything closes.
   */
  async stop(): Promise<void> {
    if (this.shuttingDown) return;
    this.shuttingDown = true;
    const plugins = this.config ? this.config.blocks.flatMap((b) => b.plugins).filter((p) => this.runs(p)) : [];
    const all = this.config ? this.config.blocks.flatMap((b) => b.plugins) : [];
    // The longest lameduck any plugin asks for (health's), announced as that plugin's.
    let lameduck: Plugin | null = null;
    if (this.role !== EngineRole.WORKER) for (const p of all) if ((p.lameduckMs ?? 0) > (lameduck?.lameduckMs ?? 0)) lameduck = p;
    if (lameduck !== null) {
      this.log.info(`plugin/${lameduck.name}: Going into lameduck mode for ${formatGoDuration(lameduck.lameduckMs!)}`);
      await sleep(lameduck.lameduckMs!);
    }
    if (this.role === EngineRole.CONTROL) {
      await this.opts.pool!.stop();
      await stopPlugins(plugins, this.log);
      return;
    }
    const tcpClosed = [...this.listeners.values()].map((l) => l.tcp.close());
    const deadline = performance.now() + DRAIN_TIMEOUT_MS;
    // UDP: the other members of each SO_REUSEPORT group (workers, a standby) take the new
    // queries; what was queued here and what is in flight is answered before the close.
    await Promise.all([...this.listeners.values()].map((l) => l.udp.handOver(deadline)));
    while (this.inFlight() > 0 && performance.now() < deadline) await sleep(5);
    for (const l of this.listeners.values()) l.tcp.destroyAll();
    await Promise.race([Promise.all(tcpClosed), sleep(1000)]);
    await stopPlugins(plugins, this.log);
    this.listeners.clear();
  }
}

/**
 * The server settings plugins left in each block (src/plugin.ts ServerConfig): `[DEBUG]` output
 * while any block has `debug`; each TCP listener's timeouts from the first block on it (in
 * Corefile order) that sets each one, the listener's default otherwise.
 */
function applyServerSettings(cfg: LoadedConfig, listeners: ReadonlyMap<string, Listener>): void {
  setDebugOutput(cfg.blocks.some((b) => b.server.debug));
  for (const [key, l] of listeners) {
    const on = cfg.blocks.filter((b) => b.addresses.some((a) => `${a}|${b.port}` === key));
    const first = (pick: (b: LoadedBlock) => number | null): number | null => {
      for (const b of on) if (pick(b) !== null) return pick(b);
      return null;
    };
    l.tcp.setTimeouts({
      readTimeoutMs: first((b) => b.server.readTimeoutMs),
      writeTimeoutMs: first((b) => b.server.writeTimeoutMs),
      idleTimeoutMs: first((b) => b.server.idleTimeoutMs),
    });
  }
}

async function stopPlugins(plugins: Plugin[], log: Logger): Promise<void> {
  for (const p of plugins) {
    try {
      if (p.stop) await p.stop();
    } catch (err) {
      log.error(`stopping plugin ${p.name}: ${(err as Error).message}`);
    }
  }
}

/**
 * Reload: each plugin of the new config that this engine runs takes over from the plugin of
 * the same name in the same block (same keys and port) of the old config (Plugin.takeOver):
 * caches keep their entries, counters stay monotonic.
 */
function takeOver(old: LoadedConfig, next: LoadedConfig, runs: (p: Plugin) => boolean): void {
  const oldByKey = new Map<string, LoadedBlock>(old.blocks.map((b) => [b.key, b]));
  for (const b of next.blocks) {
    const prev = oldByKey.get(b.key);
    if (prev === undefined) continue;
    for (const p of b.plugins) {
      if (p.takeOver === undefined || !runs(p)) continue;
      const previous = prev.plugins.find((q) => q.name === p.name);
      if (previous !== undefined) p.takeOver(previous);
    }
  }
}
