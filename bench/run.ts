/**
 * `npm run bench`: node-local-dns against dnsdist, unbound and dnsmasq as caching forwarders in
 * front of one NSD upstream, everything on 127.0.0.x loopback, load from dnsperf.
 * See bench/lib/options.ts (or --help) for the flags and bench/RESULTS.md for the last full run.
 *
 * Exit status: 0 all cells measured; 2 finished but some cells are error rows; 1 fatal
 * (missing tool, upstream down, bad flags); 130/143 interrupted.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Bench, MIXED_QPS, MIXED_WARM_SEC } from './lib/harness.ts';
import type { CellRun, Rss10kResult, StartupResult, WorkloadDef } from './lib/harness.ts';
import { USAGE, UsageError, parseOptions } from './lib/options.ts';
import type { BenchOptions } from './lib/options.ts';
import { ProcessRegistry, which } from './lib/proc.ts';
import { ratios, renderMarkdown, renderText, summarize } from './lib/report.ts';
import type { CellSummary, RatioRow } from './lib/report.ts';
import { CACHE_ENTRIES, SERVERS, UPSTREAM_ADDR, dnsperfVersion, knotVersion, nsdVersion } from './lib/servers.ts';
import type { ServerName } from './lib/servers.ts';
import { median } from './lib/stats.ts';
import { footprintText } from './lib/footprint.ts';
import type { FootprintResult } from './lib/footprint.ts';

const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

class FatalError extends Error {
  readonly code = 'BENCH_FATAL';
}

function machine(): Record<string, string | number> {
  const cpuinfo = fs.readFileSync('/proc/cpuinfo', 'utf8');
  const model = /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? 'unknown';
  const mhz = /^cpu MHz\s*:\s*(.*)$/m.exec(cpuinfo)?.[1];
  const virt = /^flags\s*:.*\bhypervisor\b/m.test(cpuinfo);
  let osName = 'unknown';
  try {
    osName = /^PRETTY_NAME="?([^"\n]*)"?$/m.exec(fs.readFileSync('/etc/os-release', 'utf8'))?.[1] ?? osName;
  } catch {
    // unknown
  }
  return {
    'CPU model': `${model}${mhz === undefined ? '' : ` @ ${Math.round(Number(mhz))} MHz`}${virt ? ' (virtual machine)' : ''}`,
    'CPU cores (online)': os.cpus().length,
    memory: `${(os.totalmem() / 2 ** 30).toFixed(1)} GiB`,
    kernel: `${os.type()} ${os.release()} ${os.arch()}`,
    OS: osName,
  };
}

function versions(opts: BenchOptions): Record<string, string> {
  const v: Record<string, string> = {
    'node-local-dns': SERVERS['node-local-dns'].version(projectRoot),
    'Node.js (harness)': process.version,
  };
  for (const s of ['dnsdist', 'unbound', 'dnsmasq'] as const) v[s] = which(SERVERS[s].binary) === null ? 'not installed' : SERVERS[s].version(projectRoot);
  v.upstream = opts.upstream === 'knot' ? `Knot DNS ${knotVersion()}` : `NSD ${nsdVersion()}`;
  v.dnsperf = dnsperfVersion();
  return v;
}

function method(opts: BenchOptions): string[] {
  return [
    `Every server listens on its own 127.0.0.x address and forwards everything to one authoritative ${opts.upstream === 'knot' ? 'Knot DNS (1 UDP + 1 TCP worker, no RRL module)' : 'NSD (rrl-ratelimit 0)'} on ${UPSTREAM_ADDR} serving cluster.local (100 services: A, AAAA, SRV), 96.10.in-addr.arpa (PTR) and a wildcard *.wild.test A.`,
    `Cache: ${CACHE_ENTRIES} entries everywhere (node-local-dns \`cache { success ${CACHE_ENTRIES}; denial ${CACHE_ENTRIES} }\`, dnsdist packet cache, dnsmasq cache-size); unbound caches are byte-sized (msg 8 MB, rrset 16 MB), enough for ${CACHE_ENTRIES} answers. Other settings stay at each server's defaults; dnsmasq gets dns-forward-max=1000.`,
    `CPU pinning with taskset: server under test on CPU ${opts.serverCpu}; dnsperf, the upstream and the harness itself on CPU ${opts.clientCpu}. On a 2-core machine, dnsperf shares its core with the upstream in the miss workloads, and max-rate hit runs saturate both cores: a server whose CPU stays well below 100% was not the bottleneck (compare CPU µs/query).`,
    `Each (server, workload, repetition) starts a fresh server instance; repetitions rotate the server order (round 1: A,B,C,D; round 2: B,C,D,A; ...). ${opts.reps} repetition(s) of ${opts.durationSec} s; medians reported.`,
    'hit: the positive cluster names are warmed by one dnsperf pass, then queried at max rate (dnsperf -c 4 -q 200). miss: unique names under wild.test, each asked once (-n 1, -c 4 -q 100), upstream over TCP (node-local-dns force_tcp, dnsdist tcpOnly, unbound forward-tcp-upstream; dnsmasq cannot) or UDP.',
    `mixed: fixed rate ${MIXED_QPS} QPS (-Q) for the run length (-n 1 over a file of rate × duration queries), after warming the cluster names and NXDOMAIN names and then ${MIXED_WARM_SEC} s of the same mix at the same rate with other unique miss names (steady state: a new process's first second of JIT compilation, first upstream sockets and table growth is not what a running node cache shows); p50/p99 from every query's latency (dnsperf -v; dnsperf 2.10 has no histogram option). hit-rate: the same fixed rate, warm-up and latency measurement over the mixed workload's cached names only (no misses), which separates the hit path's tail from what the misses add. Other workloads report dnsperf's average latency only.`,
    'Server CPU = utime+stime (+ reaped children) of the server process tree over the dnsperf run, from /proc/<pid>/stat. Peak RSS = sum of VmHWM over the process tree at the end of the run (includes warm-up).',
    'other CPU % = CPU time used during the run by processes outside the benchmark (plus hypervisor steal), in % of one core, from /proc/stat minus the harness tree; above ~10% a figure is disturbed by other load on the machine.',
    'lost = queries without an answer within 2 s (dnsperf -t 2). In the time-limited max-rate runs dnsperf also counts the queries still in flight when the time limit ends the run (at most -q: 200 for hit, 100 for miss), so only larger numbers mean real loss; the fixed-rate runs (hit-rate, mixed) end with their query file and wait for every answer, so its count is exact. bad rcode % = answers with an rcode the workload does not expect (cells above 1% are errors).',
    'Start-up: spawn → first correct A answer (a forwarded miss), probed every 2 ms. RSS with 10k entries: VmRSS after 10,000 unique names went through a fresh instance, minus VmRSS when idle.',
    "Footprint (bench/lib/footprint.ts): node-local-dns with the shape of node-cache's stock Corefile (4 blocks; errors, cache, reload, loop, bind, forward, prometheus, health), per sample a fresh instance: start-up, VmRSS 0.3 s after serving, 0.3 s after one /metrics scrape, 0.3 s after 10,000 unique names. node-cache is not installed here: its rows are issue 16's figures, labelled as such.",
  ];
}

function headline(summary: CellSummary[], rr: RatioRow[]): string {
  const nld = summary.find((s) => s.server === 'node-local-dns' && s.workload === 'hit');
  const dd = summary.find((s) => s.server === 'dnsdist' && s.workload === 'hit');
  if (nld === undefined || dd === undefined) return 'node-local-dns / dnsdist, cache hits: not measured in this run.';
  if (nld.status !== 'ok' || dd.status !== 'ok') {
    const bad = nld.status !== 'ok' ? nld : dd;
    return `node-local-dns / dnsdist, cache hits: unavailable: ${bad.server} ${bad.status}: ${(bad.error ?? bad.note ?? '').split('\n')[0]}`;
  }
  const r = rr.find((q) => q.workload === 'hit' && q.a === 'node-local-dns' && q.b === 'dnsdist')!;
  const n = (v: number | undefined): string => (v === undefined ? '—' : Math.round(v).toLocaleString('en-US'));
  return (
    `node-local-dns / dnsdist, cache hits: QPS ×${r.qps.toFixed(2)} (${n(nld.qps)} vs ${n(dd.qps)}), ` +
    `CPU per query ×${r.cpuUsPerQuery.toFixed(2)}, peak RSS ×${r.peakRssKb.toFixed(2)}.`
  );
}

function rotate<T>(xs: readonly T[], by: number): T[] {
  const k = xs.length === 0 ? 0 : by % xs.length;
  return [...xs.slice(k), ...xs.slice(0, k)];
}

function checkPrerequisites(opts: BenchOptions): void {
  for (const tool of ['dnsperf', 'taskset', opts.upstream === 'knot' ? 'knotd' : 'nsd']) {
    if (which(tool) === null)
      throw new FatalError(`${tool} is not installed (apt-get install ${tool === 'taskset' ? 'util-linux' : tool === 'knotd' ? 'knot' : tool})`);
  }
  const online = os.cpus().length;
  for (const list of [opts.serverCpu, opts.clientCpu]) {
    const top = Math.max(...list.split(/[,-]/).map(Number));
    if (top >= online) throw new FatalError(`CPU ${top} does not exist (${online} online); use --server-cpu/--client-cpu`);
  }
}

async function main(): Promise<number> {
  let opts: BenchOptions | null;
  try {
    opts = parseOptions(process.argv.slice(2), projectRoot);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`${err.message}\n\n${USAGE}`);
      return 1;
    }
    throw err;
  }
  if (opts === null) {
    process.stdout.write(USAGE);
    return 0;
  }
  checkPrerequisites(opts);
  // The harness (probes, -v parsing) must not steal cycles from the server under test.
  execFileSync('taskset', ['-a', '-p', '-c', opts.clientCpu, String(process.pid)], { stdio: 'ignore' });

  const reg = new ProcessRegistry();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nld-bench-'));
  let cleaned = false;
  const cleanupSync = (): void => {
    reg.killAllSync();
    if (!cleaned && !opts.keep) fs.rmSync(tmp, { recursive: true, force: true });
    cleaned = true;
  };
  const cleanup = async (): Promise<void> => {
    await reg.stopAll();
    cleanupSync();
  };
  process.on('exit', cleanupSync);
  let interrupted = false;
  for (const [sig, code] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
    ['SIGHUP', 129],
  ] as const) {
    process.on(sig, () => {
      if (interrupted) return;
      interrupted = true;
      process.stderr.write(`\n${sig}: stopping servers and removing ${opts.keep ? 'nothing (--keep)' : tmp}\n`);
      cleanup().finally(() => process.exit(code));
    });
  }

  const startedAt = new Date();
  const loadAvg = (): string => fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  const loadAtStart = loadAvg();
  const log = (s: string): void => {
    if (!interrupted) process.stdout.write(`${s}\n`);
  };
  try {
    log(
      `node-local-dns bench: servers ${opts.servers.join(', ')}; workloads ${opts.workloads.join(', ')}; ${opts.reps} rep(s) × ${opts.durationSec} s; temp ${tmp}`,
    );
    const bench = new Bench(opts, reg, tmp, projectRoot);
    const ver = versions(opts);
    await bench.setUp();
    log(`upstream ${ver.upstream} on ${bench.upstream.addr}:${bench.upstream.port}`);

    const servers = bench.servers();
    const missing = new Set(servers.filter((s) => which(s.binary) === null).map((s) => s.name));
    const runs: CellRun[] = [];
    for (let rep = 0; rep < opts.reps; rep++) {
      for (const wl of bench.workloads) {
        const order = rotate(servers, rep);
        for (let i = 0; i < order.length; i++) {
          const def = order[i]!;
          if (def.unsupported(wl.mode, wl.id) !== null) continue;
          let row: CellRun;
          if (missing.has(def.name)) row = { server: def.name, workload: wl.id, rep, order: i, status: 'error', error: `${def.binary} is not installed` };
          else row = await bench.runCell(def, wl, rep, i);
          runs.push(row);
          const f = (v: number | undefined, d = 0): string => (v === undefined || !Number.isFinite(v) ? '—' : v.toFixed(d));
          log(
            row.status === 'ok'
              ? `[rep ${rep + 1}/${opts.reps}] ${wl.id.padEnd(8)} ${def.name.padEnd(14)} ${f(row.qps).padStart(7)} QPS  cpu ${f(row.cpuPct)}%  other ${f(row.otherCpuPct)}%  lost ${row.lost}` +
                  (row.p99Ms !== undefined ? `  p50 ${f(row.p50Ms, 3)} ms p99 ${f(row.p99Ms, 3)} ms` : `  avg ${f(row.avgLatencyMs, 3)} ms`)
              : `[rep ${rep + 1}/${opts.reps}] ${wl.id.padEnd(8)} ${def.name.padEnd(14)} ERROR ${(row.error ?? '').split('\n')[0]}`,
          );
        }
      }
    }

    const startup: StartupResult[] = [];
    const rss10k: Rss10kResult[] = [];
    let footprint: FootprintResult | undefined;
    if (!opts.skipExtras) {
      for (const def of servers) {
        if (def.reference !== undefined) continue;
        if (missing.has(def.name)) {
          startup.push({ server: def.name, samplesMs: [], error: `${def.binary} is not installed` });
          rss10k.push({ server: def.name, entries: 0, error: `${def.binary} is not installed` });
          continue;
        }
        const st = await bench.measureStartup(def);
        if (st.samplesMs.length > 0) st.medianMs = median(st.samplesMs);
        startup.push(st);
        const rs = await bench.measureRss10k(def);
        rss10k.push(rs);
        log(
          `[extras] ${def.name.padEnd(14)} start-up ${st.medianMs?.toFixed(1) ?? '—'} ms` +
            `  RSS idle ${rs.idleRssKb ?? '—'} kB, with ${rs.entries} entries ${rs.rssKb ?? '—'} kB` +
            ((st.error ?? rs.error) ? `  ERROR ${(st.error ?? rs.error ?? '').split('\n')[0]}` : ''),
        );
        if (def.name === 'node-local-dns') {
          footprint = await bench.measureFootprint(opts.quick ? 1 : 3);
          log(`[extras] footprint (stock-shaped Corefile)\n${footprintText(footprint)}`);
        }
      }
    }

    const names: ServerName[] = servers.map((s) => s.name);
    const unsupported = (s: ServerName, w: WorkloadDef): string | null => SERVERS[s].unsupported(w.mode, w.id);
    const summary = summarize(runs, names, bench.workloads, unsupported);
    const rr = ratios(summary, names, bench.workloads);
    const head = headline(summary, rr);
    const report = { summary, ratios: rr, workloads: bench.workloads, servers: names, startup, rss10k, footprint, headline: head };
    log(renderText(report));

    fs.mkdirSync(opts.outDir, { recursive: true });
    const stamp = startedAt.toISOString().replace(/[:.]/g, '-');
    const jsonPath = path.join(opts.outDir, `${stamp}.json`);
    const mach = { ...machine(), 'load average (1/5/15 min) at start': loadAtStart, 'load average at end': loadAvg() };
    const meth = method(opts);
    const command = `node bench/run.ts ${process.argv.slice(2).join(' ')}`.trim();
    const json = {
      schema: 'node-local-dns-bench/1',
      startedAt: startedAt.toISOString(),
      finishedAt: new Date().toISOString(),
      command,
      options: opts,
      machine: mach,
      versions: ver,
      method: meth,
      upstream: bench.upstream,
      servers: servers.map((s) => ({ name: s.name, addr: s.addr })),
      workloads: bench.workloads.map((w) => ({ id: w.id, title: w.title, mode: w.mode, dnsperf: w.dnsperf, fileLines: w.fileLines })),
      summary,
      ratios: rr,
      headline: head,
      startup,
      rss10k,
      footprint,
      runs,
      configs: bench.configs,
    };
    fs.writeFileSync(jsonPath, JSON.stringify(json, null, 2) + '\n');
    log(`\nresults JSON: ${jsonPath}`);
    if (opts.mdPath !== null) {
      const rel = path.relative(path.dirname(opts.mdPath), jsonPath);
      fs.writeFileSync(
        opts.mdPath,
        renderMarkdown({
          ...report,
          machine: mach,
          versions: ver,
          method: meth,
          configs: bench.configs,
          jsonPath: rel,
          startedAt: startedAt.toISOString(),
          command,
        }),
      );
      log(`results Markdown: ${opts.mdPath}`);
    }
    const anyError =
      summary.some((s) => s.status === 'error') ||
      startup.some((s) => s.error !== undefined) ||
      rss10k.some((s) => s.error !== undefined) ||
      footprint?.error !== undefined;
    return anyError ? 2 : 0;
  } finally {
    if (!interrupted) await cleanup();
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  },
);
