/** Command-line options of bench/run.ts. */
import { parseArgs } from 'node:util';
import { SERVER_NAMES } from './servers.ts';
import type { ServerName } from './servers.ts';

export const WORKLOAD_IDS = ['hit', 'hit-rate', 'miss-tcp', 'miss-udp', 'mixed'] as const;
export type WorkloadId = (typeof WORKLOAD_IDS)[number];

export class UsageError extends Error {
  readonly code = 'BENCH_USAGE';
}

export interface BenchOptions {
  quick: boolean;
  servers: ServerName[];
  workloads: WorkloadId[];
  durationSec: number;
  reps: number;
  /** node-local-dns -workers N; undefined: flag not passed. */
  workers: number | undefined;
  /** Extra Node.js flags for node-local-dns (profiling: --cpu-prof, --trace-gc, ...). */
  nodeFlags: string[];
  keep: boolean;
  /** Directory for the results JSON. */
  outDir: string;
  /** Markdown summary path, or null for none. */
  mdPath: string | null;
  /** taskset CPU lists. */
  serverCpu: string;
  clientCpu: string;
  /** Start-up time samples per server. */
  startupSamples: number;
  /** Skip the start-up and 10k-entry RSS experiments. */
  skipExtras: boolean;
  /** The authoritative upstream: knot (default) or nsd. */
  upstream: 'knot' | 'nsd';
  /** Directory for `perf record -e sched:sched_switch` of the server CPU during each measured run, or null. */
  schedTraceDir: string | null;
}

export const USAGE = `Usage: node bench/run.ts [options]

Benchmarks node-local-dns against dnsdist, unbound and dnsmasq as caching forwarders in front of
the same NSD upstream, all on 127.0.0.x loopback, with dnsperf.

  --quick              tiny workloads: 1 repetition, 2 s runs, 1 start-up sample (for tests)
  --only a,b           servers to measure (${SERVER_NAMES.join(', ')}); default all
  --workloads a,b      workloads to run (${WORKLOAD_IDS.join(', ')}); default all
  --duration S         seconds per dnsperf run (default 8; --quick 2)
  --reps N             repetitions of every figure, medians reported (default 3; --quick 1)
  --workers N          pass -workers N to node-local-dns
  --node-flags "F ..." extra Node.js flags for node-local-dns (e.g. "--cpu-prof --cpu-prof-dir=/tmp/p",
                       "--trace-gc"); with --keep, its output is kept in the temporary directory
  --keep               leave the temporary directory (configs, logs, query files)
  --out DIR            directory for the results JSON (default bench/out)
  --md PATH            Markdown summary path (default bench/RESULTS.md; none with --quick)
  --no-md              do not write the Markdown summary
  --server-cpu LIST    taskset CPU list for the server under test (default 1)
  --client-cpu LIST    taskset CPU list for dnsperf and the NSD upstream (default 0)
  --startup-samples N  start-up time samples per server (default 5; --quick 1)
  --no-extras          skip the start-up time and 10k-entry RSS experiments
  --sched-trace DIR    record sched:sched_switch on the server CPU during every measured run
                       (perf record -C, one DIR/<server>-<workload>-<rep>.data per cell; read
                       with perf sched / perf script); every cell also reports its server's
                       per-thread CPU, run-queue wait and context switches in the results JSON
  --upstream knot|nsd  authoritative upstream (default knot; nsd forks children that are left
                       as zombies when PID 1 does not reap)
  -h, --help           this text
`;

function positive(name: string, v: string | undefined, integer: boolean): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) {
    throw new UsageError(`--${name} needs a positive ${integer ? 'integer' : 'number'}, got ${JSON.stringify(v)}`);
  }
  return n;
}

function list<T extends string>(name: string, v: string | undefined, allowed: readonly T[]): T[] {
  if (v === undefined) return [...allowed];
  const items = v
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  const bad = items.filter((s) => !(allowed as readonly string[]).includes(s));
  if (bad.length > 0 || items.length === 0) {
    throw new UsageError(`--${name}: unknown ${bad.join(', ') || '(empty)'}; choose from ${allowed.join(', ')}`);
  }
  // Keep the canonical order so tables read the same whatever the flag order.
  return allowed.filter((a) => items.includes(a));
}

/** Parses argv (without node and script). Returns null when --help was asked for. */
export function parseOptions(argv: string[], projectRoot: string): BenchOptions | null {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        quick: { type: 'boolean' },
        only: { type: 'string' },
        workloads: { type: 'string' },
        duration: { type: 'string' },
        reps: { type: 'string' },
        workers: { type: 'string' },
        'node-flags': { type: 'string' },
        keep: { type: 'boolean' },
        out: { type: 'string' },
        md: { type: 'string' },
        'no-md': { type: 'boolean' },
        'server-cpu': { type: 'string' },
        'client-cpu': { type: 'string' },
        'startup-samples': { type: 'string' },
        'no-extras': { type: 'boolean' },
        upstream: { type: 'string' },
        'sched-trace': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const v = parsed.values;
  if (v.help === true) return null;
  const quick = v.quick === true;
  const cpuList = (name: string, s: string | undefined, dflt: string): string => {
    if (s === undefined) return dflt;
    if (!/^\d+(-\d+)?(,\d+(-\d+)?)*$/.test(s)) throw new UsageError(`--${name}: not a CPU list: ${s}`);
    return s;
  };
  let mdPath: string | null = quick ? null : `${projectRoot}/bench/RESULTS.md`;
  if (v.md !== undefined) mdPath = v.md;
  if (v['no-md'] === true) mdPath = null;
  const upstream = v.upstream ?? 'knot';
  if (upstream !== 'knot' && upstream !== 'nsd') throw new UsageError(`--upstream: knot or nsd, got ${upstream}`);
  return {
    upstream,
    schedTraceDir: v['sched-trace'] ?? null,
    quick,
    servers: list('only', v.only, SERVER_NAMES),
    workloads: list('workloads', v.workloads, WORKLOAD_IDS),
    durationSec: positive('duration', v.duration, false) ?? (quick ? 2 : 8),
    reps: positive('reps', v.reps, true) ?? (quick ? 1 : 3),
    workers: positive('workers', v.workers, true),
    nodeFlags: (v['node-flags'] ?? '').split(/\s+/).filter((f) => f !== ''),
    keep: v.keep === true,
    outDir: v.out ?? `${projectRoot}/bench/out`,
    mdPath,
    serverCpu: cpuList('server-cpu', v['server-cpu'], '1'),
    clientCpu: cpuList('client-cpu', v['client-cpu'], '0'),
    startupSamples: positive('startup-samples', v['startup-samples'], true) ?? (quick ? 1 : 5),
    skipExtras: v['no-extras'] === true,
  };
}
