import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MetricsHub } from './hub.ts';
import { parseExposition, sampleValue } from './testing.ts';

test('hub: with prom-client default metrics the exposition stays strictly valid (NaN spelled NaN)', async () => {
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
