/**
 * Starts serving a Corefile with N workers: N = 1 runs the control plane with a Server in this
 * thread; N > 1 runs the control plane here (health, ready, prometheus, reload, signals) and N
 * serving worker threads (src/workers/pool.ts). Either way the result is a ControlPlane
 * (src/engine/control-plane.ts): `reload()` reaches every worker, `stop()` waits the lameduck
 * and drains every worker.
 */
import { readConfigFile } from '../corefile/read.ts';
import { DEFAULT_CONFIG_LIMITS } from '../corefile/limits.ts';
import type { ControlPlane } from '../engine/control-plane.ts';
import type { Logger } from '../plugin.ts';
import { log as defaultLog } from '../util/log.ts';
import { clusterZonesFrom } from '../config/cluster-zones.ts';
import type { WorkerPool } from './pool.ts';

export interface ServeOptions {
  corefilePath: string | null;
  corefileText?: string;
  defaultBind: string[];
  defaultPort: number;
  /** The cluster's zones (SetupContext.clusterZones); default: from the environment. */
  clusterZones?: readonly string[];
  /** Serving workers (>= 1); see src/workers/count.ts for the default. */
  workers: number;
  quiet?: boolean;
  log?: Logger;
  /** A worker asked the process to exit (CoreDNS log.Fatal); default: exit 1. */
  onFatal?: (message: string) => void;
  /** ControlPlaneOptions.readyCheck. */
  readyCheck?: () => boolean;
}

/** Time given to a worker's last stderr lines to reach the process's stderr before exiting. */
const FATAL_FLUSH_MS = 100;

export interface Serving {
  engine: ControlPlane;
  /** The pool, when there are worker threads. */
  pool: WorkerPool | null;
}

export async function startServing(o: ServeOptions): Promise<Serving> {
  if (o.workers <= 1) {
    const { ControlPlane } = await import('../engine/control-plane.ts');
    const base = {
      corefilePath: o.corefilePath,
      corefileText: o.corefileText,
      defaultBind: o.defaultBind,
      defaultPort: o.defaultPort,
      clusterZones: o.clusterZones,
      reusePort: true,
      log: o.log,
      readyCheck: o.readyCheck,
    };
    return { engine: await ControlPlane.start(base), pool: null };
  }
  const log = o.log ?? defaultLog;
  // Read once here, so that the workers build from the text the control plane validated.
  const text = o.corefileText ?? (await readConfigFile(o.corefilePath!, DEFAULT_CONFIG_LIMITS.maxConfigBytes));
  // Loaded only here: node:worker_threads costs a single-thread start-up ~5 ms for nothing.
  const { WorkerPool } = await import('./pool.ts');
  const pool = new WorkerPool({
    size: o.workers,
    corefilePath: o.corefilePath,
    defaultBind: o.defaultBind,
    defaultPort: o.defaultPort,
    quiet: o.quiet ?? false,
    log,
    onFatal: o.onFatal ?? (() => setTimeout(() => process.exit(1), FATAL_FLUSH_MS)),
  });
  // Worker 0 boots while this thread loads the control plane and the config (both take ~100-200 ms).
  const clusterZones = o.clusterZones ?? clusterZonesFrom(process.env);
  pool.prestart(text, clusterZones);
  const [{ ControlPlane }, { metricsHub }] = await Promise.all([import('../engine/control-plane.ts'), import('../metrics/hub.ts')]);
  // Scrapes on this thread merge every worker's counters (src/metrics/snapshot.ts rules).
  metricsHub().setRemoteSnapshots(() => pool.snapshots());
  try {
    const engine = await ControlPlane.start({
      corefilePath: o.corefilePath,
      corefileText: text,
      defaultBind: o.defaultBind,
      defaultPort: o.defaultPort,
      clusterZones,
      log: o.log,
      pool,
      readyCheck: o.readyCheck,
    });
    return { engine, pool };
  } catch (err) {
    await pool.stop();
    throw err;
  }
}
