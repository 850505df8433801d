/**
 * A serving worker thread: one Server (src/engine/server.ts) with its own reusePort UDP/TCP
 * sockets on every listen address, its own cache and its own upstream connections. The control
 * thread (src/workers/pool.ts) starts it with a WorkerInit and sends it reloads (`configure`:
 * the text the control plane validated, the cluster zones, the shared ports), metric snapshot
 * requests and the final stop (see src/workers/protocol.ts).
 *
 * The worker builds every plugin of the text it gets (its blocks carry what the metrics need,
 * e.g. which blocks enable them) but starts only the query-scoped ones (the Server's rule). Its
 * plugins' EngineHooks (WorkerHooks) are the serving state of this thread, `fatal` (handed to
 * the control thread, which ends the process) and no reload (the control plane reloads).
 *
 * Metrics: this thread records its own zone stats and plugin counters; a `snapshot` request is
 * answered with them (zone stats of the routes whose block has `prometheus`, cache and forward
 * counters, plugin_enabled), and the control thread merges the snapshots of all workers.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { BlockInfo, EngineHooks, PluginSetup } from '../plugin.ts';
import { loadConfig, type LoadedConfig } from '../config/load.ts';
import { pluginSetups } from '../plugins/registry.ts';
import { Server } from '../engine/server.ts';
import { fatal } from '../engine/plugins.ts';
import { defaultClock } from '../server/dispatch.ts';
import { EngineCollector } from '../metrics/engine-collector.ts';
import { SnapshotBuilder } from '../metrics/snapshot.ts';
import { countPanic, monitorRoutes, zoneStatsRegistry } from '../metrics/zone-stats.ts';
import { log, setQuiet } from '../util/log.ts';
import { listenForAdoption } from '../server/udp-adopt.ts';
import { quietUdpIoAnnouncement } from '../server/udp-native.ts';
import { PanicGuard } from '../util/panic.ts';
import type { ControlRequest, WorkerInit, WorkerMessage } from './protocol.ts';

function post(m: WorkerMessage): void {
  parentPort!.postMessage(m);
}

/** The worker counterpart of the metrics plugin's start(): export the routes of the blocks that enable metrics. */
function monitorMetricsRoutes(blocks: readonly BlockInfo[]): void {
  monitorRoutes(
    zoneStatsRegistry,
    blocks.filter((b) => b.plugins.some((p) => p.enablesMetrics === true)),
  );
}

/** What this thread's plugins see of the engine (src/plugin.ts EngineHooks). */
class WorkerHooks implements EngineHooks {
  private readonly server: Server;
  private readonly init: WorkerInit;

  constructor(server: Server, init: WorkerInit) {
    this.server = server;
    this.init = init;
  }

  reload(): Promise<void> {
    return Promise.reject(new Error('reload runs in the control thread'));
  }

  isReady(): boolean {
    return this.server.serving();
  }

  isShuttingDown(): boolean {
    return this.server.isStopping();
  }

  blocks(): BlockInfo[] {
    return this.server.blocks();
  }

  /**
   * The control thread exits the process; this thread stops now (in a worker, process.exit
   * ends only the thread), so the query that triggered it is not answered as a panic.
   */
  fatal(msg: string): never {
    return fatal(log, msg, (message) => {
      post({ type: 'fatal', message });
      process.exit(1);
    });
  }

  corefilePath(): string | null {
    return this.init.corefilePath;
  }

  corefileText(): string {
    return this.server.text();
  }

  pluginSetups(): Iterable<PluginSetup> {
    return pluginSetups().values();
  }
}

/** This thread's counters, as a `snapshot` request answers them. */
function snapshot(collector: EngineCollector): ReturnType<SnapshotBuilder['build']> {
  const b = new SnapshotBuilder();
  zoneStatsRegistry.collect(b);
  collector.collect(b);
  return b.build();
}

/**
 * An exception escaping a callback of this thread is survived as in the main thread
 * (src/util/panic.ts); too many end this thread only, after handing its counters to the pool,
 * which starts a fresh worker in its place.
 */
function guardThread(index: number, collector: EngineCollector): void {
  new PanicGuard({
    log,
    count: countPanic,
    where: `worker ${index}`,
    exit: (code) => {
      try {
        post({ type: 'final', snapshot: snapshot(collector) });
      } catch {
        // the counters since the last scrape are lost
      }
      process.exit(code);
    },
  }).install();
}

async function run(init: WorkerInit): Promise<void> {
  setQuiet(init.quiet);
  quietUdpIoAnnouncement();
  listenForAdoption();
  const portOverrides = new Map(init.portOverrides);
  const collector = new EngineCollector();
  guardThread(init.index, collector);
  const server = new Server({ reusePort: true, clock: defaultClock, log, portOverrides });
  const hooks = new WorkerHooks(server, init);
  const load = (text: string, clusterZones: readonly string[]): Promise<LoadedConfig> =>
    loadConfig(text, init.corefilePath ?? 'Corefile', {
      defaultBind: init.defaultBind,
      defaultPort: init.defaultPort,
      env: process.env,
      clusterZones,
      clock: defaultClock,
      log,
      engine: hooks,
    });
  const serve = async (text: string, clusterZones: readonly string[]): Promise<void> => {
    await server.apply(await load(text, clusterZones));
    monitorMetricsRoutes(server.blocks());
  };
  try {
    await serve(init.corefileText, init.clusterZones);
  } catch (err) {
    post({ type: 'startFailed', message: (err as Error).message });
    return;
  }
  collector.attach(hooks);

  // Requests are handled one at a time, in order.
  let queue = Promise.resolve();
  parentPort!.on('messageerror', (err) => log.error(`worker ${init.index}: a control message could not be deserialized: ${err.message}`));
  parentPort!.on('message', (req: ControlRequest) => {
    queue = queue.then(() => handle(req)).catch(() => {});
  });

  async function handle(req: ControlRequest): Promise<void> {
    try {
      switch (req.type) {
        case 'snapshot': {
          post({ type: 'reply', id: req.id, ok: true, snapshot: snapshot(collector) });
          return;
        }
        case 'configure': {
          portOverrides.clear();
          for (const [k, v] of req.portOverrides) portOverrides.set(k, v);
          await serve(req.text, req.clusterZones);
          post({ type: 'reply', id: req.id, ok: true, listening: server.listening() });
          return;
        }
        case 'stop': {
          await server.stop();
          post({ type: 'reply', id: req.id, ok: true });
          parentPort!.close();
          return;
        }
      }
    } catch (err) {
      post({ type: 'reply', id: req.id, ok: false, message: (err as Error).message });
    }
  }

  post({ type: 'serving', listening: server.listening() });
}

if (parentPort !== null) await run(workerData as WorkerInit);
