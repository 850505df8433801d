/**
 * A serving worker thread: one Engine in the `worker` role (src/engine.ts) with its own
 * reusePort UDP/TCP sockets on every listen address, its own cache and its own upstream
 * connections. The control thread (src/workers/pool.ts) starts it with a WorkerInit, sends it
 * reloads, metric snapshot requests and the final stop (see src/workers/protocol.ts).
 *
 * Metrics: this thread records its own zone stats and plugin counters; a `snapshot` request is
 * answered with them (zone stats of the routes whose block has `prometheus`, cache and forward
 * counters, plugin_enabled), and the control thread merges the snapshots of all workers.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Engine, EngineRole } from '../engine.ts';
import { EngineCollector } from '../metrics/engine-collector.ts';
import { SnapshotBuilder } from '../metrics/snapshot.ts';
import { zoneStatsRegistry } from '../metrics/zone-stats.ts';
import { monitorRoutes } from '../plugins/prometheus/prometheus.ts';
import { log, setQuiet } from '../util/log.ts';
import { PanicGuard } from '../util/panic.ts';
import { countPanic } from '../metrics/zone-stats.ts';
import type { ControlRequest, WorkerInit, WorkerMessage } from './protocol.ts';

function post(m: WorkerMessage): void {
  parentPort!.postMessage(m);
}

/** The worker counterpart of the metrics plugin's start(): export the routes of the blocks that enable metrics. */
function monitorMetricsRoutes(engine: Engine): void {
  monitorRoutes(zoneStatsRegistry, engine.blocks().filter((b) => b.plugins.some((p) => p.enablesMetrics === true)));
}

/** This thread's counters, as a `snapshot` request answers them. */
function snapshot(collector: EngineCollector): ReturnType<SnapshotBuilder['build']> {
  const b = new SnapshotBuilder();
  zoneStatsRegistry.collect(b);
  collector.collect(b);
  return b.build();
}

async function run(init: WorkerInit): Promise<void> {
  setQuiet(init.quiet);
  const portOverrides = new Map(init.portOverrides);
  const collector = new EngineCollector();
  // An exception escaping a callback of this thread is survived as in the main thread
  // (src/util/panic.ts); too many end this thread only, after handing its counters to the pool,
  // which starts a fresh worker in its place.
  new PanicGuard({
    log,
    count: countPanic,
    where: `worker ${init.index}`,
    exit: (code) => {
      try {
        post({ type: 'final', snapshot: snapshot(collector) });
      } catch {
        // the counters since the last scrape are lost
      }
      process.exit(code);
    },
  }).install();
  let engine: Engine;
  try {
    engine = await Engine.start({
      corefilePath: init.corefilePath,
      corefileText: init.corefileText,
      defaultBind: init.defaultBind,
      defaultPort: init.defaultPort,
      clusterZones: init.clusterZones,
      reusePort: true,
      role: EngineRole.WORKER,
      portOverrides,
      onApplied: monitorMetricsRoutes,
      // The control thread exits the process; this thread stops now (in a worker, process.exit
      // ends only the thread), so the query that triggered it is not answered as a panic.
      onFatal: (message) => {
        post({ type: 'fatal', message });
        process.exit(1);
      },
    });
  } catch (err) {
    post({ type: 'startFailed', message: (err as Error).message });
    return;
  }
  collector.attach(engine);

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
          engine.setClusterZones(req.clusterZones);
          await engine.reloadText(req.text);
          post({ type: 'reply', id: req.id, ok: true, listening: engine.listening() });
          return;
        }
        case 'stop': {
          await engine.stop();
          post({ type: 'reply', id: req.id, ok: true });
          parentPort!.close();
          return;
        }
      }
    } catch (err) {
      post({ type: 'reply', id: req.id, ok: false, message: (err as Error).message });
    }
  }

  post({ type: 'serving', listening: engine.listening() });
}

if (parentPort !== null) await run(workerData as WorkerInit);
