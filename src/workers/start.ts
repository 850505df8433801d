/**
 * Starts serving a Corefile with N workers: N = 1 runs one standalone engine in this thread;
 * N > 1 runs a control engine here (health, ready, prometheus, reload, signals) and N serving
 * worker threads (src/workers/pool.ts). Either way the result is an Engine: `reload()` reaches
 * every worker, `stop()` waits the lameduck and drains every worker.
 */
import { Engine, EngineRole } from '../engine.ts';
import type { Logger } from '../plugin.ts';
import { log as defaultLog } from '../util/log.ts';
import { WorkerPool } from './pool.ts';

export interface ServeOptions {
  corefilePath: string | null;
  corefileText?: string;
  defaultBind: string[];
  defaultPort: number;
  /** Serving workers (>= 1); see src/workers/count.ts for the default. */
  workers: number;
  quiet?: boolean;
  log?: Logger;
  /** A worker asked the process to exit (CoreDNS log.Fatal); default: exit 1. */
  onFatal?: (message: string) => void;
}

/** Time given to a worker's last stderr lines to reach the process's stderr before exiting. */
const FATAL_FLUSH_MS = 100;

export interface Serving {
  engine: Engine;
  /** The pool, when there are worker threads. */
  pool: WorkerPool | null;
}

export async function startServing(o: ServeOptions): Promise<Serving> {
  const base = { corefilePath: o.corefilePath, corefileText: o.corefileText, defaultBind: o.defaultBind, defaultPort: o.defaultPort, reusePort: true, log: o.log };
  if (o.workers <= 1) return { engine: await Engine.start(base), pool: null };
  const log = o.log ?? defaultLog;
  const pool = new WorkerPool({
    size: o.workers,
    corefilePath: o.corefilePath,
    defaultBind: o.defaultBind,
    defaultPort: o.defaultPort,
    quiet: o.quiet ?? false,
    log,
    onFatal: o.onFatal ?? (() => setTimeout(() => process.exit(1), FATAL_FLUSH_MS)),
  });
  // Scrapes on this thread merge every worker's counters (src/metrics/snapshot.ts rules).
  const { metricsHub } = await import('../metrics/hub.ts');
  metricsHub().setRemoteSnapshots(() => pool.snapshots());
  const engine = await Engine.start({ ...base, role: EngineRole.CONTROL, pool });
  return { engine, pool };
}
