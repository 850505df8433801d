import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatFamily, formatValue } from './exposition.ts';
import { SnapshotBuilder } from './snapshot.ts';
import { MetricsHub } from './hub.ts';
import { parseExposition, sampleValue } from '../../test/lib/metrics-testing.ts';

test('exposition: counters sorted by label values, labels by name, values and escapes as prom-client printed them', () => {
  const b = new SnapshotBuilder();
  const c = b.family('x_total', 'Help with \\ and\nnewline.', 'counter');
  c.add({ zone: 'b.', server: 's' }, 2);
  c.add({ server: 's', zone: 'a."q"\\\n' }, 1e21);
  c.add({ server: 'r', zone: 'z.' }, 0.5);
  assert.equal(
    formatFamily(b.build().families[0]!),
    [
      '# HELP x_total Help with \\\\ and\\nnewline.',
      '# TYPE x_total counter',
      'x_total{server="r",zone="z."} 0.5',
      'x_total{server="s",zone="a.\\"q\\"\\\\\\n"} 1e+21',
      'x_total{server="s",zone="b."} 2',
    ].join('\n'),
  );
  const g = new SnapshotBuilder();
  g.family('g', 'G.', 'gauge').add({}, 3);
  assert.equal(formatFamily(g.build().families[0]!), '# HELP g G.\n# TYPE g gauge\ng 3');
  assert.deepEqual([NaN, Infinity, -Infinity, 1e-7, 0.00025].map(formatValue), ['NaN', '+Inf', '-Inf', '1e-7', '0.00025']);
});

test('exposition: histograms print cumulative buckets with le last, then _sum and _count', () => {
  const b = new SnapshotBuilder();
  const h = b.family('h_seconds', 'H.', 'histogram', { bounds: [0.00025, 0.5] });
  h.addHistogram({ to: 'x' }, [1, 0, 2], 1.25);
  h.addHistogram({}, [0, 1, 0], 0.3);
  assert.equal(
    formatFamily(b.build().families[0]!),
    [
      '# HELP h_seconds H.',
      '# TYPE h_seconds histogram',
      'h_seconds_bucket{le="0.00025"} 0',
      'h_seconds_bucket{le="0.5"} 1',
      'h_seconds_bucket{le="+Inf"} 1',
      'h_seconds_sum 0.3',
      'h_seconds_count 1',
      'h_seconds_bucket{to="x",le="0.00025"} 1',
      'h_seconds_bucket{to="x",le="0.5"} 1',
      'h_seconds_bucket{to="x",le="+Inf"} 3',
      'h_seconds_sum{to="x"} 1.25',
      'h_seconds_count{to="x"} 3',
    ].join('\n'),
  );
});

test('hub.render: our families and the process metrics in one name-sorted exposition, blank line between families', async () => {
  const hub = new MetricsHub();
  hub.addCollector({ collect: (out) => out.family('nodejs_zz_test', 'Sorts among the nodejs_ families.', 'gauge').add({}, 7) });
  const text = await hub.render();
  const names = [...text.matchAll(/^# TYPE (\S+)/gm)].map((m) => m[1]!);
  assert.deepEqual(names, [...names].sort());
  assert.ok(names.includes('process_cpu_user_seconds_total') && names.includes('nodejs_zz_test') && names.includes('coredns_build_info'));
  assert.equal(text.split('\n\n').length, names.length, 'one blank line between families');
  assert.ok(text.endsWith('\n') && !text.endsWith('\n\n'));
  assert.equal(sampleValue(parseExposition(text), 'nodejs_zz_test'), 7);
});
