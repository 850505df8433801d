/**
 * Runs dnsperf (2.x) and parses its report. dnsperf 2.10 has no latency-histogram option, so
 * percentiles come from `-v`, which prints one line per query:
 *   `> NOERROR svc-1.default.svc.cluster.local A 0.000123`   (latency in seconds)
 *   `> T svc-2.default.svc.cluster.local A`                   (lost: no answer in time)
 * -v costs dnsperf a lot of CPU, so only the fixed-rate workload uses it.
 */
import type { ProcessRegistry } from './proc.ts';
import { SampleBuffer, percentileSorted } from './stats.ts';
import { assertLoopback } from './net.ts';

export class DnsperfError extends Error {
  readonly code = 'BENCH_DNSPERF_FAILED';
}

export interface DnsperfStats {
  sent: number;
  completed: number;
  lost: number;
  /** Response code → count. */
  rcodes: Record<string, number>;
  runTimeSec: number;
  qps: number;
  avgLatencyMs: number;
  minLatencyMs: number;
  maxLatencyMs: number;
}

export interface LatencySummary {
  samples: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
}

export interface DnsperfResult extends DnsperfStats {
  latency: LatencySummary | null;
  /**
   * With -v: latency by query class (miss = a name under wild.test, the workloads' unique
   * misses; nxdomain; hit = the rest) and the number of stalls (runs of consecutive answers,
   * in completion order, slower than 1 ms).
   */
  latencyByClass?: Record<string, LatencySummary | null>;
  slowRuns?: number;
  /** The command line, for the record. */
  argv: string[];
}

function num(text: string, re: RegExp): number {
  const m = re.exec(text);
  return m === null ? NaN : Number(m[1]);
}

/** Parses dnsperf's closing "Statistics:" block. Throws if the block is missing. */
export function parseDnsperfStats(text: string): DnsperfStats {
  const at = text.lastIndexOf('Statistics:');
  if (at < 0) throw new DnsperfError(`dnsperf printed no statistics:\n${text.slice(-2000)}`);
  const s = text.slice(at);
  const rcodes: Record<string, number> = {};
  const rc = /Response codes:\s*([^\n]*)/.exec(s);
  if (rc !== null) {
    for (const m of rc[1]!.matchAll(/([A-Z][A-Z0-9]*) (\d+) \(/g)) rcodes[m[1]!] = Number(m[2]);
  }
  const lat = /Average Latency \(s\):\s*([\d.]+) \(min ([\d.]+), max ([\d.]+)\)/.exec(s);
  return {
    sent: num(s, /Queries sent:\s*(\d+)/),
    completed: num(s, /Queries completed:\s*(\d+)/),
    lost: num(s, /Queries lost:\s*(\d+)/),
    rcodes,
    runTimeSec: num(s, /Run time \(s\):\s*([\d.]+)/),
    qps: num(s, /Queries per second:\s*([\d.]+)/),
    avgLatencyMs: lat === null ? NaN : Number(lat[1]) * 1000,
    minLatencyMs: lat === null ? NaN : Number(lat[2]) * 1000,
    maxLatencyMs: lat === null ? NaN : Number(lat[3]) * 1000,
  };
}

/**
 * Latency in seconds from one `-v` line, or NaN when the line is not a completed query.
 * Lost queries print as `> T name type` (no latency).
 */
export function parseVerboseLatency(line: string): number {
  if (!line.startsWith('> ') || line.startsWith('> T ')) return NaN;
  const sp = line.lastIndexOf(' ');
  return sp < 0 ? NaN : Number(line.slice(sp + 1));
}

export function summarizeLatency(samplesSec: SampleBuffer): LatencySummary | null {
  if (samplesSec.length === 0) return null;
  const s = samplesSec.sorted();
  return {
    samples: s.length,
    p50Ms: percentileSorted(s, 50) * 1000,
    p90Ms: percentileSorted(s, 90) * 1000,
    p99Ms: percentileSorted(s, 99) * 1000,
    p999Ms: percentileSorted(s, 99.9) * 1000,
    maxMs: s[s.length - 1]! * 1000,
  };
}

export interface DnsperfRun {
  addr: string;
  port: number;
  file: string;
  /** -l: stop after this many seconds. */
  durationSec?: number;
  /** -n: stop after this many passes through the file. */
  maxRuns?: number;
  clients: number;
  outstanding: number;
  /** -Q: rate limit; absent = as fast as possible. */
  maxQps?: number;
  timeoutSec: number;
  /** Collect per-query latencies via -v. */
  perQueryLatency: boolean;
  /** -b: socket buffer size in KB. */
  bufferKb?: number;
  /** taskset CPU list for dnsperf itself. */
  cpu: string;
}

export async function runDnsperf(reg: ProcessRegistry, r: DnsperfRun): Promise<DnsperfResult> {
  assertLoopback(r.addr);
  const args = ['-s', r.addr, '-p', String(r.port), '-d', r.file, '-c', String(r.clients), '-q', String(r.outstanding)];
  args.push('-t', String(r.timeoutSec));
  if (r.durationSec !== undefined) args.push('-l', String(r.durationSec));
  if (r.maxRuns !== undefined) args.push('-n', String(r.maxRuns));
  if (r.maxQps !== undefined) args.push('-Q', String(r.maxQps));
  if (r.bufferKb !== undefined) args.push('-b', String(r.bufferKb));
  if (r.perQueryLatency) args.push('-v');
  const argv = ['taskset', '-c', r.cpu, 'dnsperf', ...args];

  const samples = new SampleBuffer();
  const byClass: Record<string, SampleBuffer> = { hit: new SampleBuffer(), nxdomain: new SampleBuffer(), miss: new SampleBuffer() };
  let slowRuns = 0;
  let inSlowRun = false;
  let partial = '';
  let report = '';
  const onStdout = (chunk: string): void => {
    const text = partial + chunk;
    const lines = text.split('\n');
    partial = lines.pop()!;
    for (const line of lines) {
      const v = parseVerboseLatency(line);
      if (Number.isFinite(v)) {
        samples.push(v);
        const cls = line.includes('.wild.test') ? 'miss' : line.startsWith('> NXDOMAIN') ? 'nxdomain' : 'hit';
        byClass[cls]!.push(v);
        if (v > 0.001 && !inSlowRun) slowRuns++;
        inSlowRun = v > 0.001;
      } else if (!line.startsWith('> ') && !line.startsWith('[Timeout]')) report += line + '\n';
    }
  };
  const p = reg.spawn('dnsperf', argv[0]!, argv.slice(1), { onStdout, tailBytes: 4096 });
  const status = await p.exited;
  report += partial;
  if (status !== 0) throw new DnsperfError(`dnsperf exited with ${status}: ${p.outputTail() || report.slice(-1000)}`);
  const stats = parseDnsperfStats(report);
  if (!r.perQueryLatency) return { ...stats, latency: null, argv };
  const latencyByClass = Object.fromEntries(Object.entries(byClass).map(([k, b]) => [k, summarizeLatency(b)]));
  return { ...stats, latency: summarizeLatency(samples), latencyByClass, slowRuns, argv };
}
