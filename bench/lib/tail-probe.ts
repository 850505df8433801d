/**
 * Preload for node-local-dns under the bench (`--node-flags "--import=<this file>"`): appends to
 * $TAIL_PROBE_OUT (default /tmp/tail-probe-<pid>.jsonl), once a second, one JSON line per GC
 * pause on the main thread (perf_hooks 'gc' entries: wall-clock start in epoch ms, duration,
 * kind) and one line with the event loop's delay over that second (monitorEventLoopDelay at
 * 10 ms resolution: max and p99 lateness of a 10 ms timer). Lines up with a cell's
 * windowEpochMs in the results JSON. Measurement only; never part of the shipped agent.
 */
import { appendFileSync } from 'node:fs';
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
gcObserver.observe({ entryTypes: ['gc'] });
const eld = monitorEventLoopDelay({ resolution: 10 });
eld.enable();
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
