/**
 * The control plane: owns the Corefile and the process. Loads and validates each config,
 * has it served — by a Server in this thread, or by the worker pool (src/workers/pool.ts) —
 * and runs the process-scoped plugins (src/plugin.ts PluginScope: HTTP listeners, reload) once.
 * It is the EngineHooks plugins get at setup.
 *
 * Contract:
 *  - Validate once: each load parses the Corefile (imports, env) and runs every directive's
 *    setup here, in Corefile order: that is where a config is checked, and a config that
 *    fails is rejected before any listener or worker is touched. With workers, this thread
 *    composes no query chain and starts no query-scoped plugin; the workers get the text it
 *    validated (read once, here) and the cluster zones in their messages, and build and start
 *    their own query-scoped plugins from it.
 *  - `reload` / `reloadText` run one at a time, in call order; a failed one keeps the old config
 *    serving. Order of a load: DNS back end first (all workers or none), then the
 *    process-scoped plugins switch (take over, old ones stop, new ones start).
 *  - Ready while the back end serves, `readyCheck` (the node agent's: its rules in place) holds,
 *    and until `stop`; `stop` waits the longest lameduck any
 *    plugin asks for (still serving), then stops the back end (drain), then its own plugins.
 */
import { readConfigFile } from '../corefile/read.ts';
import { DEFAULT_CONFIG_LIMITS } from '../corefile/limits.ts';
import { PluginScope, type BlockInfo, type Clock, type EngineHooks, type Logger, type Plugin, type PluginSetup } from '../plugin.ts';
import { loadConfig, type LoadedConfig } from '../config/load.ts';
import { pluginSetups } from '../plugins/registry.ts';
import { defaultClock } from '../server/dispatch.ts';
import { log as defaultLog, setDebugOutput } from '../util/log.ts';
import { formatGoDuration } from '../util/duration.ts';
import { clusterZonesFrom } from '../config/cluster-zones.ts';
import { Server, type ListenerInfo } from './server.ts';
import { fatal, sleep, startPlugins, stopPlugins, takeOver } from './plugins.ts';

export type { ListenerInfo } from './server.ts';

/** What the control plane needs from the worker pool (src/workers/pool.ts). */
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

export interface ControlPlaneOptions {
  /** Corefile to serve; null with `corefileText` for an embedded config. */
  corefilePath: string | null;
  corefileText?: string;
  /** Addresses for blocks without `bind`. */
  defaultBind: string[];
  /** Port for keys without one. */
  defaultPort: number;
  env?: Record<string, string | undefined>;
  /** The cluster's zones (SetupContext.clusterZones); default: from env (src/config/cluster-zones.ts). */
  clusterZones?: readonly string[];
  log?: Logger;
  clock?: Clock;
  /** Called instead of process.exit on a fatal error (tests). */
  onFatal?: (msg: string) => void;
  /** Print the `zone:port on address` lines at start (CoreDNS does). */
  announce?: boolean;
  /** The workers that serve DNS; absent: a Server in this thread. */
  pool?: ServingPool;
  /** SO_REUSEPORT on the local Server's sockets (default true: a standby instance shares them). */
  reusePort?: boolean;
  /** A further condition of readiness (`ready` plugin), asked on every isReady(); default: none. */
  readyCheck?: () => boolean;
}

/** Where the loaded configs are served. */
interface DnsBackend {
  /** apply() serves the loaded chains in this thread (true), or only `cfg.text` elsewhere. */
  readonly composes: boolean;
  apply(cfg: LoadedConfig, clusterZones: readonly string[]): Promise<void>;
  serving(): boolean;
  listening(): ListenerInfo[];
  stop(): Promise<void>;
}

function localBackend(server: Server): DnsBackend {
  return { composes: true, apply: (cfg) => server.apply(cfg), serving: () => server.serving(), listening: () => server.listening(), stop: () => server.stop() };
}

function poolBackend(pool: ServingPool): DnsBackend {
  return {
    composes: false,
    apply: (cfg, zones) =>
      pool.apply(
        cfg.text,
        cfg.blocks.some((b) => b.port === 0),
        zones,
      ),
    serving: () => pool.serving(),
    listening: () => pool.listening(),
    stop: () => pool.stop(),
  };
}

/** The plugins the control plane runs itself. */
const processScoped = (p: Plugin): boolean => p.scope === PluginScope.PROCESS;

export class ControlPlane implements EngineHooks {
  private readonly opts: ControlPlaneOptions;
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly dns: DnsBackend;
  private config: LoadedConfig | null = null;
  private ready = false;
  private shuttingDown = false;
  private reloading: Promise<void> = Promise.resolve();
  /** The cluster's zones the next load uses (setClusterZones). */
  private clusterZones: readonly string[];

  private constructor(opts: ControlPlaneOptions) {
    this.opts = opts;
    this.clock = opts.clock ?? defaultClock;
    this.log = opts.log ?? defaultLog;
    this.clusterZones = opts.clusterZones ?? clusterZonesFrom(opts.env ?? process.env);
    this.dns = opts.pool ? poolBackend(opts.pool) : localBackend(new Server({ reusePort: opts.reusePort ?? true, clock: this.clock, log: this.log }));
  }

  /** Loads the Corefile, has it served, starts the process-scoped plugins. Resolves once serving. */
  static async start(opts: ControlPlaneOptions): Promise<ControlPlane> {
    const cp = new ControlPlane(opts);
    const text = opts.corefileText ?? (await readConfigFile(opts.corefilePath!, DEFAULT_CONFIG_LIMITS.maxConfigBytes));
    await cp.apply(await cp.load(text), true);
    cp.ready = true;
    return cp;
  }

  /** Parses and sets up every plugin of `text` (the validation); chains only for a local Server. */
  private load(text: string): Promise<LoadedConfig> {
    return loadConfig(text, this.opts.corefilePath ?? 'Corefile', {
      defaultBind: this.opts.defaultBind,
      defaultPort: this.opts.defaultPort,
      env: this.opts.env ?? process.env,
      clusterZones: this.clusterZones,
      clock: this.clock,
      log: this.log,
      engine: this,
      compose: this.dns.composes,
    });
  }

  /** The back end serves `cfg` first; then this thread's plugins switch to it. */
  private async apply(cfg: LoadedConfig, initial: boolean): Promise<void> {
    await this.dns.apply(cfg, this.clusterZones);
    setDebugOutput(cfg.blocks.some((b) => b.server.debug));
    const old = this.config;
    if (old) takeOver(old, cfg, processScoped);
    this.config = cfg;
    this.announce(cfg, initial);
    if (old) await stopPlugins(old.blocks, processScoped, this.log);
    await startPlugins(cfg.blocks, processScoped);
  }

  /** Logs CoreDNS's `zone:port on address (udp, tcp)` lines. */
  private announce(cfg: LoadedConfig, initial: boolean): void {
    if (this.opts.announce === false) return;
    const bound = new Map(this.dns.listening().map((l) => [`${l.address}|${l.configuredPort}`, l.port]));
    for (const block of cfg.blocks) {
      for (const address of block.addresses) {
        const port = bound.get(`${address}|${block.port}`) ?? block.port;
        for (const zone of block.zones) this.log.info(`${initial ? '' : 'reload: '}${zone}:${port} on ${address} (udp, tcp)`);
      }
    }
  }

  /** Runs `step` after every reload queued before it (whatever their outcome). */
  private serialized(step: () => Promise<void>): Promise<void> {
    const p = this.reloading.then(step, step);
    this.reloading = p.catch(() => {});
    return p;
  }

  // ---- EngineHooks ----

  reload(reason: string): Promise<void> {
    return this.serialized(async () => {
      if (this.shuttingDown) return;
      const path = this.opts.corefilePath;
      if (path === null) return;
      const text = await readConfigFile(path, DEFAULT_CONFIG_LIMITS.maxConfigBytes);
      this.log.info('Reloading');
      await this.apply(await this.load(text), false);
      this.log.info('Reloading complete');
      this.log.debug?.(`reload triggered by ${reason}`);
    });
  }

  /** Reloads from the given text instead of the file. */
  reloadText(text: string): Promise<void> {
    return this.serialized(async () => this.apply(await this.load(text), false));
  }

  /** The cluster's zones for the next load (start, reload); with workers they reach every worker then. */
  setClusterZones(zones: readonly string[]): void {
    this.clusterZones = [...zones];
  }

  isReady(): boolean {
    return this.ready && !this.shuttingDown && this.dns.serving() && (this.opts.readyCheck?.() ?? true);
  }

  isShuttingDown(): boolean {
    return this.shuttingDown;
  }

  blocks(): BlockInfo[] {
    return this.config ? this.config.blocks : [];
  }

  fatal(msg: string): never {
    return fatal(this.log, msg, this.opts.onFatal);
  }

  corefilePath(): string | null {
    return this.opts.corefilePath;
  }

  corefileText(): string {
    return this.config?.text ?? '';
  }

  pluginSetups(): Iterable<PluginSetup> {
    return pluginSetups().values();
  }

  listening(): ListenerInfo[] {
    return this.dns.listening();
  }

  /**
   * Graceful stop: ready goes 503, the longest lameduck any plugin asks for (health's) is waited
   * out while still serving, then the back end drains and closes, then this thread's plugins stop.
   */
  async stop(): Promise<void> {
    if (this.shuttingDown) return;
    this.shuttingDown = true;
    const blocks = this.config?.blocks ?? [];
    let lameduck: Plugin | null = null;
    for (const b of blocks) for (const p of b.plugins) if ((p.lameduckMs ?? 0) > (lameduck?.lameduckMs ?? 0)) lameduck = p;
    if (lameduck !== null) {
      this.log.info(`plugin/${lameduck.name}: Going into lameduck mode for ${formatGoDuration(lameduck.lameduckMs!)}`);
      await sleep(lameduck.lameduckMs!);
    }
    await this.dns.stop();
    await stopPlugins(blocks, processScoped, this.log);
  }
}
