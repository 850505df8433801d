/**
 * `npm run soak` — a long run of the agent under a steady, mixed load (see lib.ts), to catch
 * leaks and lost queries that short tests cannot.
 *
 *   node test/soak/run.ts [--duration S] [--rate QPS] [--sample S] [--warmup FRACTION] [--max-slope KIB_PER_MIN]
 *
 * Defaults: 600 s at 2000 queries/s, RSS sampled every 5 s, the first 25 % of the run is
 * warm-up (the caches fill: the miss names cycle every 60 s). Prints the RSS series, the RSS
 * slope after the warm-up and dnsperf's summary.
 *
 * Exit status 1 when a query was lost (no answer within dnsperf's 5 s), when the agent died,
 * or when the RSS slope after the warm-up exceeds --max-slope (default 1024 KiB/min, i.e.
 * at most ~7.5 MiB over the 7.5 minutes after the warm-up of a default run). The threshold
 * leaves room for V8's heap sizing, which grows RSS in steps of a few MiB before it settles;
 * a leak of even 8 bytes per query at 2000 qps (~940 KiB/min) comes close to it, 16 bytes
 * exceeds it.
 */
import { parseArgs } from 'node:util';
import { runSoak, type SoakResult } from './lib.ts';

export const DEFAULT_MAX_SLOPE_KIB_PER_MIN = 1024;

function fmtMiB(kib: number): string {
  return (kib / 1024).toFixed(1);
}

export function report(r: SoakResult, maxSlope: number): { text: string; ok: boolean } {
  const lines: string[] = [];
  lines.push('RSS series (s, MiB):');
  for (let i = 0; i < r.samples.length; i += 6) {
    lines.push('  ' + r.samples.slice(i, i + 6).map((s) => `${s.t.toFixed(0).padStart(5)} ${fmtMiB(s.rssKiB).padStart(6)}`).join('   '));
  }
  lines.push(`RSS before load ${fmtMiB(r.baselineKiB)} MiB; peak growth ${fmtMiB(r.growthKiB)} MiB; growth after warm-up ${fmtMiB(r.growthAfterWarmupKiB)} MiB`);
  lines.push(`RSS slope after warm-up: ${r.slopeKiBPerMin.toFixed(1)} KiB/min (threshold ${maxSlope} KiB/min)`);
  lines.push(`queries: sent ${r.sent}, completed ${r.completed}, lost ${r.lost}; ${r.qps.toFixed(0)} qps; rcodes ${JSON.stringify(r.rcodes)}`);
  lines.push(`cache entries at the end: success ${r.cacheEntries.success}, denial ${r.cacheEntries.denial}`);
  const problems: string[] = [];
  if (r.lost > 0) problems.push(`${r.lost} queries lost`);
  if (!r.agentAlive) problems.push('the agent died');
  if (r.slopeKiBPerMin > maxSlope) problems.push(`RSS slope ${r.slopeKiBPerMin.toFixed(1)} KiB/min above ${maxSlope}`);
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
      warmup: { type: 'string', default: '0.25' },
      'max-slope': { type: 'string', default: String(DEFAULT_MAX_SLOPE_KIB_PER_MIN) },
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
  const r = await runSoak({
    durationSec,
    rate,
    sampleSec,
    warmupFraction,
    onSample: (s) => process.stdout.write(`  t=${s.t.toFixed(0)}s rss=${fmtMiB(s.rssKiB)} MiB\n`),
  });
  const { text, ok } = report(r, maxSlope);
  process.stdout.write(text + '\n');
  process.exitCode = ok ? 0 : 1;
}

if (import.meta.main) {
  main().catch((err) => {
    process.stderr.write(`soak: ${(err as Error).stack ?? err}\n`);
    process.exitCode = 2;
  });
}
