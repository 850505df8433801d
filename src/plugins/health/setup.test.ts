import { test } from 'node:test';
import assert from 'node:assert/strict';
import { healthSetup, parseHealth } from './setup.ts';
import { HealthPlugin } from './health.ts';
import { MetricsHub } from '../../metrics/hub.ts';
import { HealthMetrics } from './metrics.ts';
import { HttpEndpoints } from '../../metrics/http-endpoints.ts';
import { MemoryLogger, TestEngine, directiveOf, parseExposition, sampleValue, setupContext } from '../../../test/lib/metrics-testing.ts';

test('health setup: address and lameduck', () => {
  const ok: [string, { address: string; lameduckMs: number }][] = [
    ['health', { address: ':8080', lameduckMs: 0 }],
    ['health 169.254.20.10:8080', { address: '169.254.20.10:8080', lameduckMs: 0 }],
    ['health localhost:8091 {\nlameduck 1s\n}', { address: 'localhost:8091', lameduckMs: 1000 }],
    ['health {\nlameduck 1m30s\n}', { address: ':8080', lameduckMs: 90000 }],
    ['health {\nlameduck -5s\n}', { address: ':8080', lameduckMs: 0 }],
  ];
  for (const [line, want] of ok) assert.deepEqual(parseHealth(directiveOf(line)), want, line);
  const bad: [string, string][] = [
    ['health 8080', 'Corefile:2 - Error during parsing: address 8080: missing port in address'],
    ['health :1 :2', "Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after ':2'"],
    ['health {\nlameduck\n}', "Corefile:3 - Error during parsing: Wrong argument count or unexpected line ending after 'lameduck'"],
    ['health {\nlameduck 1s 2s\n}', "Corefile:3 - Error during parsing: Wrong argument count or unexpected line ending after '2s'"],
    ['health {\nlameduck soon\n}', 'Corefile:3 - Error during parsing: unable to parse lameduck duration value: "soon": time: invalid duration "soon"'],
    ['health {\nfoo 1\n}', "Corefile:3 - Error during parsing: Wrong argument count or unexpected line ending after 'foo'"],
  ];
  for (const [line, msg] of bad) assert.throws(() => parseHealth(directiveOf(line)), { message: msg }, line);
  const p = healthSetup.setup(directiveOf('health :8080 {\nlameduck 5s\n}'), setupContext(new TestEngine())) as HealthPlugin;
  assert.equal(p.lameduckMs, 5000);
});

async function waitFor(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test('health plugin: 200 OK, also while shutting down (lameduck) until stop; self check metrics', async (t) => {
  const endpoints = new HttpEndpoints();
  t.after(() => endpoints.closeAll());
  const hub = new MetricsHub({ defaultMetrics: false });
  const metrics = new HealthMetrics();
  hub.addCollector({ collect: (out) => metrics.collect(out) });
  const engine = new TestEngine();
  const log = new MemoryLogger();
  const p = new HealthPlugin({ address: '127.0.0.1:0', lameduckMs: 300 }, { metrics, endpoints, engine, log, selfCheckIntervalMs: 20 });
  await p.start();
  const port = p.port;
  const r = await fetch(`http://127.0.0.1:${port}/health`);
  assert.equal(r.status, 200);
  assert.equal(await r.text(), 'OK');

  await waitFor(() => metrics.duration.count >= 3, 'three self checks');
  let fams = parseExposition(await hub.render());
  assert.ok(sampleValue(fams, 'coredns_health_request_duration_seconds_count')! >= 3);
  assert.equal(sampleValue(fams, 'coredns_health_request_failures_total'), 0);

  // Shutdown started (ready would answer 503 now): health keeps answering 200 until stop().
  engine.shuttingDown = true;
  const during = await fetch(`http://127.0.0.1:${port}/health`);
  assert.equal(during.status, 200);
  await during.text();

  // The listener disappearing under the self check is a failure, logged as CoreDNS does.
  await endpoints.closeAll();
  await waitFor(() => metrics.failures > 0, 'a failed self check');
  fams = parseExposition(await hub.render());
  assert.ok(sampleValue(fams, 'coredns_health_request_failures_total')! >= 1);
  assert.match(
    log.lines.find((l) => l.startsWith('WARNING'))!,
    /^WARNING Local health request to "http:\/\/127\.0\.0\.1:0\/health" failed: Get "http:\/\/127\.0\.0\.1:0\/health": (dial tcp 127\.0\.0\.1:0: connect: connection refused|EOF)$/,
  );

  await p.stop();
  const failures = metrics.failures;
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(metrics.failures, failures, 'no self checks after stop');
});
