/**
 * The process's standard metrics (`process_*`, `nodejs_*`) under prom-client's default-metric
 * names, help texts and types, written here instead of loading prom-client: prom-client with its
 * default metrics cost 5–10 MiB of RSS per process once scraped (bench/PROFILE.md, Footprint),
 * on every node. Read from the rendering thread only (as prom-client's were): CPU, memory and
 * file descriptors are process-wide; the heap and event-loop figures are this thread's.
 *
 * Differences from prom-client: `process_cpu_*_seconds_total` count from process start (prom-client
 * counted from its first scrape); `nodejs_eventloop_lag_seconds` is measured during the scrape
 * (prom-client reported the previous scrape's measurement). The event-loop delay histogram and the
 * GC observer start at the first scrape, as prom-client's did.
 */
import fs from 'node:fs';
import v8 from 'node:v8';
import { monitorEventLoopDelay, PerformanceObserver, constants as perfConstants } from 'node:perf_hooks';
import type { SnapshotBuilder } from './snapshot.ts';

/** prom-client's nodejs_gc_duration_seconds buckets. */
export const GC_DURATION_BOUNDS_SEC = [0.001, 0.01, 0.1, 1, 2, 5] as const;

const GC_KINDS: ReadonlyMap<number, string> = new Map([
  [perfConstants.NODE_PERFORMANCE_GC_MAJOR, 'major'],
  [perfConstants.NODE_PERFORMANCE_GC_MINOR, 'minor'],
  [perfConstants.NODE_PERFORMANCE_GC_INCREMENTAL, 'incremental'],
  [perfConstants.NODE_PERFORMANCE_GC_WEAKCB, 'weakcb'],
]);

/** Start of the process, whole seconds since the epoch (prom-client's rounding). */
const START_TIME_SEC = Math.round(Date.now() / 1000 - process.uptime());

type LoopDelayHistogram = ReturnType<typeof monitorEventLoopDelay>;

/** Node's undocumented handle and request lists, which prom-client's metrics read. */
const internals = process as unknown as { _getActiveHandles?(): unknown[]; _getActiveRequests?(): unknown[] };

const VERSION_PARTS = process.version.slice(1).split('.');

/** GC pauses of one kind: non-cumulative counts per bound, +Inf last, and their sum. */
interface GcKindStats {
  buckets: number[];
  sumSec: number;
}

export class NodeProcessMetrics {
  #loopDelay: LoopDelayHistogram | null = null;
  #gcObserver: PerformanceObserver | null = null;
  readonly #gc = new Map<string, GcKindStats>();
  #maxFds: number | null | undefined;

  /** Starts the event-loop delay histogram and the GC observer (the first scrape does). */
  start(): void {
    if (this.#loopDelay !== null) return;
    this.#loopDelay = monitorEventLoopDelay();
    this.#loopDelay.enable();
    this.#gcObserver = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) this.#observeGc(GC_KINDS.get((e as { detail?: { kind?: number } | null }).detail?.kind ?? -1), e.duration / 1000);
    });
    this.#gcObserver.observe({ entryTypes: ['gc'] });
  }

  /** Stops what start() started (tests). */
  stop(): void {
    this.#loopDelay?.disable();
    this.#loopDelay = null;
    this.#gcObserver?.disconnect();
    this.#gcObserver = null;
  }

  #observeGc(kind: string | undefined, seconds: number): void {
    const key = kind ?? 'undefined';
    let s = this.#gc.get(key);
    if (s === undefined) {
      s = { buckets: new Array<number>(GC_DURATION_BOUNDS_SEC.length + 1).fill(0), sumSec: 0 };
      this.#gc.set(key, s);
    }
    let i = 0;
    while (i < GC_DURATION_BOUNDS_SEC.length && seconds > GC_DURATION_BOUNDS_SEC[i]!) i++;
    s.buckets[i]!++;
    s.sumSec += seconds;
  }

  /** Writes every family into out; waits one event-loop turn to measure the lag. */
  async collect(out: SnapshotBuilder): Promise<void> {
    this.start();
    const lagSec = await measureLoopLagSec();
    this.#collectProcess(out);
    this.#collectLoop(out, lagSec);
    this.#collectResources(out);
    this.#collectHeap(out);
    out
      .family('nodejs_version_info', 'Node.js version info.', 'gauge')
      .add({ version: process.version, major: VERSION_PARTS[0] ?? '', minor: VERSION_PARTS[1] ?? '', patch: VERSION_PARTS[2] ?? '' }, 1);
    const gc = out.family('nodejs_gc_duration_seconds', 'Garbage collection duration by kind, one of major, minor, incremental or weakcb.', 'histogram', {
      bounds: GC_DURATION_BOUNDS_SEC,
    });
    for (const [kind, s] of this.#gc) gc.addHistogram({ kind }, s.buckets, s.sumSec);
  }

  #collectProcess(out: SnapshotBuilder): void {
    const cpu = process.cpuUsage();
    out.family('process_cpu_user_seconds_total', 'Total user CPU time spent in seconds.', 'counter').add({}, cpu.user / 1e6);
    out.family('process_cpu_system_seconds_total', 'Total system CPU time spent in seconds.', 'counter').add({}, cpu.system / 1e6);
    out.family('process_cpu_seconds_total', 'Total user and system CPU time spent in seconds.', 'counter').add({}, (cpu.user + cpu.system) / 1e6);
    out.family('process_start_time_seconds', 'Start time of the process since unix epoch in seconds.', 'gauge').add({}, START_TIME_SEC);
    const status = readProcStatusKb(['VmRSS', 'VmSize', 'VmData']);
    out.family('process_resident_memory_bytes', 'Resident memory size in bytes.', 'gauge').add({}, (status.VmRSS ?? process.memoryUsage.rss() / 1024) * 1024);
    if (status.VmSize !== undefined) out.family('process_virtual_memory_bytes', 'Virtual memory size in bytes.', 'gauge').add({}, status.VmSize * 1024);
    if (status.VmData !== undefined) out.family('process_heap_bytes', 'Process heap size in bytes.', 'gauge').add({}, status.VmData * 1024);
    const open = openFds();
    if (open !== null) out.family('process_open_fds', 'Number of open file descriptors.', 'gauge').add({}, open);
    this.#maxFds ??= maxFds();
    if (this.#maxFds !== null) out.family('process_max_fds', 'Maximum number of open file descriptors.', 'gauge').add({}, this.#maxFds);
  }

  #collectLoop(out: SnapshotBuilder, lagSec: number): void {
    out.family('nodejs_eventloop_lag_seconds', 'Lag of event loop in seconds.', 'gauge').add({}, lagSec);
    const h = this.#loopDelay!;
    const gauges: [string, string, number][] = [
      ['min', 'The minimum recorded event loop delay.', h.min],
      ['max', 'The maximum recorded event loop delay.', h.max],
      ['mean', 'The mean of the recorded event loop delays.', h.mean],
      ['stddev', 'The standard deviation of the recorded event loop delays.', h.stddev],
      ['p50', 'The 50th percentile of the recorded event loop delays.', h.percentile(50)],
      ['p90', 'The 90th percentile of the recorded event loop delays.', h.percentile(90)],
      ['p99', 'The 99th percentile of the recorded event loop delays.', h.percentile(99)],
    ];
    for (const [stat, help, ns] of gauges) out.family(`nodejs_eventloop_lag_${stat}_seconds`, help, 'gauge').add({}, ns / 1e9);
    h.reset();
  }

  #collectResources(out: SnapshotBuilder): void {
    const kinds: [string, string, string, string[] | null][] = [
      [
        'nodejs_active_handles',
        'Number of active libuv handles grouped by handle type. Every handle type is C++ class name.',
        'Total number of active handles.',
        internals._getActiveHandles === undefined ? null : constructorNames(internals._getActiveHandles()),
      ],
      [
        'nodejs_active_requests',
        'Number of active libuv requests grouped by request type. Every request type is C++ class name.',
        'Total number of active requests.',
        internals._getActiveRequests === undefined ? null : constructorNames(internals._getActiveRequests()),
      ],
      [
        'nodejs_active_resources',
        'Number of active resources that are currently keeping the event loop alive, grouped by async resource type.',
        'Total number of active resources.',
        process.getActiveResourcesInfo(),
      ],
    ];
    for (const [name, help, totalHelp, types] of kinds) {
      if (types === null) continue;
      const f = out.family(name, help, 'gauge');
      for (const type of types) f.add({ type }, 1);
      out.family(`${name}_total`, totalHelp, 'gauge').add({}, types.length);
    }
  }

  #collectHeap(out: SnapshotBuilder): void {
    const mem = process.memoryUsage();
    out.family('nodejs_heap_size_total_bytes', 'Process heap size from Node.js in bytes.', 'gauge').add({}, mem.heapTotal);
    out.family('nodejs_heap_size_used_bytes', 'Process heap size used from Node.js in bytes.', 'gauge').add({}, mem.heapUsed);
    out.family('nodejs_external_memory_bytes', 'Node.js external memory size in bytes.', 'gauge').add({}, mem.external);
    const total = out.family('nodejs_heap_space_size_total_bytes', 'Process heap space size total from Node.js in bytes.', 'gauge');
    const used = out.family('nodejs_heap_space_size_used_bytes', 'Process heap space size used from Node.js in bytes.', 'gauge');
    const avail = out.family('nodejs_heap_space_size_available_bytes', 'Process heap space size available from Node.js in bytes.', 'gauge');
    for (const s of v8.getHeapSpaceStatistics()) {
      const space = s.space_name.slice(0, s.space_name.indexOf('_space'));
      total.add({ space }, s.space_size);
      used.add({ space }, s.space_used_size);
      avail.add({ space }, s.space_available_size);
    }
  }
}

/** Time from now to the next check phase of the event loop, in seconds. */
function measureLoopLagSec(): Promise<number> {
  const t0 = process.hrtime.bigint();
  return new Promise((resolve) => setImmediate(() => resolve(Number(process.hrtime.bigint() - t0) / 1e9)));
}

/** Selected `Name: N kB` fields of /proc/self/status ({} off Linux or when unreadable). */
function readProcStatusKb(fields: readonly string[]): Record<string, number> {
  const out: Record<string, number> = {};
  let text: string;
  try {
    text = fs.readFileSync('/proc/self/status', 'utf8');
  } catch {
    return out;
  }
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    const key = line.slice(0, colon);
    if (colon > 0 && fields.includes(key)) out[key] = Number.parseInt(line.slice(colon + 1), 10);
  }
  return out;
}

function openFds(): number | null {
  try {
    return fs.readdirSync('/proc/self/fd').length - 1; // minus the directory's own descriptor
  } catch {
    return null;
  }
}

/** The soft limit on open files from /proc/self/limits, or null (not Linux, or unlimited). */
function maxFds(): number | null {
  try {
    for (const line of fs.readFileSync('/proc/self/limits', 'utf8').split('\n')) {
      if (line.startsWith('Max open files')) {
        const n = Number(line.split(/ {2,}/)[1]);
        return Number.isFinite(n) ? n : null;
      }
    }
  } catch {
    // not Linux
  }
  return null;
}

function constructorNames(list: readonly unknown[]): string[] {
  const out: string[] = [];
  for (const o of list) {
    const name = (o as { constructor?: { name?: unknown } } | null)?.constructor?.name;
    if (typeof name === 'string') out.push(name);
  }
  return out;
}
