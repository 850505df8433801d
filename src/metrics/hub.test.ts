import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gunzipSync } from 'node:zlib';
import { MetricsHub, RenderScheduler } from './hub.ts';
import { parseExposition, sampleValue } from '../../test/lib/metrics-testing.ts';

test('hub: with the process metrics the exposition stays strictly valid (NaN spelled NaN)', async () => {
  const hub = new MetricsHub();
  // Right after creation the event loop percentiles have no samples yet (NaN).
  const text = await hub.render();
  assert.doesNotMatch(text, / Nan$/m);
  const fams = parseExposition(text);
  assert.ok((sampleValue(fams, 'process_resident_memory_bytes') ?? 0) > 0);
  assert.ok(fams.has('nodejs_eventloop_lag_seconds'));
});

test('hub: collectors are read at every scrape and can be removed', async () => {
  const hub = new MetricsHub({ defaultMetrics: false });
  let n = 0;
  const remove = hub.addCollector({
    collect(out) {
      out.family('test_scrapes_total', 'Scrapes seen by the test collector.', 'counter').add({}, ++n);
    },
  });
  assert.equal(sampleValue(parseExposition(await hub.render()), 'test_scrapes_total'), 1);
  assert.equal(sampleValue(parseExposition(await hub.render()), 'test_scrapes_total'), 2);
  remove();
  assert.equal(parseExposition(await hub.render()).has('test_scrapes_total'), false);
});

test('RenderScheduler: concurrent requests share one render; later ones wait for the next, at most one per interval', async () => {
  let n = 0;
  const s = new RenderScheduler(async () => `render ${++n}\n`, 200);
  const [a, b, c] = await Promise.all([s.request(), s.request(), s.request()]);
  assert.equal(s.renders, 1);
  assert.equal(a, b, 'one rendered object for every concurrent request');
  assert.equal(b, c);
  assert.equal(a.body.toString(), 'render 1\n');
  // gzip made once per render and shared.
  const [g1, g2] = await Promise.all([a.gzip(), b.gzip()]);
  assert.equal(g1, g2);
  assert.equal(gunzipSync(g1).toString(), 'render 1\n');

  // Back to back: each request gets a render started after it (never the one it could have
  // seen before), and renders stay one per interval (200 ms) however many requests come.
  const t0 = performance.now();
  const seen: string[] = [];
  for (let i = 0; i < 3; i++) seen.push((await s.request()).body.toString());
  assert.deepEqual(seen, ['render 2\n', 'render 3\n', 'render 4\n']);
  assert.ok(s.renders - 1 <= Math.ceil((performance.now() - t0) / 200) + 1);
});

test('RenderScheduler: a failed render rejects its requests; the next request renders again', async () => {
  let fail = true;
  const s = new RenderScheduler(async () => {
    if (fail) throw new Error('collector broke');
    return 'ok\n';
  }, 0);
  await assert.rejects(Promise.all([s.request(), s.request()]), /collector broke/);
  assert.equal(s.renders, 1);
  fail = false;
  assert.equal((await s.request()).body.toString(), 'ok\n');
});

test('hub.scrape: renders counted in nodelocaldns_metrics_renders_total, per exposition', async () => {
  const hub = new MetricsHub({ defaultMetrics: false, renderIntervalMs: 0 });
  const [x, y] = await Promise.all([hub.scrape(), hub.scrape()]);
  assert.equal(x, y);
  assert.equal(sampleValue(parseExposition(x.body.toString()), 'nodelocaldns_metrics_renders_total'), 1);
  const legacy = await hub.scrape({ legacy: true });
  assert.notEqual(legacy, x);
  assert.equal(sampleValue(parseExposition(legacy.body.toString()), 'nodelocaldns_metrics_renders_total'), 2);
});
