/**
 * The pool of serving worker threads behind the control plane (src/engine/control-plane.ts).
 *
 * Design (measurements in bench/PROFILE.md):
 *  - worker_threads, not node:cluster processes: the hit path per worker is the same (each
 *    worker owns its sockets), and memory is lower (2 workers + control thread: 101 MiB idle,
 *    126 MiB with 10,000 entries each; 2 bare processes: 122 / 159 MiB, before a cluster
 *    primary). Control messages are in-process message ports. A JavaScript error ends only
 *    its worker, which is restarted; a native crash or OOM kill ends the process (cluster
 *    would lose one child).
 *  - Every worker binds every listen address itself with SO_REUSEPORT (the kernel spreads
 *    datagrams and connections by 4-tuple hash); nothing is passed between threads per query.
 *  - One cache per worker (not shared): a hit stays a local ~170 ns lookup with no lock or
 *    message (a cache behind a MessagePort costs 13-130 µs per query); the cost is up to N×
 *    the upstream misses for a cold name and N× the memory.
 *  - Listeners configured with port 0 get the port the first worker bound (`portOverrides`),
 *    so all workers share one port.
 *
 * Life cycle:
 *  - `prestart(text)`: worker 0 boots while the control thread is still loading (start-up
 *    time: a worker takes ~200 ms to boot here, see bench/PROFILE.md).
 *  - `apply(text)` (first call): the other workers start at once, or, when a listener has port
 *    0, once worker 0 has bound and its ports are known; all must report ready or the start
 *    fails. Later calls (reloads): worker 0 reloads first — if it
 *    fails, nothing changed and the call rejects; then the others reload; one that fails is
 *    replaced by a fresh worker on the new config.
 *  - A worker that exits while the pool runs (uncaught error, `process.exit` in a plugin) is
 *    logged and replaced after RESTART_DELAY_MS (doubling up to MAX_RESTART_DELAY_MS while
 *    replacements keep dying within CRASH_LOOP_MS); its siblings keep serving meanwhile.
 *  - `fatal` from a worker (CoreDNS log.Fatal, e.g. a forwarding loop) ends the process.
 *  - `stop()`: every worker drains (answers what is in flight, closes) and exits.
 *
 * Metrics: `snapshots()` asks every serving worker for its snapshot. Counters and histograms
 * of a worker that died are kept (from its last snapshot), so merged counters stay monotonic
 * except for what a dead worker counted since the previous scrape.
 */
import { Worker } from 'node:worker_threads';
import { getCompileCacheDir } from 'node:module';
import type { ListenerInfo, ServingPool } from '../engine/control-plane.ts';
import type { Logger } from '../plugin.ts';
import { mergeSnapshots, type MetricsSnapshot } from '../metrics/snapshot.ts';
import type { ControlRequest, WorkerInit, WorkerMessage } from './protocol.ts';

const RESTART_DELAY_MS = 100;
const MAX_RESTART_DELAY_MS = 5_000;
/** A replacement that dies sooner than this after start counts as a crash loop (delay doubles). */
const CRASH_LOOP_MS = 5_000;
/** A snapshot request not answered in this time uses the worker's previous snapshot. */
const SNAPSHOT_TIMEOUT_MS = 2_000;
/** A worker that has not stopped this long after `stop` (drain included) is terminated. */
const STOP_TIMEOUT_MS = 15_000;
/**
 * V8 young generation of a worker (semi-spaces ~4 MiB instead of growing to 16 MiB each):
 * caps RSS by ~30 MiB per worker under load; hit and miss throughput showed no difference
 * beyond run-to-run noise (bench/PROFILE.md).
 */
const WORKER_YOUNG_GENERATION_MB = 12;

export interface PoolOptions {
  size: number;
  corefilePath: string | null;
  defaultBind: string[];
  defaultPort: number;
  quiet: boolean;
  log: Logger;
  /** A worker asked for the process to exit (its message was logged by the worker). */
  onFatal: (message: string) => void;
  /** The worker entry (tests may pass another). */
  workerUrl?: URL;
}

const WorkerState = { STARTING: 0, SERVING: 1, STOPPING: 2, GONE: 3 } as const;
type WorkerStateValue = (typeof WorkerState)[keyof typeof WorkerState];

interface Pending {
  resolve: (m: WorkerMessage & { type: 'reply' }) => void;
  timer: NodeJS.Timeout | null;
}

class WorkerHandle {
  readonly index: number;
  readonly worker: Worker;
  state: WorkerStateValue = WorkerState.STARTING;
  startedAt = performance.now();
  listening: ListenerInfo[] = [];
  lastSnapshot: MetricsSnapshot | null = null;
  readonly pending = new Map<number, Pending>();
  /** Settles when the worker reported ready (true) or failed to start / exited first (false). */
  readonly started: Promise<string | null>;
  readonly exited: Promise<number>;
  private settleStart!: (err: string | null) => void;

  constructor(index: number, worker: Worker) {
    this.index = index;
    this.worker = worker;
    this.started = new Promise((r) => (this.settleStart = r));
    this.exited = new Promise((r) => worker.once('exit', r));
  }

  onStart(err: string | null): void {
    this.settleStart(err);
  }
}

export class WorkerPool implements ServingPool {
  private readonly opts: PoolOptions;
  private readonly workers: (WorkerHandle | null)[];
  private text = '';
  /** The cluster's zones the workers load with (WorkerInit, the configure message). */
  private clusterZones: string[] = [];
  private portOverrides: [string, number][] = [];
  private nextId = 1;
  /** Set once the first start succeeded: from then on, workers that exit are replaced. */
  private running = false;
  private stopping = false;
  private fatal = false;
  private retired: MetricsSnapshot | null = null;
  private readonly restartDelay: number[];
  private readonly restartTimers = new Set<NodeJS.Timeout>();
  /** Workers replaced after an unexpected exit (for tests and logs). */
  restarts = 0;

  constructor(opts: PoolOptions) {
    if (!Number.isInteger(opts.size) || opts.size < 1) throw new RangeError(`worker pool size must be a positive integer, not ${opts.size}`);
    this.opts = opts;
    this.workers = new Array(opts.size).fill(null);
    this.restartDelay = new Array(opts.size).fill(RESTART_DELAY_MS);
  }

  get size(): number {
    return this.opts.size;
  }

  /** Thread ids of the live workers, by index (null: none right now). */
  threadIds(): (number | null)[] {
    return this.workers.map((w) => (w !== null && w.state !== WorkerState.GONE ? w.worker.threadId : null));
  }

  /** Ends worker `index` abruptly, as a crash would (tests, diagnostics); it is replaced as after a crash. */
  kill(index: number): Promise<number> {
    const w = this.workers[index];
    if (w === null || w === undefined || w.state === WorkerState.GONE) return Promise.resolve(-1);
    return w.worker.terminate();
  }

  serving(): boolean {
    return this.workers.some((w) => w !== null && w.state === WorkerState.SERVING);
  }

  listening(): ListenerInfo[] {
    for (const w of this.workers) if (w !== null && w.state === WorkerState.SERVING) return w.listening;
    return [];
  }

  /** Starts booting worker 0 on `text` before the first apply (which must pass the same text). */
  prestart(text: string, clusterZones: readonly string[]): void {
    if (this.workers.some((w) => w !== null)) return;
    this.text = text;
    this.clusterZones = [...clusterZones];
    this.portOverrides = [];
    this.spawn(0);
  }

  async apply(text: string, anyPortZero: boolean, clusterZones: readonly string[]): Promise<void> {
    if (this.stopping) throw new Error('worker pool is stopping');
    if (!this.running) return this.startAll(text, anyPortZero, clusterZones);
    return this.reloadAll(text, clusterZones);
  }

  private async startAll(text: string, anyPortZero: boolean, clusterZones: readonly string[]): Promise<void> {
    let first = this.workers[0] ?? null;
    if (first !== null && (this.text !== text || this.clusterZones.join(',') !== clusterZones.join(','))) {
      // The Corefile changed between prestart and the first load: start over on the new text.
      await this.terminateAll();
      first = null;
    }
    this.text = text;
    this.clusterZones = [...clusterZones];
    if (first === null) {
      this.portOverrides = [];
      first = this.spawn(0);
    }
    const rest: WorkerHandle[] = [];
    const spawnRest = () => {
      for (let i = 1; i < this.opts.size; i++) rest.push(this.spawn(i));
    };
    if (!anyPortZero) spawnRest();
    const err = await first.started;
    if (err === null && anyPortZero) {
      this.portOverrides = overridesFrom(first.listening);
      spawnRest();
    }
    const errs = [err, ...(await Promise.all(rest.map((w) => w.started)))];
    const failed = errs.find((e) => e !== null);
    if (failed !== undefined && failed !== null) {
      await this.terminateAll();
      throw new Error(failed);
    }
    this.running = true;
  }

  private async reloadAll(text: string, clusterZones: readonly string[]): Promise<void> {
    const live = this.workers.filter((w): w is WorkerHandle => w !== null && w.state === WorkerState.SERVING);
    if (live.length === 0) {
      // Every worker is being replaced: the replacements start on the new text.
      this.text = text;
      this.clusterZones = [...clusterZones];
      return;
    }
    const zones = [...clusterZones];
    const [first, ...others] = live;
    const r = await this.request(first!, { type: 'configure', id: 0, text, clusterZones: zones, portOverrides: this.portOverrides }, null);
    if (!r.ok) throw new Error(r.message);
    this.text = text;
    this.clusterZones = zones;
    if (r.listening) {
      first!.listening = r.listening;
      this.portOverrides = overridesFrom(r.listening);
    }
    await Promise.all(
      others.map(async (w) => {
        const res = await this.request(w, { type: 'configure', id: 0, text, clusterZones: zones, portOverrides: this.portOverrides }, null);
        if (res.ok) {
          if (res.listening) w.listening = res.listening;
          return;
        }
        this.opts.log.error(`worker ${w.index}: reload failed (${res.message}); replacing it`);
        await this.replace(w);
      }),
    );
  }

  /** Every serving worker's snapshot (the previous one for a worker that does not answer in time), plus dead workers' counters. */
  async snapshots(): Promise<MetricsSnapshot[]> {
    const live = this.workers.filter((w): w is WorkerHandle => w !== null && w.state === WorkerState.SERVING);
    const snaps = await Promise.all(
      live.map(async (w) => {
        const r = await this.request(w, { type: 'snapshot', id: 0 }, SNAPSHOT_TIMEOUT_MS);
        if (r.ok && r.snapshot) w.lastSnapshot = r.snapshot;
        return w.lastSnapshot;
      }),
    );
    const out = snaps.filter((s): s is MetricsSnapshot => s !== null);
    if (this.retired !== null) out.push(this.retired);
    return out;
  }

  async stop(): Promise<void> {
    this.stopping = true;
    for (const t of this.restartTimers) clearTimeout(t);
    this.restartTimers.clear();
    await Promise.all(
      this.workers.map(async (w) => {
        if (w === null || w.state === WorkerState.GONE) return;
        const wasServing = w.state === WorkerState.SERVING;
        w.state = WorkerState.STOPPING;
        if (wasServing) {
          const timeout = setTimeout(() => void w.worker.terminate(), STOP_TIMEOUT_MS);
          await Promise.race([this.request(w, { type: 'stop', id: 0 }, null), w.exited]);
          await w.exited;
          clearTimeout(timeout);
        } else {
          await w.worker.terminate();
        }
      }),
    );
  }

  // ---- workers ----

  private spawn(index: number): WorkerHandle {
    const init: WorkerInit = {
      index,
      corefilePath: this.opts.corefilePath,
      corefileText: this.text,
      defaultBind: this.opts.defaultBind,
      defaultPort: this.opts.defaultPort,
      clusterZones: [...this.clusterZones],
      quiet: this.opts.quiet,
      portOverrides: this.portOverrides,
    };
    // The compile cache (enabled by main.ts) is per thread: pass it on so workers skip type stripping.
    const cacheDir = getCompileCacheDir();
    const env = cacheDir !== undefined && process.env.NODE_COMPILE_CACHE === undefined ? { ...process.env, NODE_COMPILE_CACHE: cacheDir } : process.env;
    const worker = new Worker(this.opts.workerUrl ?? new URL('./worker.ts', import.meta.url), {
      workerData: init,
      env,
      name: `node-local-dns worker ${index}`,
      resourceLimits: { maxYoungGenerationSizeMb: WORKER_YOUNG_GENERATION_MB },
    });
    const h = new WorkerHandle(index, worker);
    this.workers[index] = h;
    worker.on('message', (m: WorkerMessage) => this.onMessage(h, m));
    worker.on('error', (err) => {
      if (h.state !== WorkerState.STOPPING) this.opts.log.error(`worker ${index}: ${err.stack ?? err.message}`);
    });
    // A message that cannot be deserialized would leave its request waiting: say so.
    worker.on('messageerror', (err) => this.opts.log.error(`worker ${index}: a message could not be deserialized: ${err.message}`));
    worker.once('exit', (code) => this.onExit(h, code));
    return h;
  }

  private onMessage(h: WorkerHandle, m: WorkerMessage): void {
    switch (m.type) {
      case 'serving':
        h.listening = m.listening;
        if (h.state === WorkerState.STARTING) h.state = WorkerState.SERVING;
        h.onStart(null);
        return;
      case 'startFailed':
        h.onStart(m.message);
        return;
      case 'reply': {
        const p = h.pending.get(m.id);
        if (p === undefined) return;
        h.pending.delete(m.id);
        if (p.timer !== null) clearTimeout(p.timer);
        p.resolve(m);
        return;
      }
      case 'final':
        h.lastSnapshot = m.snapshot;
        return;
      case 'fatal':
        if (this.fatal) return;
        this.fatal = true;
        this.opts.onFatal(m.message);
        return;
    }
  }

  private onExit(h: WorkerHandle, code: number): void {
    const wasServing = h.state === WorkerState.SERVING;
    const expected = h.state === WorkerState.STOPPING || this.stopping || this.fatal;
    h.state = WorkerState.GONE;
    h.onStart(`worker ${h.index} exited with code ${code} before serving`);
    for (const [id, p] of h.pending) {
      if (p.timer !== null) clearTimeout(p.timer);
      p.resolve({ type: 'reply', id, ok: false, message: `worker ${h.index} exited` });
    }
    h.pending.clear();
    if (h.lastSnapshot !== null) this.retire(h.lastSnapshot);
    if (expected || !this.running || this.workers[h.index] !== h) return;
    // A worker that dies soon after it started is likely to die again: back off.
    const quick = performance.now() - h.startedAt < CRASH_LOOP_MS;
    const delay = quick ? Math.min(MAX_RESTART_DELAY_MS, this.restartDelay[h.index]! * 2) : RESTART_DELAY_MS;
    this.restartDelay[h.index] = delay;
    this.opts.log.error(`worker ${h.index} exited unexpectedly (code ${code}${wasServing ? '' : ', before serving'}); restarting it in ${delay} ms`);
    const t = setTimeout(() => {
      this.restartTimers.delete(t);
      if (this.stopping || this.fatal || this.workers[h.index] !== h) return;
      this.restarts++;
      const next = this.spawn(h.index);
      void next.started.then((err) => {
        if (err !== null) this.opts.log.error(`worker ${h.index} restart failed: ${err}`);
        else this.opts.log.info(`worker ${h.index} restarted`);
      });
    }, delay);
    this.restartTimers.add(t);
  }

  /** Ends worker w and starts a fresh one in its place on the current text. */
  private async replace(w: WorkerHandle): Promise<void> {
    w.state = WorkerState.STOPPING;
    await w.worker.terminate();
    if (this.stopping) return;
    const next = this.spawn(w.index);
    const err = await next.started;
    if (err !== null) this.opts.log.error(`worker ${w.index} replacement failed: ${err}`);
  }

  private async terminateAll(): Promise<void> {
    await Promise.all(
      this.workers.map(async (w) => {
        if (w === null) return;
        w.state = WorkerState.STOPPING;
        await w.worker.terminate();
      }),
    );
    this.workers.fill(null);
  }

  /** Keeps a dead worker's counters and histograms (gauges describe live state only). */
  private retire(s: MetricsSnapshot): void {
    const kept: MetricsSnapshot = { families: s.families.filter((f) => f.type !== 'gauge') };
    this.retired = this.retired === null ? mergeSnapshots([kept]) : mergeSnapshots([this.retired, kept]);
  }

  private request(h: WorkerHandle, req: ControlRequest, timeoutMs: number | null): Promise<WorkerMessage & { type: 'reply' }> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      if (h.state === WorkerState.GONE) {
        resolve({ type: 'reply', id, ok: false, message: `worker ${h.index} exited` });
        return;
      }
      const timer =
        timeoutMs === null
          ? null
          : setTimeout(() => {
              h.pending.delete(id);
              resolve({ type: 'reply', id, ok: false, message: `worker ${h.index} did not answer in ${timeoutMs} ms` });
            }, timeoutMs);
      h.pending.set(id, { resolve, timer });
      h.worker.postMessage({ ...req, id });
    });
  }
}

/** The ports worker 0 bound for listeners configured with port 0. */
function overridesFrom(listening: readonly ListenerInfo[]): [string, number][] {
  return listening.filter((l) => l.configuredPort === 0).map((l) => [`${l.address}|0`, l.port]);
}
