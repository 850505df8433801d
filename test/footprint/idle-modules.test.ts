/**
 * What a node with node-cache's stock Corefile loads (issue 16, Footprint): every module costs
 * RSS in every process. With the stock shape (four blocks; errors, cache, reload, loop, bind,
 * forward, prometheus, health) serving a query and answering a /metrics scrape, the process loads
 * the stock plugins and none of: prom-client, yaml, the 14 plugins loaded on first use
 * (src/plugins/registry.ts; `log` would bring the message codec), the set-up metrics listener, worker threads, zlib (first gzip scrape).
 * Read with a resolve hook (test/lib/record-modules.ts), not from RSS: no figure is asserted.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import http from 'node:http';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { NODE, ROOT, dig, startKnot } from '../engine/harness.ts';
import { CLUSTER_LOCAL, EXAMPLE_NET } from '../engine/zones.ts';
import { freeAddress, waitUntil } from '../lib/net.ts';

/** The plugins src/plugins/registry.ts loads only when a Corefile names them. */
const LAZY_PLUGINS = [
  'bufsize',
  'debug',
  'dns64',
  'dnstap',
  'hosts',
  'loadbalance',
  'log',
  'metadata',
  'pprof',
  'rewrite',
  'template',
  'timeouts',
  'trace',
  'whoami',
];

function stockShaped(dnsPort: number, upstream: string, metricsPort: number, healthPort: number): string {
  const block = (zone: string, cache: string, tcp: boolean, health: boolean) =>
    `${zone}:${dnsPort} {
    errors
    ${cache}
    reload
    loop
    bind 127.0.0.1
    forward . ${upstream}${tcp ? ' {\n        force_tcp\n    }' : ''}
    prometheus 127.0.0.1:${metricsPort}
${health ? `    health 127.0.0.1:${healthPort}\n` : ''}}
`;
  return (
    block('cluster.local', 'cache {\n        success 9984 30\n        denial 9984 5\n    }', true, true) +
    block('in-addr.arpa', 'cache 30', true, false) +
    block('ip6.arpa', 'cache 30', true, false) +
    block('.', 'cache 30', false, false)
  );
}

/** GET /metrics without Accept-Encoding (a gzip scrape would load zlib, by design). */
function scrape(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: '/metrics' }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve(body));
      })
      .on('error', reject);
  });
}

test('a stock-shaped Corefile, serving and scraped, loads the stock plugins and nothing that is only loaded on demand', async (t) => {
  const knot = await startKnot({ 'cluster.local': CLUSTER_LOCAL, 'example.net': EXAMPLE_NET });
  t.after(() => knot.stop());
  const dir = mkdtempSync(path.join(tmpdir(), 'nld-modules-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const [dns, metrics, health] = [await freeAddress('127.0.0.1'), await freeAddress('127.0.0.1'), await freeAddress('127.0.0.1')];
  writeFileSync(path.join(dir, 'Corefile'), stockShaped(dns.port, knot.addr, metrics.port, health.port));
  const record = path.join(dir, 'modules.txt');
  writeFileSync(record, '');
  // The shipped entry (bin/node-local-dns.js), as `npm start` and the image run it.
  const proc = spawn(NODE, ['--import', path.join(ROOT, 'test/lib/record-modules.ts'), 'bin/node-local-dns.js', '-conf', path.join(dir, 'Corefile')], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, RECORD_MODULES_OUT: record },
  });
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  t.after(async () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    await exited;
  });
  await waitUntil(() => /\] node-local-dns-\S+ .*serving/.test(out) || proc.exitCode !== null, 'the serving line', 45_000);
  assert.match(out, /serving/, out);

  const local = await dig('127.0.0.1', dns.port, ['web.default.svc.cluster.local', 'A']);
  assert.deepEqual(
    local.answer.map((r) => r.data),
    ['10.244.1.5'],
  );
  const external = await dig('127.0.0.1', dns.port, ['db.example.net', 'A']);
  assert.deepEqual(
    external.answer.map((r) => r.data),
    ['192.0.2.20'],
  );
  const body = await scrape(metrics.port);
  assert.match(body, /^process_resident_memory_bytes \d+/m);
  assert.match(body, /^coredns_cache_entries\{/m);

  const loaded = readFileSync(record, 'utf8').split('\n').filter(Boolean);
  const src = (p: string) => loaded.some((u) => u.startsWith(`file://${ROOT}/src/${p}`));
  // What the stock Corefile uses is there (the hook sees the process's modules).
  for (const p of [
    'plugins/cache/',
    'plugins/forward/',
    'plugins/prometheus/',
    'plugins/health/',
    'plugins/loop/',
    'plugins/reload/',
    'metrics/node-metrics.ts',
  ]) {
    assert.ok(src(p), `src/${p} loaded`);
  }
  for (const name of LAZY_PLUGINS) assert.equal(src(`plugins/${name}/`), false, `src/plugins/${name}/ not loaded`);
  assert.equal(src('agent/setup-metrics.ts'), false, 'the set-up metrics listener is not loaded without -metrics-listen-address');
  assert.deepEqual(
    loaded.filter((u) => /\/node_modules\/(prom-client|yaml|@opentelemetry)\//.test(u)),
    [],
    'no prom-client or yaml',
  );
  assert.deepEqual(
    loaded.filter((u) => u === 'node:worker_threads' || u === 'node:zlib'),
    [],
    'no worker threads (one serving thread) and no zlib (no gzip scrape)',
  );
});
