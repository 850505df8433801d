/**
 * The DNS server of one thread: serves loaded configurations (src/config/load.ts) on UDP + TCP
 * listeners, one pair per address and port. Knows nothing of Corefiles, workers or reloads.
 *
 * Contract:
 *  - `apply(cfg)`: binds what is new (a bind failure changes nothing and rejects), the
 *    query-scoped plugins take over from their predecessors, then new queries route on `cfg`;
 *    queries in flight finish on the config they started on (drained, at most DRAIN_TIMEOUT_MS),
 *    the old query-scoped plugins stop, the new ones start, listeners `cfg` no longer has close.
 *    Each TCP listener gets its timeouts from the blocks' ServerConfig. Calls do not overlap
 *    (the caller serializes them).
 *  - `stop()`: TCP stops accepting, UDP hands over to the other members of its SO_REUSEPORT
 *    group, what is in flight is answered, then the query-scoped plugins stop. No lameduck:
 *    whoever owns the process (src/engine/control-plane.ts) waited it out before.
 * Process-scoped plugins are never started or stopped here.
 */
import { PluginScope, type BlockInfo, type Clock, type Logger, type Plugin } from '../plugin.ts';
import { serverLabel, type LoadedBlock, type LoadedConfig } from '../config/load.ts';
import { Dispatcher, Generation, RouteTarget } from '../server/dispatch.ts';
import { ZoneMatcher } from '../wire/zone-match.ts';
import { type UdpListener, createUdpListener } from '../server/udp.ts';
import { TcpListener } from '../server/tcp.ts';
import { getZoneStats } from '../metrics/zone-stats.ts';
import { setDebugOutput } from '../util/log.ts';
import { sleep, startPlugins, stopPlugins, takeOver } from './plugins.ts';

export interface ListenerInfo {
  address: string;
  /** The port as configured (0: any). */
  configuredPort: number;
  /** The bound port. */
  port: number;
  protos: ('udp' | 'tcp')[];
}

export interface ServerOptions {
  /** SO_REUSEPORT on every socket (workers, standby instances). */
  reusePort: boolean;
  /** One clock for the listeners and every plugin (see Dispatcher.clock). */
  clock: Clock;
  log: Logger;
  /**
   * The port to bind for a listener configured with port 0, by `address|0` (workers share the
   * port the first one got). Read at each apply.
   */
  portOverrides?: ReadonlyMap<string, number>;
}

interface Listener {
  key: string;
  address: string;
  configuredPort: number;
  udp: UdpListener;
  tcp: TcpListener;
  dispatcher: Dispatcher;
}

type Tables = Map<string, { address: string; port: number; table: ZoneMatcher<RouteTarget> }>;

/** Longest time an old config may keep queries in flight after a reload or at shutdown. */
const DRAIN_TIMEOUT_MS = 10_000;

/** The plugins a Server runs. */
const queryScoped = (p: Plugin): boolean => p.scope === PluginScope.QUERY;

export class Server {
  private readonly opts: ServerOptions;
  private readonly listeners = new Map<string, Listener>();
  private config: LoadedConfig | null = null;
  private generation = new Generation(0);
  private stopping = false;

  constructor(opts: ServerOptions) {
    this.opts = opts;
  }

  /** Serves `cfg` (see the module comment). Resolves once the old config is retired. */
  async apply(cfg: LoadedConfig): Promise<void> {
    const old = this.config;
    const oldGeneration = this.generation;
    const generation = new Generation(oldGeneration.id + 1);
    const tables = this.routeTables(cfg, generation);
    await this.bindNew(tables, generation);
    if (old) takeOver(old, cfg, queryScoped);

    // Swap: from here on, new queries run on the new config.
    for (const [key, { table }] of tables) this.listeners.get(key)!.dispatcher.table = table;
    applyServerSettings(cfg, this.listeners);
    this.config = cfg;
    this.generation = generation;

    if (old) {
      await drain(oldGeneration);
      await stopPlugins(old.blocks, queryScoped, this.opts.log);
    }
    await startPlugins(cfg.blocks, queryScoped);
    for (const [key, l] of this.listeners) {
      if (tables.has(key)) continue;
      this.listeners.delete(key);
      await Promise.all([l.udp.close(), l.tcp.close()]);
    }
  }

  /** Routing tables per listener (`address|port`) for `cfg`. */
  private routeTables(cfg: LoadedConfig, generation: Generation): Tables {
    const tables: Tables = new Map();
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
    return tables;
  }

  /** Binds the listeners `tables` adds, before touching the running ones: a failure closes them and changes nothing. */
  private async bindNew(tables: Tables, generation: Generation): Promise<void> {
    const created: Listener[] = [];
    try {
      for (const [key, { address, port, table }] of tables) {
        if (this.listeners.has(key)) continue;
        const dispatcher = new Dispatcher(serverLabel(address, port), table, this.opts.clock);
        const bindPort = port === 0 ? (this.opts.portOverrides?.get(`${address}|0`) ?? 0) : port;
        const udp = createUdpListener(address, bindPort, dispatcher, this.opts.reusePort);
        const boundPort = await udp.bind();
        const tcp = new TcpListener(address, boundPort, dispatcher, this.opts.reusePort);
        created.push({ key, address, configuredPort: port, udp, tcp, dispatcher });
        await tcp.listen();
        if (port === 0) {
          // The label carries the real port when the Corefile asked for any port.
          const label = serverLabel(address, boundPort);
          (dispatcher as { serverLabel: string }).serverLabel = label;
          for (const r of table.all())
            (r as { target: RouteTarget }).target = new RouteTarget(r.target.chain, getZoneStats(label, r.zone), r.target.errorSink, generation);
        }
      }
    } catch (err) {
      await Promise.all(created.map((l) => Promise.all([l.udp.close(), l.tcp.close()])));
      throw new Error(`listen ${(err as NodeJS.ErrnoException).code ?? ''}: ${(err as Error).message}`);
    }
    for (const l of created) this.listeners.set(l.key, l);
  }

  /** A config is being served and stop has not begun. */
  serving(): boolean {
    return this.config !== null && !this.stopping;
  }

  /** True from the moment stop begins. */
  isStopping(): boolean {
    return this.stopping;
  }

  /** The blocks of the config being served. */
  blocks(): BlockInfo[] {
    return this.config ? this.config.blocks : [];
  }

  /** The Corefile text being served ('' before the first apply). */
  text(): string {
    return this.config?.text ?? '';
  }

  listening(): ListenerInfo[] {
    return [...this.listeners.values()].map((l) => ({ address: l.address, configuredPort: l.configuredPort, port: l.udp.port, protos: ['udp', 'tcp'] }));
  }

  /** Queries in flight on every listener. */
  inFlight(): number {
    let n = 0;
    for (const l of this.listeners.values()) n += l.dispatcher.inFlight;
    return n;
  }

  /** Drains and closes every listener, then stops the query-scoped plugins (see the module comment). */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    const tcpClosed = [...this.listeners.values()].map((l) => l.tcp.close());
    const deadline = performance.now() + DRAIN_TIMEOUT_MS;
    // UDP: the other members of each SO_REUSEPORT group (workers, a standby) take the new
    // queries; what was queued here and what is in flight is answered before the close.
    await Promise.all([...this.listeners.values()].map((l) => l.udp.handOver(deadline)));
    while (this.inFlight() > 0 && performance.now() < deadline) await sleep(5);
    for (const l of this.listeners.values()) l.tcp.destroyAll();
    await Promise.race([Promise.all(tcpClosed), sleep(1000)]);
    if (this.config) await stopPlugins(this.config.blocks, queryScoped, this.opts.log);
    this.listeners.clear();
  }
}

async function drain(gen: Generation): Promise<void> {
  const deadline = performance.now() + DRAIN_TIMEOUT_MS;
  while (gen.inFlight > 0 && performance.now() < deadline) await sleep(10);
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
