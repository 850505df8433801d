/**
 * The soak run, shared by `npm run soak` (test/soak/run.ts) and its short form in `npm test`
 * (soak.test.ts): a real upstream (NSD) and the agent with node-local-dns's Corefile shape,
 * driven at a fixed rate by dnsperf with a mix of
 *   60 % cache hits   (200 names: cluster.local over TCP, soak.test over UDP),
 *   20 % misses       (unique names under a wildcard, TTL 10 s: the file cycles in 60 s),
 *   10 % NXDOMAIN     (unique names, negative TTL 5 s),
 *   10 % errors       (a zone whose upstream is dead: SERVFAIL),
 * while the agent's RSS is sampled every few seconds. Lost queries are dnsperf's (no answer
 * within 5 s); the RSS trend is the least-squares slope over the samples after the warm-up.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import net from 'node:net';
import { startAgent, scrape, metricSum, type Agent } from '../fault/lib/agent.ts';
import { startNsd, zoneText, type Nsd } from '../fault/lib/nsd.ts';
import { freeAddress, sleep } from '../fault/lib/net.ts';

export interface SoakOptions {
  durationSec: number;
  /** Queries per second dnsperf sends. */
  rate: number;
  /** RSS sampling period. */
  sampleSec: number;
  /** Samples before this fraction of the run are the warm-up (cache filling, JIT, heap sizing). */
  warmupFraction: number;
  /** Called with each sample as it is taken. */
  onSample?: (s: RssSample) => void;
  /** Extra command-line flags for the agent (e.g. `-workers 1`). */
  agentArgs?: string[];
  /** Aborts the load early (the run then ends and cleans up as usual). */
  signal?: AbortSignal;
}

export interface RssSample {
  /** Seconds since dnsperf started. */
  t: number;
  rssKiB: number;
  /** V8 heap in use and memory outside it (Buffers), from the agent's nodejs_* metrics; -1 if unavailable. */
  heapUsedKiB: number;
  externalKiB: number;
}

export interface SoakResult {
  sent: number;
  completed: number;
  lost: number;
  rcodes: Record<string, number>;
  qps: number;
  samples: RssSample[];
  /**
   * The RSS trend: how fast the high-water mark (the highest RSS seen since the start) rose
   * after the warm-up, KiB per minute. A garbage-collected process's RSS saws up and down as
   * V8 grows and shrinks its heaps; a leak shows as a high-water mark that keeps rising.
   */
  trendKiBPerMin: number;
  /** Least-squares slope of the raw RSS after the warm-up, KiB per minute (noisy; for information). */
  slopeKiBPerMin: number;
  /** Highest RSS after the warm-up minus the first sample after it, KiB. */
  growthAfterWarmupKiB: number;
  /** Highest RSS minus the RSS before the load started, KiB. */
  growthKiB: number;
  baselineKiB: number;
  cacheEntries: { success: number; denial: number };
  /**
   * Where lost queries went: per zone, the queries the agent counted and the responses it
   * sent (a difference is the agent's fault), and the machine's UDP receive-buffer drops
   * during the run (/proc/net/snmp RcvbufErrors; every process on the machine counts).
   */
  zones: Record<string, { requests: number; responses: number }>;
  udpRcvbufErrors: number;
  /** Queries that took the agent more than 4.096 s (from its duration histogram). */
  slowInAgent: number;
  /** dnsperf's `[Timeout]` lines, and responses it did not expect (unknown ID: late, or not ours). */
  dnsperfTimeouts: number;
  dnsperfUnexpected: number;
  agentAlive: boolean;
  dnsperfOutput: string;
  agentOutputTail: string;
}

/** Least-squares slope of y over x. */
export function slope(points: { x: number; y: number }[]): number {
  const n = points.length;
  if (n < 2) return 0;
  const mx = points.reduce((s, p) => s + p.x, 0) / n;
  const my = points.reduce((s, p) => s + p.y, 0) / n;
  let num = 0;
  let den = 0;
  for (const p of points) {
    num += (p.x - mx) * (p.y - my);
    den += (p.x - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

/**
 * Rise of the RSS high-water mark from the end of the warm-up to the last sample, KiB per
 * minute (0 when there is no sample after the warm-up).
 */
export function highWaterTrend(samples: RssSample[], warmupEndSec: number): number {
  const before = samples.filter((s) => s.t <= warmupEndSec);
  const last = samples[samples.length - 1];
  if (before.length === 0 || last === undefined || last.t <= warmupEndSec) return 0;
  const hwmAtWarmupEnd = Math.max(...before.map((s) => s.rssKiB));
  const hwmAtEnd = Math.max(...samples.map((s) => s.rssKiB));
  return ((hwmAtEnd - hwmAtWarmupEnd) / (last.t - warmupEndSec)) * 60;
}

/** dnsperf's summary: sent, completed, lost, response codes, qps. */
export function parseDnsperf(text: string): { sent: number; completed: number; lost: number; rcodes: Record<string, number>; qps: number } {
  const num = (re: RegExp) => {
    const m = re.exec(text);
    if (!m) throw new Error(`dnsperf output lacks ${re}: ${text.slice(-2000)}`);
    return Number(m[1]);
  };
  const rcodes: Record<string, number> = {};
  const line = /Response codes:\s*(.*)/.exec(text)?.[1] ?? '';
  for (const m of line.matchAll(/([A-Z]+) (\d+) \(/g)) rcodes[m[1]!] = Number(m[2]);
  return {
    sent: num(/Queries sent:\s+(\d+)/),
    completed: num(/Queries completed:\s+(\d+)/),
    lost: num(/Queries lost:\s+(\d+)/),
    rcodes,
    qps: num(/Queries per second:\s+([\d.]+)/),
  };
}

/** A port on host where nothing listens (TCP connects are refused at once). */
async function closedPort(host: string): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, host, () => r()));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

const HIT_NAMES = 100;

/** The machine's UDP RcvbufErrors counter (/proc/net/snmp). */
async function udpRcvbufErrors(): Promise<number> {
  const { readFile } = await import('node:fs/promises');
  const lines = (await readFile('/proc/net/snmp', 'utf8')).split('\n').filter((l) => l.startsWith('Udp:'));
  if (lines.length < 2) return 0;
  const names = lines[0]!.split(/\s+/);
  const values = lines[1]!.split(/\s+/);
  return Number(values[names.indexOf('RcvbufErrors')] ?? 0);
}

async function heapKiB(host: string, port: number): Promise<{ heapUsedKiB: number; externalKiB: number }> {
  try {
    const fams = await scrape(host, port);
    const kib = (name: string) => (fams.has(name) ? metricSum(fams, name) / 1024 : -1);
    return { heapUsedKiB: kib('nodejs_heap_size_used_bytes'), externalKiB: kib('nodejs_external_memory_bytes') };
  } catch {
    return { heapUsedKiB: -1, externalKiB: -1 };
  }
}

/** The dnsperf input: `lines` queries in the mix described above, deterministic. */
export function queryFile(lines: number): string {
  const out: string[] = [];
  let miss = 0;
  let nx = 0;
  let dead = 0;
  for (let i = 0; i < lines; i++) {
    const k = i % 10;
    if (k < 3) out.push(`svc${(i * 7) % HIT_NAMES}.default.svc.cluster.local A`);
    else if (k < 6) out.push(`h${(i * 13) % HIT_NAMES}.soak.test A`);
    else if (k < 8) out.push(`m${miss++}.wild.soak.test A`);
    else if (k === 8) out.push(`nx${nx++}.soak.test A`);
    else out.push(`q${dead++}.dead.test A`);
  }
  return out.join('\n') + '\n';
}

export async function runSoak(opts: SoakOptions): Promise<SoakResult> {
  const dir = mkdtempSync(path.join(tmpdir(), 'nld-soak-'));
  let nsd: Nsd | null = null;
  let agent: Agent | null = null;
  try {
    const hits = Array.from({ length: HIT_NAMES }, (_, j) => `h${j} IN A 192.0.2.${(j % 250) + 1}`);
    const svcs = Array.from({ length: HIT_NAMES }, (_, j) => `svc${j}.default.svc IN A 10.96.${j >> 8}.${j & 0xff}`);
    nsd = await startNsd({
      'soak.test.': zoneText('soak.test', [...hits, '*.wild 10 IN A 192.0.2.200'], 5),
      'cluster.local.': zoneText('cluster.local', svcs, 5),
    });
    const dns = await freeAddress();
    const metrics = await freeAddress(dns.host);
    const dead = await closedPort(dns.host);
    // node-local-dns's Corefile shape: cluster zone over TCP with its cache sizes, . over UDP.
    agent = await startAgent(
      `cluster.local:${dns.port} {
    errors
    cache {
        success 9984 30
        denial 9984 5
    }
    bind ${dns.host}
    forward . ${nsd.addr} {
        force_tcp
    }
    prometheus ${metrics.host}:${metrics.port}
}
dead.test:${dns.port} {
    errors
    cache 30
    bind ${dns.host}
    forward . ${dns.host}:${dead} {
        force_tcp
    }
    prometheus ${metrics.host}:${metrics.port}
}
.:${dns.port} {
    errors
    cache 30
    bind ${dns.host}
    forward . ${nsd.addr}
    prometheus ${metrics.host}:${metrics.port}
}
`,
      { extraArgs: opts.agentArgs },
    );
    const file = path.join(dir, 'queries.txt');
    writeFileSync(file, queryFile(Math.max(1000, opts.rate * 60)));
    await sleep(500);
    const baselineKiB = await agent.rssKiB();
    const rcvbufErrorsBefore = await udpRcvbufErrors();

    const perf = spawn(
      'dnsperf',
      ['-s', dns.host, '-p', String(dns.port), '-d', file, '-l', String(opts.durationSec), '-Q', String(opts.rate), '-c', '4', '-q', '500', '-t', '5'],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let perfOut = '';
    perf.stdout.on('data', (d) => (perfOut += d));
    perf.stderr.on('data', (d) => (perfOut += d));
    const done = new Promise<number>((r) => perf.once('exit', (code) => r(code ?? -1)));
    const abort = () => perf.kill('SIGINT');
    opts.signal?.addEventListener('abort', abort, { once: true });
    const t0 = performance.now();
    const samples: RssSample[] = [];
    let finished = false;
    void done.then(() => (finished = true));
    while (!finished) {
      const wait = opts.sampleSec * 1000 * (samples.length + 1) - (performance.now() - t0);
      await Promise.race([sleep(Math.max(0, wait)), done]);
      if (finished) break;
      const s = { t: (performance.now() - t0) / 1000, rssKiB: await agent.rssKiB(), ...(await heapKiB(metrics.host, metrics.port)) };
      samples.push(s);
      opts.onSample?.(s);
    }
    const code = await done;
    opts.signal?.removeEventListener('abort', abort);
    if (opts.signal?.aborted) throw new Error('soak aborted');
    if (code !== 0) throw new Error(`dnsperf exited ${code}: ${perfOut.slice(-2000)}`);
    const perfResult = parseDnsperf(perfOut);

    const warmupEndSec = opts.durationSec * opts.warmupFraction;
    const after = samples.filter((s) => s.t >= warmupEndSec);
    const slopeKiBPerSec = slope(after.map((s) => ({ x: s.t, y: s.rssKiB })));
    const trendKiBPerMin = highWaterTrend(samples, warmupEndSec);
    const rcvbufErrors = (await udpRcvbufErrors()) - rcvbufErrorsBefore;
    // Queries still in flight in the agent end within forward's deadline.
    await sleep(opts.signal?.aborted ? 0 : 6_000);
    const fams = await scrape(metrics.host, metrics.port);
    const zones: SoakResult['zones'] = {};
    for (const zone of ['cluster.local.', 'dead.test.', '.']) {
      zones[zone] = {
        requests: metricSum(fams, 'coredns_dns_requests_total', { zone }),
        responses: metricSum(fams, 'coredns_dns_responses_total', { zone }),
      };
    }
    const durCount = metricSum(fams, 'coredns_dns_request_duration_seconds_count');
    const durFast = metricSum(fams, 'coredns_dns_request_duration_seconds_bucket', { le: '4.096' });
    return {
      zones,
      udpRcvbufErrors: rcvbufErrors,
      slowInAgent: durCount - durFast,
      dnsperfTimeouts: (perfOut.match(/\[Timeout\]/g) ?? []).length,
      dnsperfUnexpected: (perfOut.match(/unexpected/gi) ?? []).length,
      ...perfResult,
      samples,
      trendKiBPerMin,
      slopeKiBPerMin: slopeKiBPerSec * 60,
      growthAfterWarmupKiB: after.length ? Math.max(...after.map((s) => s.rssKiB)) - after[0]!.rssKiB : 0,
      growthKiB: samples.length ? Math.max(...samples.map((s) => s.rssKiB)) - baselineKiB : 0,
      baselineKiB,
      cacheEntries: {
        success: metricSum(fams, 'coredns_cache_entries', { type: 'success' }),
        denial: metricSum(fams, 'coredns_cache_entries', { type: 'denial' }),
      },
      agentAlive: agent.alive(),
      dnsperfOutput: perfOut,
      agentOutputTail: agent.output().slice(-4000),
    };
  } finally {
    await agent?.stop();
    await nsd?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
