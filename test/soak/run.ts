/**
 * `npm run soak` — a long run of the agent under a steady, mixed load (see lib.ts), to catch
 * leaks and lost queries that short tests cannot.
 *
 *   node test/soak/run.ts [--duration S] [--rate QPS] [--sample S] [--warmup FRACTION]
 *                         [--max-slope KIB_PER_MIN] [--workers N]
 *
 * Defaults: 600 s at 2000 queries/s, RSS sampled every 5 s, the first 40 % of the run is
 * warm-up (the caches fill, the miss names cycle every 60 s, and every worker's V8 heap grows
 * to its working size: about 2-3 minutes on a 2-CPU machine). Prints the RSS series (with
 * the serving thread's V8 heap when the agent runs one worker), the RSS trend, the raw RSS
 * slope and dnsperf's summary.
 *
 * The RSS trend is the rise of the RSS high-water mark after the warm-up, per minute. Raw RSS
 * of a garbage-collected process saws by 100+ MiB under this load (V8 grows a heap, collects,
 * gives pages back, grows again: a least-squares slope over 6 minutes swings by ±15 MiB/min
 * with no leak at all), while a leak keeps pushing the high-water mark up. Measured with no
 * leak: 0-3 MiB/min (10 and 15 minute runs, 2 workers, 2 CPUs).
 *
 * Exit status 1 when a query was lost (no answer within dnsperf's 5 s), when the agent died,
 * or when the trend exceeds --max-slope (default 8192 KiB/min = 8 MiB/min). At 2000 qps that
 * catches leaks of ~70 bytes per query and more within a default run; smaller leaks need a
 * longer run (e.g. --duration 3600 --max-slope 2048).
 */
import { parseArgs } from 'node:util';
import { runSoak, type SoakResult } from './lib.ts';

export const DEFAULT_MAX_SLOPE_KIB_PER_MIN = 8192;

function fmtMiB(kib: number): string {
  return (kib / 1024).toFixed(1);
}

export function report(r: SoakResult, maxSlope: number): { text: string; ok: boolean } {
  const lines: string[] = [];
  lines.push('RSS series (s, MiB):');
  for (let i = 0; i < r.samples.length; i += 6) {
    lines.push(
      '  ' +
        r.samples
          .slice(i, i + 6)
          .map((s) => `${s.t.toFixed(0).padStart(5)} ${fmtMiB(s.rssKiB).padStart(6)}`)
          .join('   '),
    );
  }
  lines.push(
    `RSS before load ${fmtMiB(r.baselineKiB)} MiB; peak growth ${fmtMiB(r.growthKiB)} MiB; growth after warm-up ${fmtMiB(r.growthAfterWarmupKiB)} MiB`,
  );
  lines.push(`RSS trend (high-water mark after warm-up): ${r.trendKiBPerMin.toFixed(1)} KiB/min (threshold ${maxSlope} KiB/min)`);
  lines.push(`raw RSS least-squares slope after warm-up: ${r.slopeKiBPerMin.toFixed(1)} KiB/min (not judged)`);
  lines.push(`queries: sent ${r.sent}, completed ${r.completed}, lost ${r.lost}; ${r.qps.toFixed(0)} qps; rcodes ${JSON.stringify(r.rcodes)}`);
  lines.push(`cache entries at the end: success ${r.cacheEntries.success}, denial ${r.cacheEntries.denial}`);
  const zoneText = Object.entries(r.zones)
    .map(([z, c]) => `${z} ${c.requests}/${c.responses}`)
    .join(', ');
  const inAgent = Object.values(r.zones).reduce((n, c) => n + c.requests, 0);
  const unanswered = Object.values(r.zones).reduce((n, c) => n + c.requests - c.responses, 0);
  lines.push(`agent requests/responses per zone: ${zoneText}; received ${inAgent} of ${r.sent} sent, ${unanswered} left unanswered`);
  lines.push(`machine UDP receive-buffer drops during the run (all processes): ${r.udpRcvbufErrors}`);
  lines.push(
    `answered by the agent after more than 4.096 s: ${r.slowInAgent}; dnsperf timeouts ${r.dnsperfTimeouts}, unexpected responses ${r.dnsperfUnexpected}`,
  );
  const problems: string[] = [];
  if (r.lost > 0) problems.push(`${r.lost} queries lost`);
  if (!r.agentAlive) problems.push('the agent died');
  if (r.trendKiBPerMin > maxSlope) problems.push(`RSS trend ${r.trendKiBPerMin.toFixed(1)} KiB/min above ${maxSlope}`);
  lines.push(problems.length === 0 ? 'PASS' : `FAIL: ${problems.join('; ')}`);
  if (problems.length > 0) lines.push('--- agent output (tail) ---', r.agentOutputTail);
  return { text: lines.join('\n'), ok: problems.length === 0 };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      duration: { type: 'string', default: '600' },
      rate: { type: 'string', default: '2000' },
      sample: { type: 'string', default: '5' },
      warmup: { type: 'string', default: '0.4' },
      'max-slope': { type: 'string', default: String(DEFAULT_MAX_SLOPE_KIB_PER_MIN) },
      workers: { type: 'string' },
    },
  });
  const durationSec = Number(values.duration);
  const rate = Number(values.rate);
  const sampleSec = Number(values.sample);
  const warmupFraction = Number(values.warmup);
  const maxSlope = Number(values['max-slope']);
  for (const [k, v] of Object.entries({ durationSec, rate, sampleSec, warmupFraction, maxSlope })) {
    if (!Number.isFinite(v) || v < 0) throw new Error(`bad --${k}: ${v}`);
  }
  process.stdout.write(`soak: ${durationSec} s at ${rate} qps, RSS every ${sampleSec} s, warm-up ${warmupFraction * 100}%\n`);
  // Ctrl-C / SIGTERM: stop the load; the agent, NSD and temp files are still cleaned up.
  const stop = new AbortController();
  process.once('SIGINT', () => stop.abort());
  process.once('SIGTERM', () => stop.abort());
  const r = await runSoak({
    signal: stop.signal,
    agentArgs: values.workers === undefined ? [] : ['-workers', values.workers],
    durationSec,
    rate,
    sampleSec,
    warmupFraction,
    onSample: (s) =>
      process.stdout.write(
        `  t=${s.t.toFixed(0)}s rss=${fmtMiB(s.rssKiB)} MiB${values.workers === '1' ? ` heap=${fmtMiB(s.heapUsedKiB)} MiB external=${fmtMiB(s.externalKiB)} MiB` : ''}\n`,
      ),
  });
  const { text, ok } = report(r, maxSlope);
  process.stdout.write(text + '\n');
  process.exitCode = ok ? 0 : 1;
}

if (import.meta.main) {
  main().catch((err) => {
    const e = err as Error;
    process.stderr.write(`soak: ${e.message === 'soak aborted' ? 'aborted' : (e.stack ?? String(err))}\n`);
    process.exitCode = 2;
  });
}
