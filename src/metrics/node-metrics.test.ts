import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { NodeProcessMetrics } from './node-metrics.ts';
import { renderExposition } from './hub.ts';
import { parseExposition, sampleValue, samplesOf } from '../../test/lib/metrics-testing.ts';

/** Each family's type, help and the label names its samples use (histogram `le` left out); null: no samples. */
function shapes(text: string): Map<string, string | null> {
  const out = new Map<string, string | null>();
  for (const [name, f] of parseExposition(text)) {
    const names = new Set<string>();
    for (const s of f.samples) for (const k of Object.keys(s.labels)) if (k !== 'le') names.add(k);
    out.set(name, f.samples.length === 0 ? null : `${f.type} ${JSON.stringify(f.help)} [${[...names].sort().join(',')}]`);
  }
  return out;
}

test('process metrics: every family prom-client default metrics serve, with the same type, help and label names', async (t) => {
  const reg = new Registry();
  collectDefaultMetrics({ register: reg });
  const ours = new NodeProcessMetrics();
  t.after(() => ours.stop());
  ours.start();
  // A GC and a pending timer, so the GC histogram and the handle gauges have samples in both.
  (globalThis as { gc?: () => void }).gc?.();
  await new Promise((r) => setTimeout(r, 50));
  const theirs = shapes((await reg.metrics()).replace(/ Nan$/gm, ' NaN'));
  const mine = shapes(await renderExposition([], ours));
  for (const [name, shape] of theirs) {
    // prom-client prints families without samples (HELP and TYPE only), ours leave them out: a
    // family can be empty at a given moment (no request in flight).
    if (shape === null) continue;
    assert.equal(mine.get(name), shape, name);
  }
  assert.deepEqual(
    [...mine.keys()].filter((n) => !theirs.has(n)),
    [],
    'no family prom-client does not serve',
  );
});

test('process metrics: values come from the process (CPU since start, RSS, fds, heap, version)', async (t) => {
  const ours = new NodeProcessMetrics();
  t.after(() => ours.stop());
  const fams = parseExposition(await renderExposition([], ours));
  const cpu = process.cpuUsage();
  const user = sampleValue(fams, 'process_cpu_user_seconds_total')!;
  assert.ok(user > 0 && user <= cpu.user / 1e6, `user CPU ${user} s`);
  assert.ok(Math.abs(sampleValue(fams, 'process_cpu_seconds_total')! - user - sampleValue(fams, 'process_cpu_system_seconds_total')!) < 1e-6);
  assert.ok(sampleValue(fams, 'process_resident_memory_bytes')! > 10 * 2 ** 20);
  assert.ok(sampleValue(fams, 'process_open_fds')! >= 3);
  assert.ok(sampleValue(fams, 'process_max_fds')! >= sampleValue(fams, 'process_open_fds')!);
  assert.ok(Math.abs(sampleValue(fams, 'process_start_time_seconds')! - (Date.now() / 1000 - process.uptime())) <= 1);
  assert.ok(sampleValue(fams, 'nodejs_heap_size_used_bytes')! > 0);
  assert.ok(sampleValue(fams, 'nodejs_heap_size_total_bytes')! >= sampleValue(fams, 'nodejs_heap_size_used_bytes')!);
  assert.ok(samplesOf(fams, 'nodejs_heap_space_size_used_bytes').some((s) => s.labels.space === 'old'));
  assert.equal(samplesOf(fams, 'nodejs_version_info')[0]?.labels.version, process.version);
  assert.ok(sampleValue(fams, 'nodejs_eventloop_lag_seconds')! >= 0);
});
