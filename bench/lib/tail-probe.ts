/**
 * Preload for node-local-dns under the bench (`--node-flags "--import=<this file>"`): appends to
 * $TAIL_PROBE_OUT (default /tmp/tail-probe-<pid>.jsonl), once a second, one JSON line per GC
 * pause on the main thread (perf_hooks 'gc' entries: wall-clock start in epoch ms, duration,
 * kind) and one line with the event loop's delay over that second (monitorEventLoopDelay at
 * 10 ms resolution: max and p99 lateness of a 10 ms timer). Lines up with a cell's
 * windowEpochMs in the results JSON. Measurement only; never part of the shipped agent.
 *
 * TAIL_PROBE_CALLBACKS=1 adds, for every top-level callback of the main thread (async_hooks
 * before/after) that lasts longer than TAIL_PROBE_LONG_MS (default 1), one line splitting its
 * wall time by /proc/thread-self/schedstat (nanosecond counters, unlike getrusage's ticks):
 * `cpuMs` on the CPU, `runqMs` runnable but waiting for the CPU (preempted), `blockedMs` the
 * rest (asleep: a futex, a page fault's I/O); plus the callback's resource type. It reads the
 * file twice per callback (two preads), which costs CPU of its own: use it to attribute a tail,
 * not to measure one. `node bench/lib/tail-probe.ts FILE` summarises a probe file.
 */
import { appendFileSync, closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { createHook } from 'node:async_hooks';
import { PerformanceObserver, constants, monitorEventLoopDelay, performance } from 'node:perf_hooks';

const outPath = process.env.TAIL_PROBE_OUT ?? `/tmp/tail-probe-${process.pid}.jsonl`;
const kinds: Record<number, string> = {
  [constants.NODE_PERFORMANCE_GC_MINOR]: 'minor',
  [constants.NODE_PERFORMANCE_GC_MAJOR]: 'major',
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental',
  [constants.NODE_PERFORMANCE_GC_WEAKCB]: 'weakcb',
};
let lines: string[] = [];
const gcObserver = new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    const kind = (e as unknown as { detail?: { kind?: number } }).detail?.kind ?? -1;
    lines.push(
      JSON.stringify({ gc: kinds[kind] ?? String(kind), atMs: Math.round(performance.timeOrigin + e.startTime), ms: Math.round(e.duration * 1000) / 1000 }),
    );
  }
});
if (!import.meta.main) gcObserver.observe({ entryTypes: ['gc'] });
const eld = monitorEventLoopDelay({ resolution: 10 });
if (!import.meta.main) eld.enable();
const timer = setInterval(() => {
  lines.push(JSON.stringify({ eld: true, atMs: Date.now(), maxMs: eld.max / 1e6, p99Ms: eld.percentile(99) / 1e6 }));
  eld.reset();
  try {
    appendFileSync(outPath, `${lines.join('\n')}\n`);
  } catch {
    // measurement only
  }
  lines = [];
}, 1000);
timer.unref();
if (import.meta.main) clearInterval(timer);

/** Reads this thread's [on-CPU ns, run-queue wait ns] from schedstat into `out`. */
class SchedStat {
  private readonly fd = openSync('/proc/thread-self/schedstat', 'r');
  private readonly buf = Buffer.alloc(96);
  read(out: Float64Array): void {
    const n = readSync(this.fd, this.buf, 0, this.buf.length, 0);
    let field = 0;
    let value = 0;
    for (let i = 0; i < n && field < 2; i++) {
      const c = this.buf[i]!;
      if (c >= 48 && c <= 57) value = value * 10 + (c - 48);
      else {
        out[field++] = value;
        value = 0;
      }
    }
  }
  close(): void {
    closeSync(this.fd);
  }
}

/** The callback attribution described in the header (main thread only). */
class CallbackProbe {
  private readonly longMs = Number(process.env.TAIL_PROBE_LONG_MS ?? 1);
  private readonly stat = new SchedStat();
  private readonly types = new Map<number, string>();
  private readonly start = new Float64Array(2);
  private readonly end = new Float64Array(2);
  private depth = 0;
  private startMs = 0;
  private startType = '';

  enable(): void {
    createHook({
      init: (id, type) => {
        this.types.set(id, type);
      },
      before: (id) => {
        if (this.depth++ !== 0) return;
        this.startType = this.types.get(id) ?? '?';
        this.stat.read(this.start);
        this.startMs = performance.now();
      },
      after: () => {
        if (--this.depth !== 0) return;
        const wallMs = performance.now() - this.startMs;
        if (wallMs < this.longMs) return;
        this.stat.read(this.end);
        const cpuMs = (this.end[0]! - this.start[0]!) / 1e6;
        const runqMs = (this.end[1]! - this.start[1]!) / 1e6;
        const r = (x: number) => Math.round(x * 1000) / 1000;
        lines.push(
          JSON.stringify({
            cb: this.startType,
            atMs: Math.round(performance.timeOrigin + this.startMs),
            ms: r(wallMs),
            cpuMs: r(cpuMs),
            runqMs: r(runqMs),
            blockedMs: r(Math.max(0, wallMs - cpuMs - runqMs)),
          }),
        );
      },
      destroy: (id) => {
        this.types.delete(id);
      },
    }).enable();
  }
}

/** `node bench/lib/tail-probe.ts FILE [fromEpochMs toEpochMs]`: totals of a probe file. */
function summarise(path: string, fromMs: number, toMs: number): void {
  const sum = { gcCount: 0, gcMs: 0, gcMaxMs: 0, longCallbacks: 0, wallMs: 0, cpuMs: 0, runqMs: 0, blockedMs: 0 };
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (line === '') continue;
    const e = JSON.parse(line) as Record<string, number>;
    if (e.atMs! < fromMs || e.atMs! > toMs) continue;
    if ('gc' in e) {
      sum.gcCount++;
      sum.gcMs += e.ms!;
      sum.gcMaxMs = Math.max(sum.gcMaxMs, e.ms!);
    } else if ('cb' in e) {
      sum.longCallbacks++;
      sum.wallMs += e.ms!;
      sum.cpuMs += e.cpuMs!;
      sum.runqMs += e.runqMs!;
      sum.blockedMs += e.blockedMs!;
    }
  }
  console.log(JSON.stringify(sum, (_k, v: unknown) => (typeof v === 'number' ? Math.round(v * 1000) / 1000 : v)));
}

if (import.meta.main) {
  summarise(process.argv[2]!, Number(process.argv[3] ?? 0), Number(process.argv[4] ?? Number.POSITIVE_INFINITY));
} else if (process.env.TAIL_PROBE_CALLBACKS === '1') {
  new CallbackProbe().enable();
}
