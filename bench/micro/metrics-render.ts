/**
 * Micro-bench of MetricsHub.render(): a realistic scrape of a 2-worker agent with 4 server
 * blocks (~300 series: label sets, a histogram counting once), the workers' snapshots merged on the control thread, then formatted.
 *
 *   node bench/micro/metrics-render.ts [--iterations N] [--defaults] [--legacy] [--out FILE]
 *
 * Wall times (p50/p90/p99) suffer on a busy machine; cpu_ms_per_render (process CPU time over
 * the timed renders, divided by their number) is the steadier figure.
 * --variant aggregator measures the alternative to the hub's own exposition: the same worker
 * snapshots as prom-client JSON (cumulative buckets, `aggregator` sum/max) merged by
 * prom-client's AggregatorRegistry.aggregate() and formatted by its Registry (a lower bound:
 * no family/sample sorting, no default metrics, no legacy names).
 * --defaults adds prom-client's default process metrics (process_*, nodejs_*); --out writes
 * one rendered exposition (without the default metrics it is deterministic: a golden file).
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { MetricsHub } from '../../src/metrics/hub.ts';
import { SnapshotBuilder, type MetricsSnapshot } from '../../src/metrics/snapshot.ts';
import { ZoneStatsRegistry } from '../../src/metrics/zone-stats.ts';
import { TIME_BUCKETS } from '../../src/metrics/labels.ts';
import { answeredRequest } from '../../test/lib/metrics-testing.ts';
import { leLabel } from '../../src/metrics/labels.ts';

const { values: opts } = parseArgs({
  options: {
    iterations: { type: 'string', default: '2000' },
    defaults: { type: 'boolean', default: false },
    legacy: { type: 'boolean', default: false },
    out: { type: 'string' },
    variant: { type: 'string', default: 'hub' },
  },
});

const BLOCKS: [string, string[]][] = [
  ['dns://169.254.20.10:53', ['cluster.local.']],
  ['dns://169.254.20.10:53#2', ['in-addr.arpa.', 'ip6.arpa.']],
  ['dns://169.254.20.10:53#3', ['.']],
  ['dns://169.254.20.10:53#4', ['example.internal.']],
];
const QTYPES = [1, 28, 33, 12, 5, 16, 99];
const RCODES = [0, 3, 2];

/** One worker's snapshot: real ZoneStats fed with answered requests, plus cache/forward families. */
function workerSnapshot(seed: number): MetricsSnapshot {
  const zs = new ZoneStatsRegistry();
  let n = seed;
  for (const [server, zones] of BLOCKS) {
    for (const zone of zones) {
      zs.monitor(server, zone);
      const s = zs.get(server, zone);
      for (let i = 0; i < 400; i++) {
        n = (n * 1103515245 + 12345) % 2147483648;
        s.record(
          answeredRequest({
            proto: n % 11 === 0 ? 1 : 0,
            family: n % 3 === 0 ? 6 : 4,
            qtype: QTYPES[n % QTYPES.length]!,
            dnssecOk: n % 5 === 0,
            msgLen: 30 + (n % 200),
            responseLen: 60 + (n % 900),
            rcode: RCODES[n % 3]!,
            respondedBy: n % 4 === 0 ? 'forward' : n % 4 === 1 ? 'hosts' : 'cache',
          }),
          (n % 1000) / 1e5,
        );
      }
    }
  }
  const b = new SnapshotBuilder();
  zs.collect(b);
  for (const [server, zones] of BLOCKS) {
    const base = { server, view: '', zones: zones.join(' ') };
    b.family('coredns_cache_entries', 'The number of elements in the cache.', 'gauge').add({ ...base, type: 'success' }, 100 + seed);
    b.family('coredns_cache_entries', 'The number of elements in the cache.', 'gauge').add({ ...base, type: 'denial' }, 10 + seed);
    b.family('coredns_cache_requests_total', 'The count of cache requests.', 'counter').add(base, 1000);
    b.family('coredns_cache_hits_total', 'The count of cache hits.', 'counter').add({ ...base, type: 'success' }, 900);
    b.family('coredns_cache_misses_total', 'The count of cache misses. Deprecated, derive misses from cache hits/requests counters.', 'counter').add(base, 100);
    b.family('coredns_plugin_enabled', 'A metric that indicates whether a plugin is enabled on per server and zone basis.', 'gauge', { merge: 'max' }).add(
      { server, zone: zones[0]!, name: 'cache', view: '' },
      1,
    );
  }
  for (const to of ['10.96.0.10:53', '10.96.0.11:53', '10.96.0.12:53', '10.96.0.13:53', '10.96.0.14:53', '10.96.0.15:53', '10.96.0.16:53', '10.96.0.17:53']) {
    b.family('coredns_forward_requests_total', 'Counter of requests made per upstream.', 'counter').add({ to }, 300);
    for (const rcode of ['NOERROR', 'NXDOMAIN', 'SERVFAIL']) {
      b.family('coredns_forward_responses_total', 'Counter of responses received per upstream.', 'counter').add({ rcode, to }, 100);
      const buckets = [...TIME_BUCKETS.map((_, i) => (i < 6 ? 10 : 0)), 1];
      b.family('coredns_proxy_request_duration_seconds', 'Histogram of the time each request took.', 'histogram', { bounds: TIME_BUCKETS }).addHistogram(
        { proxy_name: 'forward', rcode, to },
        buckets,
        0.05,
      );
    }
  }
  b.family('coredns_build_info', "A metric with a constant '1' value labeled by version, revision, and goversion from which CoreDNS was built.", 'gauge', {
    merge: 'max',
  }).add({ goversion: 'node v24', revision: '', version: '1.11.3' }, 1);
  return b.build();
}

const workers = [workerSnapshot(1), workerSnapshot(2)];
const hub = new MetricsHub({ zoneStats: new ZoneStatsRegistry(), defaultMetrics: opts.defaults });
hub.setRemoteSnapshots(async () => workers);

/** A snapshot as prom-client's getMetricsAsJSON() would give it. */
function promJson(snap: MetricsSnapshot): object[] {
  return snap.families.map((f) => ({
    name: f.name,
    help: f.help,
    type: f.type,
    aggregator: f.merge,
    values: f.samples.flatMap((s) => {
      if (f.type !== 'histogram') return [{ labels: s.labels, value: s.value }];
      let cum = 0;
      const bounds = f.bounds ?? [];
      return [
        ...bounds.map((b, i) => ({ metricName: `${f.name}_bucket`, labels: { ...s.labels, le: leLabel(b) }, value: (cum += s.buckets?.[i] ?? 0) })),
        { metricName: `${f.name}_bucket`, labels: { ...s.labels, le: '+Inf' }, value: s.value },
        { metricName: `${f.name}_sum`, labels: s.labels, value: s.sum ?? 0 },
        { metricName: `${f.name}_count`, labels: s.labels, value: s.value },
      ];
    }),
  }));
}
const { AggregatorRegistry } = await import('prom-client');
const render = opts.variant === 'aggregator' ? () => AggregatorRegistry.aggregate(workers.map(promJson)).metrics() : () => hub.render({ legacy: opts.legacy });

const first = await render();
const series = (await hub.gather()).families.reduce((n, f) => n + f.samples.length, 0);
const lines = first.split('\n').filter((l) => l !== '' && !l.startsWith('#')).length;
const families = first.split('\n').filter((l) => l.startsWith('# TYPE')).length;
if (opts.out) writeFileSync(opts.out, first);

const iterations = Number(opts.iterations);
for (let i = 0; i < 200; i++) await render();
const times: number[] = [];
const cpu0 = process.cpuUsage();
for (let i = 0; i < iterations; i++) {
  const t0 = performance.now();
  await render();
  times.push(performance.now() - t0);
}
const cpu = process.cpuUsage(cpu0);
times.sort((a, b) => a - b);
const q = (p: number) => times[Math.min(times.length - 1, Math.floor(p * times.length))]!.toFixed(3);
console.log(
  JSON.stringify({
    variant: opts.variant,
    families,
    series,
    lines,
    bytes: first.length,
    iterations,
    defaults: opts.defaults,
    legacy: opts.legacy,
    p50_ms: q(0.5),
    p90_ms: q(0.9),
    p99_ms: q(0.99),
    cpu_ms_per_render: ((cpu.user + cpu.system) / 1000 / iterations).toFixed(3),
    mean_ms: (times.reduce((a, b) => a + b, 0) / times.length).toFixed(3),
  }),
);
