/**
 * The experiments: every (server, workload, repetition) cell starts a fresh server instance
 * pinned to the server CPU, warms it when the workload needs a warm cache, runs dnsperf pinned to
 * the client CPU, and reads the server's CPU time and peak RSS from /proc. A server that cannot
 * start or answers wrongly produces an error row; the run goes on.
 */
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { runDnsperf } from './dnsperf.ts';
import type { DnsperfResult, DnsperfRun, LatencySummary } from './dnsperf.ts';
import { freePort, probe } from './net.ts';
import type { ProbeAnswer } from './net.ts';
import type { BenchOptions, WorkloadId } from './options.ts';
import { ProcessExitedError, clockTicksPerSec, readSystemCpu, readThreadCounters, threadCounterDelta, treeCpuTicks, treeMemKb } from './proc.ts';
import type { ThreadCounters } from './proc.ts';
import type { Managed, ProcessRegistry } from './proc.ts';
import { SERVERS, UPSTREAM_ADDR, prepareKnot, prepareNsd } from './servers.ts';
import type { Endpoint, ServerDef, ServerName, UpstreamMode } from './servers.ts';
import { writeCachedFile, writeMixedFile, writeNameFile, writeUniqueFile, writeZones } from './zones.ts';
import { scrapeOnce, stockShapedNodeLocalDns } from './footprint.ts';
import type { FootprintResult } from './footprint.ts';
import type { ZoneSet } from './zones.ts';

export class ServerStartError extends Error {
  readonly code = 'BENCH_SERVER_START';
}

export class WrongAnswerError extends Error {
  readonly code = 'BENCH_WRONG_ANSWER';
}

export class UpstreamDownError extends Error {
  readonly code = 'BENCH_UPSTREAM_DOWN';
}

/** Services in cluster.local; each gives 4 positive names (A, AAAA, SRV, PTR) and 1 NXDOMAIN. */
const CLUSTER_SERVICES = 100;
/** Upper bound on miss QPS used to size the unique-name file; a run that exhausts it stops early. */
const MISS_QPS_CEILING = 120_000;
/** The fixed rate of the mixed (latency) workload. */
export const MIXED_QPS = 10_000;
/** Seconds of the mixed workload's steady-state warm-up at MIXED_QPS. */
export const MIXED_WARM_SEC = 2;
const RSS_ENTRIES = 10_000;
const READY_DEADLINE_MS = 20_000;
/**
 * How long a measured server gets to exit after SIGTERM before SIGKILL. Its figures are taken by
 * then; a graceful drain (node-local-dns lingers ~2.5 s) would only lengthen the run.
 */
const STOP_GRACE_MS = 500;
/** Consecutive start failures after which a server's remaining cells are skipped. */
const MAX_START_FAILURES = 2;

export interface WorkloadDef {
  id: WorkloadId;
  title: string;
  mode: UpstreamMode;
  /** File used to fill the cache before measuring, or null. */
  warmFile: string | null;
  /**
   * Steady-state warm-up after the cache fill: `file` sent at the workload's rate until it ends
   * (fresh unique names where the workload has misses), so that what is measured is a running
   * server, not the first second of a new process (JIT compilation, first sockets, table growth).
   */
  rateWarm?: { file: string; seconds: number };
  file: string;
  fileLines: number;
  /** Response codes that count as correct answers. */
  expectedRcodes: readonly string[];
  /**
   * true: dnsperf -l stops the run (max-rate workloads). dnsperf then counts the queries still in
   * flight at the cut-off as lost, so up to `outstanding` lost queries are an artefact.
   * false: the run ends with the file (-n 1, sized rate × duration) and waits for every answer.
   */
  timeLimited: boolean;
  dnsperf: Pick<DnsperfRun, 'clients' | 'outstanding' | 'maxQps' | 'maxRuns' | 'perQueryLatency' | 'timeoutSec'>;
}

export interface CellRun {
  server: ServerName;
  workload: WorkloadId;
  rep: number;
  /** Position of this server in its round (servers rotate every repetition). */
  order: number;
  status: 'ok' | 'error';
  error?: string;
  startMs?: number;
  qps?: number;
  sent?: number;
  completed?: number;
  lost?: number;
  lostPct?: number;
  /** Answers whose rcode the workload does not expect (SERVFAIL, REFUSED, ...). */
  unexpected?: number;
  unexpectedPct?: number;
  rcodes?: Record<string, number>;
  runTimeSec?: number;
  avgLatencyMs?: number;
  maxLatencyMs?: number;
  p50Ms?: number;
  p90Ms?: number;
  p99Ms?: number;
  p999Ms?: number;
  cpuPct?: number;
  cpuUsPerQuery?: number;
  peakRssKb?: number;
  /**
   * CPU used during the run by processes that are not part of the benchmark (other jobs on the
   * machine, hypervisor steal), in % of one core. Above ~10% the figures are disturbed.
   */
  otherCpuPct?: number;
  warmLost?: number;
  /**
   * Per thread name, what the server's threads did during the run (/proc task counters): CPU,
   * time waiting runnable for the CPU (schedstat), voluntary and nonvoluntary context switches.
   */
  threads?: Record<string, ThreadCounters & { threads: number }>;
  /** Fixed-rate workloads: latency by query class and stalls (dnsperf.ts DnsperfResult). */
  latencyByClass?: Record<string, LatencySummary | null>;
  slowRuns?: number;
  /** Wall-clock (epoch ms) start and end of the measured run (to line up probe logs). */
  windowEpochMs?: [number, number];
  /** The run consumed the whole unique-name file and stopped before the time limit. */
  fileExhausted?: boolean;
}

export interface StartupResult {
  server: ServerName;
  samplesMs: number[];
  medianMs?: number;
  error?: string;
}

export interface Rss10kResult {
  server: ServerName;
  entries: number;
  idleRssKb?: number;
  rssKb?: number;
  deltaKb?: number;
  bytesPerEntry?: number;
  warmLost?: number;
  error?: string;
}

interface Instance {
  def: ServerDef;
  proc: Managed;
  listen: Endpoint;
  startMs: number;
  config: string;
}

/** The first and last lines of a process's output: the error and where it ended. */
function excerpt(text: string, head = 6, tail = 8): string {
  const lines = text.trim().split('\n');
  if (lines.length <= head + tail + 1) return lines.join('\n');
  return [...lines.slice(0, head), `[… ${lines.length - head - tail} lines …]`, ...lines.slice(-tail)].join('\n');
}

export class Bench {
  readonly opts: BenchOptions;
  readonly reg: ProcessRegistry;
  readonly tmp: string;
  readonly projectRoot: string;
  zones!: ZoneSet;
  upstream!: Endpoint;
  upstreamProc!: Managed;
  workloads: WorkloadDef[] = [];
  /** One configuration text per server and mode, for the results file. */
  readonly configs: Record<string, string> = {};
  #rss10kFile = '';
  #instanceSeq = 0;
  #startFailures = new Map<ServerName, { count: number; last: string }>();

  constructor(opts: BenchOptions, reg: ProcessRegistry, tmp: string, projectRoot: string) {
    this.opts = opts;
    this.reg = reg;
    this.tmp = tmp;
    this.projectRoot = projectRoot;
  }

  /** Writes zones and query files and starts the authoritative upstream. */
  async setUp(): Promise<void> {
    const up = path.join(this.tmp, 'upstream');
    fs.mkdirSync(up);
    this.upstream = { addr: UPSTREAM_ADDR, port: await freePort(UPSTREAM_ADDR) };
    this.zones = writeZones(up, CLUSTER_SERVICES, UPSTREAM_ADDR);
    const name = this.opts.upstream;
    const cmd = name === 'knot' ? prepareKnot(up, this.upstream, this.zones) : prepareNsd(up, this.upstream, this.zones);
    this.configs[name] = cmd.config;
    this.upstreamProc = this.reg.spawn(name, 'taskset', ['-c', this.opts.clientCpu, cmd.cmd, ...cmd.args]);
    await this.#awaitServing(this.upstreamProc, this.upstream, name, 20, performance.now(), () => {
      const log = path.join(up, 'nsd.log');
      return fs.existsSync(log) ? fs.readFileSync(log, 'utf8').slice(-2000) : '';
    });
    this.#writeWorkloads();
  }

  #writeWorkloads(): void {
    const q = path.join(this.tmp, 'queries');
    fs.mkdirSync(q);
    const zs = this.zones;
    const d = this.opts.durationSec;
    const hitFile = path.join(q, 'hit.txt');
    const hitLines = writeNameFile(hitFile, zs.positive);
    const warmMixed = path.join(q, 'warm-mixed.txt');
    writeNameFile(warmMixed, [...zs.positive, ...zs.negative]);
    const missFile = path.join(q, 'miss.txt');
    const missLines = writeUniqueFile(missFile, Math.ceil(MISS_QPS_CEILING * d), 'm');
    const mixedFile = path.join(q, 'mixed.txt');
    const mixedLines = writeMixedFile(mixedFile, Math.ceil(MIXED_QPS * d), zs, 'x');
    const cachedFile = path.join(q, 'hit-rate.txt');
    const cachedLines = writeCachedFile(cachedFile, Math.ceil(MIXED_QPS * d), zs);
    const cachedWarmFile = path.join(q, 'hit-rate-warm.txt');
    writeCachedFile(cachedWarmFile, MIXED_QPS * MIXED_WARM_SEC, zs);
    const mixedWarmFile = path.join(q, 'mixed-warm.txt');
    writeMixedFile(mixedWarmFile, MIXED_QPS * MIXED_WARM_SEC, zs, 'w');
    this.#rss10kFile = path.join(q, 'rss10k.txt');
    writeUniqueFile(this.#rss10kFile, RSS_ENTRIES, 'r');

    // Tuning (2-core box, dnsperf alone on the client CPU): 4 sockets and 200 queries in flight
    // keep dnsdist's single UDP thread saturated on hits without overflowing socket buffers.
    const maxRate = { clients: 4, outstanding: 200, timeoutSec: 2, perQueryLatency: false } as const;
    const miss = { clients: 4, outstanding: 100, timeoutSec: 2, perQueryLatency: false, maxRuns: 1 } as const;
    const fixedRate = { clients: 4, outstanding: 500, timeoutSec: 2, perQueryLatency: true, maxQps: MIXED_QPS, maxRuns: 1 } as const;
    const all: WorkloadDef[] = [
      {
        id: 'hit',
        title: `cache hit, max rate (${zs.positive.length} cluster.local names: A/AAAA/SRV/PTR, warmed)`,
        mode: 'udp',
        warmFile: hitFile,
        file: hitFile,
        fileLines: hitLines,
        expectedRcodes: ['NOERROR'],
        timeLimited: true,
        dnsperf: maxRate,
      },
      {
        id: 'hit-rate',
        title: `cache hits at ${MIXED_QPS} QPS: the mixed workload's cached names (70% answers, 20% NXDOMAIN) without its misses`,
        mode: 'udp',
        warmFile: warmMixed,
        rateWarm: { file: cachedWarmFile, seconds: MIXED_WARM_SEC },
        file: cachedFile,
        fileLines: cachedLines,
        expectedRcodes: ['NOERROR', 'NXDOMAIN'],
        timeLimited: false,
        dnsperf: fixedRate,
      },
      {
        id: 'miss-tcp',
        title: 'cache miss, max rate, upstream over TCP (force_tcp): unique *.wild.test names',
        mode: 'tcp',
        warmFile: null,
        file: missFile,
        fileLines: missLines,
        expectedRcodes: ['NOERROR'],
        timeLimited: true,
        dnsperf: miss,
      },
      {
        id: 'miss-udp',
        title: 'cache miss, max rate, upstream over UDP: unique *.wild.test names',
        mode: 'udp',
        warmFile: null,
        file: missFile,
        fileLines: missLines,
        expectedRcodes: ['NOERROR'],
        timeLimited: true,
        dnsperf: miss,
      },
      {
        id: 'mixed',
        title: `mixed at ${MIXED_QPS} QPS: 70% cached answers, 20% cached NXDOMAIN, 10% unique misses (UDP upstream)`,
        mode: 'udp',
        warmFile: warmMixed,
        rateWarm: { file: mixedWarmFile, seconds: MIXED_WARM_SEC },
        file: mixedFile,
        fileLines: mixedLines,
        expectedRcodes: ['NOERROR', 'NXDOMAIN'],
        timeLimited: false,
        dnsperf: fixedRate,
      },
    ];
    this.workloads = all.filter((w) => this.opts.workloads.includes(w.id));
  }

  /** Probes until the server answers the ready name correctly, or fails fast if it exits. */
  async #awaitServing(
    proc: Managed,
    at: Endpoint,
    label: string,
    resendEveryMs: number,
    startedAtMs: number,
    extraDiagnostics: () => string = () => '',
    anyAnswer = false,
  ): Promise<ProbeAnswer> {
    const exited = proc.exited.then((s) => {
      throw new ProcessExitedError(`${label} exited (${s}) before serving`);
    });
    exited.catch(() => undefined);
    try {
      return await Promise.race([
        probe({
          addr: at.addr,
          port: at.port,
          name: this.zones.readyName,
          type: 'A',
          deadlineMs: READY_DEADLINE_MS,
          resendEveryMs,
          startedAtMs,
          accept: (a) => anyAnswer || (a.rcode === 'NOERROR' && a.answers.includes(this.zones.readyAddr)),
        }),
        exited,
      ]);
    } catch (err) {
      await this.reg.stop(proc);
      const tail = excerpt(proc.outputTail() + extraDiagnostics());
      throw new ServerStartError(`${(err as Error).message}${tail === '' ? '' : `\n--- output ---\n${tail}`}`);
    }
  }

  /** Starts a fresh instance of def; retries once (the free port may have been taken). */
  async startServer(def: ServerDef, mode: UpstreamMode, resendEveryMs = 10): Promise<Instance> {
    const failed = this.#startFailures.get(def.name);
    if (failed !== undefined && failed.count >= MAX_START_FAILURES) {
      throw new ServerStartError(`skipped: failed to start ${failed.count} times; last error: ${failed.last}`);
    }
    let lastErr: Error | undefined;
    for (let attempt = 0; attempt < 2; attempt++) {
      const dir = path.join(this.tmp, `${def.name}-${++this.#instanceSeq}`);
      fs.mkdirSync(dir);
      const port = await freePort(def.addr);
      let metricsPort = await freePort(def.addr);
      while (metricsPort === port) metricsPort = await freePort(def.addr);
      const listen = { addr: def.addr, port };
      const cmd = def.prepare({
        dir,
        listen,
        upstream: this.upstream,
        mode,
        projectRoot: this.projectRoot,
        workers: this.opts.workers,
        nodeFlags: this.opts.nodeFlags,
        metricsPort,
      });
      this.configs[`${def.name}/${mode}`] ??= cmd.config;
      const t0 = performance.now();
      const proc = this.reg.spawn(def.name, 'taskset', ['-c', this.opts.serverCpu, cmd.cmd, ...cmd.args], {
        cwd: cmd.cwd,
        env: cmd.env === undefined ? undefined : { ...process.env, ...cmd.env },
        logFile: this.opts.keep ? path.join(dir, 'output.log') : undefined,
      });
      try {
        const ans = await this.#awaitServing(proc, listen, def.name, resendEveryMs, t0, undefined, def.reference !== undefined);
        this.#startFailures.delete(def.name);
        return { def, proc, listen, startMs: ans.elapsedMs, config: cmd.config };
      } catch (err) {
        lastErr = err as Error;
      }
    }
    const prev = this.#startFailures.get(def.name);
    this.#startFailures.set(def.name, { count: (prev?.count ?? 0) + 1, last: lastErr!.message.split('\n')[0]! });
    throw lastErr!;
  }

  #assertUpstream(): void {
    if (this.upstreamProc.exitStatus() !== null) {
      throw new UpstreamDownError(`the ${this.opts.upstream} upstream exited (${this.upstreamProc.exitStatus()}): ${this.upstreamProc.outputTail()}`);
    }
  }

  #dnsperf(inst: Instance, r: Omit<DnsperfRun, 'addr' | 'port' | 'cpu'>): Promise<DnsperfResult> {
    return runDnsperf(this.reg, { ...r, addr: inst.listen.addr, port: inst.listen.port, cpu: this.opts.clientCpu });
  }

  /** Fills the cache from file: one gentle pass, a second one if any query was lost. */
  async #warm(inst: Instance, file: string, outstanding: number): Promise<number> {
    let lost = 0;
    for (let pass = 0; pass < 2; pass++) {
      const r = await this.#dnsperf(inst, { file, maxRuns: 1, clients: 1, outstanding, timeoutSec: 2, perQueryLatency: false });
      lost = r.lost;
      if (lost === 0) break;
    }
    return lost;
  }

  /**
   * Asks each spot-check question once and compares the answer data, so a server that answers
   * fast but wrongly cannot produce a figure. Throws WrongAnswerError.
   */
  async #checkAnswers(inst: Instance): Promise<void> {
    for (const c of this.zones.checks) {
      const a = await probe({
        addr: inst.listen.addr,
        port: inst.listen.port,
        name: c.name,
        type: c.type,
        deadlineMs: 3000,
        resendEveryMs: 500,
        accept: () => true,
      });
      const ok = c.expect === null ? a.rcode === 'NXDOMAIN' : a.rcode === 'NOERROR' && a.answers.includes(c.expect);
      if (!ok) {
        throw new WrongAnswerError(
          `${c.name} ${c.type}: got ${a.rcode} [${a.answers.join(', ')}], expected ${c.expect === null ? 'NXDOMAIN' : `NOERROR [${c.expect}]`}`,
        );
      }
    }
  }

  /** perf record of the server CPU's context switches, when --sched-trace asks for it. */
  async #startSchedTrace(name: string): Promise<Managed | null> {
    const dir = this.opts.schedTraceDir;
    if (dir === null) return null;
    fs.mkdirSync(dir, { recursive: true });
    const m = this.reg.spawn('perf', 'perf', ['record', '-q', '-e', 'sched:sched_switch', '-C', this.opts.serverCpu, '-o', path.join(dir, `${name}.data`)]);
    await new Promise((r) => setTimeout(r, 300));
    return m;
  }

  async runCell(def: ServerDef, wl: WorkloadDef, rep: number, order: number): Promise<CellRun> {
    this.#assertUpstream();
    const row: CellRun = { server: def.name, workload: wl.id, rep, order, status: 'ok' };
    let inst: Instance;
    try {
      inst = await this.startServer(def, wl.mode);
    } catch (err) {
      return { ...row, status: 'error', error: (err as Error).message };
    }
    try {
      row.startMs = inst.startMs;
      if (wl.warmFile !== null) row.warmLost = await this.#warm(inst, wl.warmFile, 20);
      if (wl.rateWarm !== undefined) {
        await this.#dnsperf(inst, { ...wl.dnsperf, perQueryLatency: false, file: wl.rateWarm.file, maxRuns: 1, durationSec: undefined });
      }
      if (def.reference === undefined) await this.#checkAnswers(inst);
      const pid = inst.proc.pid;
      const sys0 = readSystemCpu();
      const ours0 = treeCpuTicks(process.pid);
      const wall0 = performance.now();
      const ticks0 = treeCpuTicks(pid);
      const threads0 = readThreadCounters(pid);
      const epoch0 = Date.now();
      const trace = await this.#startSchedTrace(`${def.name}-${wl.id}-${rep}`);
      const r = await this.#dnsperf(inst, { ...wl.dnsperf, file: wl.file, durationSec: wl.timeLimited ? this.opts.durationSec : undefined }).finally(() =>
        trace === null ? undefined : this.reg.stop(trace, 5000),
      );
      const ticks1 = treeCpuTicks(pid);
      row.threads = threadCounterDelta(threads0, readThreadCounters(pid));
      row.windowEpochMs = [epoch0, Date.now()];
      // Everything not ours (harness, dnsperf once reaped, NSD, the server) is interference.
      const foreignTicks = readSystemCpu().processAndSteal - sys0.processAndSteal - (treeCpuTicks(process.pid) - ours0);
      row.otherCpuPct = Math.max(0, (100 * foreignTicks) / clockTicksPerSec() / ((performance.now() - wall0) / 1000));
      row.peakRssKb = treeMemKb(pid, 'VmHWM');
      if (inst.proc.exitStatus() !== null) {
        throw new ProcessExitedError(`${def.name} exited (${inst.proc.exitStatus()}) during the run: ${inst.proc.outputTail().slice(-1500)}`);
      }
      const cpuSec = (ticks1 - ticks0) / clockTicksPerSec();
      // A reference answers everything NOERROR: no rcode is unexpected from it.
      const expected = def.reference !== undefined ? r.completed : wl.expectedRcodes.reduce((s, c) => s + (r.rcodes[c] ?? 0), 0);
      Object.assign(row, {
        qps: r.qps,
        sent: r.sent,
        completed: r.completed,
        lost: r.lost,
        lostPct: r.sent > 0 ? (100 * r.lost) / r.sent : NaN,
        unexpected: r.completed - expected,
        unexpectedPct: r.completed > 0 ? (100 * (r.completed - expected)) / r.completed : NaN,
        rcodes: r.rcodes,
        runTimeSec: r.runTimeSec,
        avgLatencyMs: r.avgLatencyMs,
        maxLatencyMs: r.maxLatencyMs,
        cpuPct: r.runTimeSec > 0 ? (100 * cpuSec) / r.runTimeSec : NaN,
        cpuUsPerQuery: r.completed > 0 ? (1e6 * cpuSec) / r.completed : NaN,
        fileExhausted: wl.timeLimited && wl.dnsperf.maxRuns === 1 && r.sent >= wl.fileLines,
      } satisfies Partial<CellRun>);
      if (r.latency !== null) {
        Object.assign(row, { p50Ms: r.latency.p50Ms, p90Ms: r.latency.p90Ms, p99Ms: r.latency.p99Ms, p999Ms: r.latency.p999Ms });
        Object.assign(row, { latencyByClass: r.latencyByClass, slowRuns: r.slowRuns });
      }
      if (r.completed === 0) {
        row.status = 'error';
        row.error = 'no query was answered';
      } else if (row.unexpectedPct! > 1) {
        const codes = Object.entries(r.rcodes)
          .map(([c, n]) => `${c} ${n}`)
          .join(', ');
        row.status = 'error';
        row.error = `${row.unexpectedPct!.toFixed(1)}% of answers had an unexpected rcode (${codes}); expected ${wl.expectedRcodes.join('/')}`;
      }
    } catch (err) {
      if (err instanceof UpstreamDownError) throw err;
      row.status = 'error';
      row.error = (err as Error).message;
    } finally {
      await this.reg.stop(inst.proc, STOP_GRACE_MS);
    }
    return row;
  }

  /** Spawn → first correct answer (a forwarded miss: the cache is empty), several times. */
  async measureStartup(def: ServerDef): Promise<StartupResult> {
    const samplesMs: number[] = [];
    for (let i = 0; i < this.opts.startupSamples; i++) {
      this.#assertUpstream();
      let inst: Instance;
      try {
        inst = await this.startServer(def, 'udp', 2);
      } catch (err) {
        return { server: def.name, samplesMs, error: (err as Error).message };
      }
      samplesMs.push(inst.startMs);
      await this.reg.stop(inst.proc, STOP_GRACE_MS);
    }
    return { server: def.name, samplesMs };
  }

  /** RSS of the server tree idle, then after RSS_ENTRIES unique names went through the cache. */
  async measureRss10k(def: ServerDef): Promise<Rss10kResult> {
    this.#assertUpstream();
    const res: Rss10kResult = { server: def.name, entries: RSS_ENTRIES };
    let inst: Instance;
    try {
      inst = await this.startServer(def, 'udp');
    } catch (err) {
      return { ...res, error: (err as Error).message };
    }
    try {
      res.idleRssKb = treeMemKb(inst.proc.pid, 'VmRSS');
      res.warmLost = await this.#warm(inst, this.#rss10kFile, 50);
      // Let deferred work (cache inserts from callbacks, GC) settle before reading.
      await new Promise((r) => setTimeout(r, 300));
      res.rssKb = treeMemKb(inst.proc.pid, 'VmRSS');
      res.deltaKb = res.rssKb - res.idleRssKb;
      res.bytesPerEntry = (res.deltaKb * 1024) / RSS_ENTRIES;
      if (inst.proc.exitStatus() !== null) throw new ProcessExitedError(`${def.name} exited during the RSS experiment`);
    } catch (err) {
      if (err instanceof UpstreamDownError) throw err;
      res.error = (err as Error).message;
    } finally {
      await this.reg.stop(inst.proc, STOP_GRACE_MS);
    }
    return res;
  }

  /**
   * node-local-dns with the stock-shaped Corefile (footprint.ts): per sample a fresh instance,
   * its start-up, RSS idle, after one /metrics scrape and after RSS_ENTRIES unique names.
   */
  async measureFootprint(samples: number): Promise<FootprintResult> {
    const res: FootprintResult = { server: 'node-local-dns', samples: [] };
    const base = SERVERS['node-local-dns'];
    for (let i = 0; i < samples; i++) {
      this.#assertUpstream();
      const def = stockShapedNodeLocalDns(base, await freePort(base.addr));
      let inst: Instance;
      try {
        inst = await this.startServer(def, 'udp', 2);
      } catch (err) {
        return { ...res, error: (err as Error).message };
      }
      this.configs['node-local-dns/footprint'] ??= inst.config;
      try {
        const metricsPort = Number(/prometheus \S+:(\d+)/.exec(inst.config)?.[1]);
        // Settle as the 10k experiment does (start-up garbage, deferred work) before each read.
        await new Promise((r) => setTimeout(r, 300));
        const idleRssKb = treeMemKb(inst.proc.pid, 'VmRSS');
        await scrapeOnce(inst.listen.addr, metricsPort);
        await new Promise((r) => setTimeout(r, 300));
        const scrapedRssKb = treeMemKb(inst.proc.pid, 'VmRSS');
        const warmLost = await this.#warm(inst, this.#rss10kFile, 50);
        await new Promise((r) => setTimeout(r, 300));
        const rssKb = treeMemKb(inst.proc.pid, 'VmRSS');
        if (inst.proc.exitStatus() !== null) throw new ProcessExitedError('node-local-dns exited during the footprint experiment');
        res.samples.push({ startMs: inst.startMs, idleRssKb, scrapedRssKb, rssKb, warmLost });
      } catch (err) {
        if (err instanceof UpstreamDownError) throw err;
        return { ...res, error: (err as Error).message };
      } finally {
        await this.reg.stop(inst.proc, STOP_GRACE_MS);
      }
    }
    return res;
  }

  servers(): ServerDef[] {
    return this.opts.servers.map((n) => SERVERS[n]);
  }
}
