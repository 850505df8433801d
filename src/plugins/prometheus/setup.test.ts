import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gunzipSync } from 'node:zlib';
import { request } from 'node:http';
import { createServer, type AddressInfo } from 'node:net';
import { prometheusSetup, parsePrometheus } from './setup.ts';
import { PrometheusPlugin } from './prometheus.ts';
import { MetricsHub } from '../../metrics/hub.ts';
import { HttpEndpoints } from '../../metrics/http-endpoints.ts';
import { TestEngine, answeredRequest, directiveOf, parseExposition, sampleValue, setupContext } from '../../../test/lib/metrics-testing.ts';
import type { Request } from '../../server/request.ts';

test('prometheus setup: arguments and options', () => {
  const ok: [string, { address: string; legacy: boolean }][] = [
    ['prometheus', { address: 'localhost:9153', legacy: false }],
    ['prometheus :9253', { address: ':9253', legacy: false }],
    ['prometheus [::1]:9253', { address: '[::1]:9253', legacy: false }],
    ['prometheus :9253 {\nlegacy_metrics\n}', { address: ':9253', legacy: true }],
    ['prometheus {\nruntime_metrics\n}', { address: 'localhost:9153', legacy: false }],
  ];
  for (const [line, want] of ok) assert.deepEqual(parsePrometheus(directiveOf(line)), want, line);

  const bad: [string, string][] = [
    ['prometheus localhost', 'Corefile:2 - Error during parsing: address localhost: missing port in address'],
    ['prometheus a:b:1', 'Corefile:2 - Error during parsing: address a:b:1: too many colons in address'],
    ['prometheus :99999', 'Corefile:2 - Error during parsing: address :99999: invalid port'],
    ['prometheus :1 :2', "Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after ':2'"],
    ['prometheus :1 {\nfoo\n}', 'Corefile:3 - Error during parsing: unknown option: foo'],
    ['prometheus :1 {\nlegacy_metrics yes\n}', "Corefile:3 - Error during parsing: Wrong argument count or unexpected line ending after 'yes'"],
    ['prometheus :1 {\ntls a b\n}', 'Corefile:3 - Error during parsing: tls is not supported by node-local-dns'],
  ];
  for (const [line, msg] of bad) assert.throws(() => parsePrometheus(directiveOf(line)), { message: msg }, line);
  const engine = new TestEngine();
  const p = prometheusSetup.setup(directiveOf('prometheus :9253'), setupContext(engine));
  assert.equal(p.name, 'prometheus');
  // The plugin adds nothing to the query path.
  const next = { serve(_req: Request) {} };
  assert.equal(p.compose(next), next);
});

function get(
  port: number,
  path: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('prometheus plugin: /metrics shared by blocks on one address, 404 elsewhere, legacy per address, no gap on reload', async (t) => {
  const endpoints = new HttpEndpoints({ graceMs: 5000 });
  t.after(() => endpoints.closeAll());
  const hub = new MetricsHub({ defaultMetrics: false });
  const engine = new TestEngine();
  const deps = (labels: string[], zones: string[]) => ({ hub, endpoints, engine, serverLabels: labels, zones });
  const a = new PrometheusPlugin({ address: '127.0.0.1:0', legacy: false }, deps(['dns://127.0.0.1:53'], ['cluster.local.']));
  const b = new PrometheusPlugin({ address: '127.0.0.1:0', legacy: false }, deps(['dns://127.0.0.1:53'], ['.']));
  await a.start();
  await b.start();
  assert.equal(a.port, b.port, 'one listener per address');
  const port = a.port;

  hub.zoneStats.get('dns://127.0.0.1:53', 'cluster.local.').record(answeredRequest({ qtype: 1 }), 0.001);
  hub.zoneStats.get('dns://127.0.0.1:53', 'unmonitored.').record(answeredRequest({ qtype: 1 }), 0.001);

  const r = await get(port, '/metrics');
  assert.equal(r.status, 200);
  assert.equal(r.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8');
  const fams = parseExposition(r.body.toString());
  assert.equal(
    sampleValue(fams, 'coredns_dns_requests_total', { family: '1', proto: 'udp', server: 'dns://127.0.0.1:53', type: 'A', view: '', zone: 'cluster.local.' }),
    1,
  );
  assert.equal(
    sampleValue(fams, 'coredns_dns_requests_total', { family: '1', proto: 'udp', server: 'dns://127.0.0.1:53', type: 'A', view: '', zone: 'unmonitored.' }),
    undefined,
  );
  assert.equal(fams.has('coredns_dns_request_count_total'), false);

  const z = await get(port, '/metrics', { 'accept-encoding': 'gzip' });
  assert.equal(z.headers['content-encoding'], 'gzip');
  assert.equal(sampleValue(parseExposition(gunzipSync(z.body).toString()), 'coredns_panics_total'), 0);

  const nf = await get(port, '/nope');
  assert.equal(nf.status, 404);
  assert.equal(nf.body.toString(), '404 page not found\n');

  // A third block on the address asks for the 1.6 names: the address serves them.
  const c = new PrometheusPlugin({ address: '127.0.0.1:0', legacy: true }, deps([], []));
  await c.start();
  assert.equal(parseExposition((await get(port, '/metrics')).body.toString()).has('coredns_dns_request_count_total'), true);
  await c.stop();
  assert.equal(parseExposition((await get(port, '/metrics')).body.toString()).has('coredns_dns_request_count_total'), false);

  // Reload: the old plugins stop, the new one starts on the same address; the port never closes.
  await a.stop();
  await b.stop();
  assert.equal((await get(port, '/metrics')).status, 404, 'listener kept during the grace period');
  const a2 = new PrometheusPlugin({ address: '127.0.0.1:0', legacy: false }, deps(['dns://127.0.0.1:53'], ['cluster.local.']));
  await a2.start();
  assert.equal(a2.port, port);
  assert.equal((await get(port, '/metrics')).status, 200);

  // Shutdown: released at once.
  engine.shuttingDown = true;
  await a2.stop();
  await assert.rejects(get(port, '/metrics'), /ECONNREFUSED/);
});

test('prometheus plugin: a port taken without SO_REUSEPORT fails start with Go-like wording', async (t) => {
  const endpoints = new HttpEndpoints();
  const other = createServer((c) => c.destroy());
  await new Promise<void>((resolve) => other.listen({ host: '127.0.0.1', port: 0 }, resolve));
  t.after(async () => {
    await endpoints.closeAll();
    other.close();
  });
  const port = (other.address() as AddressInfo).port;
  const engine = new TestEngine();
  const p = new PrometheusPlugin(
    { address: `127.0.0.1:${port}`, legacy: false },
    { hub: new MetricsHub({ defaultMetrics: false }), endpoints, engine, serverLabels: [], zones: [] },
  );
  await assert.rejects(p.start(), { message: `listen tcp 127.0.0.1:${port}: bind: address already in use` });
});
