/**
 * The soak in short (~20 s of load; `npm run soak` runs the long one): a real upstream (NSD),
 * the agent, dnsperf at a fixed rate with hits, misses, NXDOMAIN and errors. No query may be
 * lost and the agent's RSS must stay within a generous bound over its idle size.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { highWaterTrend, queryFile, runSoak, slope, parseDnsperf } from './lib.ts';
import { report } from './run.ts';

/** RSS growth over the idle agent allowed for 20 s of load (the caches fill, V8 sizes its heap). */
const MAX_GROWTH_KIB = 192 * 1024;

test('soak helpers: the query mix, dnsperf summary parsing, least-squares slope', () => {
  const lines = queryFile(1000).trim().split('\n');
  assert.equal(lines.length, 1000);
  const count = (re: RegExp) => lines.filter((l) => re.test(l)).length;
  assert.equal(count(/cluster\.local A$/) + count(/^h\d+\.soak\.test A$/), 600);
  assert.equal(count(/\.wild\.soak\.test A$/), 200);
  assert.equal(new Set(lines.filter((l) => l.includes('.wild.'))).size, 200, 'misses are unique');
  assert.equal(count(/^nx\d+\.soak\.test A$/), 100);
  assert.equal(count(/\.dead\.test A$/), 100);
  const p = parseDnsperf(
    `  Queries sent:         20\n  Queries completed:    18 (90.00%)\n  Queries lost:         2 (10.00%)\n\n  Response codes:       NOERROR 16 (88.89%), SERVFAIL 2 (11.11%)\n  Queries per second:   9.5\n`,
  );
  assert.deepEqual(p, { sent: 20, completed: 18, lost: 2, rcodes: { NOERROR: 16, SERVFAIL: 2 }, qps: 9.5 });
  assert.equal(
    slope([
      { x: 0, y: 1 },
      { x: 1, y: 3 },
      { x: 2, y: 5 },
    ]),
    2,
  );
  assert.equal(slope([{ x: 0, y: 4 }]), 0);
  const sample = (t: number, rssKiB: number) => ({ t, rssKiB, heapUsedKiB: -1, externalKiB: -1 });
  // High-water mark 200 at the end of the warm-up (60 s), 260 at 120 s: 60 KiB/min.
  assert.equal(highWaterTrend([sample(0, 100), sample(30, 200), sample(60, 150), sample(90, 190), sample(120, 260)], 60), 60);
  // Saw-tooth below the warm-up's peak: no trend.
  assert.equal(highWaterTrend([sample(0, 100), sample(30, 300), sample(90, 150), sample(120, 290)], 60), 0);
});

test('20 s of mixed load: no query lost, RSS bounded', async () => {
  const r = await runSoak({ durationSec: 20, rate: 500, sampleSec: 2, warmupFraction: 0.5 });
  const { text } = report(r, Infinity);
  assert.ok(r.agentAlive, text);
  assert.ok(r.sent >= 8_000, `dnsperf sent ${r.sent}\n${text}`);
  // The agent itself answered every query it received.
  for (const [zone, c] of Object.entries(r.zones)) assert.equal(c.responses, c.requests, `${zone}\n${text}`);
  assert.equal(r.lost, 0, text);
  // Every kind of the mix got its answer: one query in ten is NXDOMAIN, one in ten SERVFAIL.
  const tenth = r.sent / 10;
  assert.ok(Math.abs((r.rcodes.NXDOMAIN ?? 0) - tenth) <= 1, text);
  assert.ok(Math.abs((r.rcodes.SERVFAIL ?? 0) - tenth) <= 1, text);
  assert.equal(r.rcodes.NOERROR, r.completed - (r.rcodes.NXDOMAIN ?? 0) - (r.rcodes.SERVFAIL ?? 0), text);
  assert.ok(r.growthKiB < MAX_GROWTH_KIB, `RSS grew by ${(r.growthKiB / 1024).toFixed(1)} MiB over the idle agent\n${text}`);
});
