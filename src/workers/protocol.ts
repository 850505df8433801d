/**
 * Messages between the control thread (src/workers/pool.ts) and a serving worker thread
 * (src/workers/worker.ts). Every message is structured-clone safe (plain objects, arrays,
 * strings, numbers).
 *
 * Control → worker: requests carry an `id`; the worker answers each with one `reply` of the
 * same id. A worker answers requests one at a time in arrival order (the pool never sends a
 * reload before the previous one was answered).
 * Worker → control: `serving` once its Server serves (or `startFailed`), `reply`s, and `fatal`
 * when a plugin asks the process to exit (CoreDNS's log.Fatal, e.g. plugin/loop), `final` with
 * its counters when it ends itself after too many panics (src/util/panic.ts).
 */
import type { ListenerInfo } from '../engine/server.ts';
import type { MetricsSnapshot } from '../metrics/snapshot.ts';

/** What a worker is started with (its `workerData`). */
export interface WorkerInit {
  /** Index of the worker in the pool (0-based), for log lines. */
  index: number;
  corefilePath: string | null;
  /** The Corefile text to serve (read once by the control thread, so all workers agree). */
  corefileText: string;
  defaultBind: string[];
  defaultPort: number;
  /** The cluster's zones (SetupContext.clusterZones), as the control thread has them. */
  clusterZones: string[];
  /** `-quiet`. */
  quiet: boolean;
  /** Ports of listeners configured with port 0: [`address|0`, port]. */
  portOverrides: [string, number][];
}

export type ControlRequest =
  | { type: 'configure'; id: number; text: string; clusterZones: string[]; portOverrides: [string, number][] }
  | { type: 'snapshot'; id: number }
  | { type: 'stop'; id: number };

export type WorkerMessage =
  | { type: 'serving'; listening: ListenerInfo[] }
  | { type: 'startFailed'; message: string }
  | { type: 'reply'; id: number; ok: true; listening?: ListenerInfo[]; snapshot?: MetricsSnapshot }
  | { type: 'reply'; id: number; ok: false; message: string }
  | { type: 'fatal'; message: string }
  /** Sent just before a worker ends itself (too many panics): its counters, kept by the pool. */
  | { type: 'final'; snapshot: MetricsSnapshot };
