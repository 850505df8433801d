/**
 * Serving with worker threads (src/workers/start.ts, pool.ts, worker.ts): every worker answers
 * on the shared port, metrics add up across workers and are served once, a killed worker is
 * replaced while its sibling keeps answering, a reload reaches every worker, and stop drains
 * every worker. Upstream: a toy DNS server on 127.0.0.1 (test/lib/forward-testing.ts).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import http from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import dnsPacket from 'dns-packet';
import { ToyUpstream, answerFor, waitFor } from '../../test/lib/forward-testing.ts';
import type { Logger } from '../plugin.ts';
import { startServing, type Serving } from './start.ts';
import { resolveWorkerCount, DEFAULT_WORKERS } from './count.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'nld-workers-'));
const running: Serving[] = [];
const upstreams: ToyUpstream[] = [];
after(async () => {
  for (const s of running) await s.engine.stop().catch(() => {});
  for (const u of upstreams) u.close();
  rmSync(dir, { recursive: true, force: true });
});

class MemoryLogger implements Logger {
  readonly lines: string[] = [];
  info(m: string): void {
    this.lines.push(`[INFO] ${m}`);
  }
  warn(m: string): void {
    this.lines.push(`[WARNING] ${m}`);
  }
  error(m: string): void {
    this.lines.push(`[ERROR] ${m}`);
  }
}

function query(name: string, id: number): Buffer {
  return dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name, class: 'IN' }] });
}

/** One query from a fresh socket (a new source port, so reusePort may pick any worker). */
function ask(port: number, name: string, timeoutMs = 3000): Promise<dnsPacket.Packet | null> {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    const id = Math.floor(Math.random() * 0xffff);
    const t = setTimeout(() => done(null), timeoutMs);
    const done = (p: dnsPacket.Packet | null) => {
      clearTimeout(t);
      s.close();
      resolve(p);
    };
    s.on('message', (m) => done(dnsPacket.decode(m)));
    s.on('error', () => done(null));
    s.send(query(name, id), port, '127.0.0.1');
  });
}

function firstA(p: dnsPacket.Packet | null): string | null {
  const a = p?.answers?.find((r) => r.type === 'A') as { data?: unknown } | undefined;
  return a ? String(a.data) : null;
}

function get(port: number, urlPath: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: urlPath }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on('error', reject);
  });
}

/** Sum of a metric's samples whose line matches `filter`. */
function metricSum(text: string, name: string, filter = ''): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (!line.includes(filter)) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

function pluginPort(s: Serving, name: string): number {
  for (const b of s.engine.blocks()) for (const p of b.plugins) if (p.name === name) return (p as unknown as { port: number }).port;
  throw new Error(`no ${name} plugin`);
}

function corefile(upstream: ToyUpstream, extra = ''): string {
  return `.:0 {
    bind 127.0.0.1
    cache 30
    forward . ${upstream.addr}
    prometheus 127.0.0.1:0
    ready 127.0.0.1:0
    ${extra}
}
`;
}

async function start(text: string, workers: number, log = new MemoryLogger()): Promise<{ s: Serving; file: string; log: MemoryLogger; port: number }> {
  const file = path.join(dir, `Corefile.${running.length}`);
  writeFileSync(file, text);
  const s = await startServing({ corefilePath: file, defaultBind: ['127.0.0.1'], defaultPort: 53, workers, quiet: true, log });
  running.push(s);
  const port = s.engine.listening()[0]!.port;
  return { s, file, log, port };
}

test('worker count: -workers 0 means the default (one cache per node); N means N', () => {
  assert.equal(resolveWorkerCount(0), DEFAULT_WORKERS);
  assert.equal(DEFAULT_WORKERS, 1);
  assert.equal(resolveWorkerCount(3), 3);
});

test('two workers share one port, both answer, metrics add up and are served once', async () => {
  const up = await ToyUpstream.start();
  upstreams.push(up);
  const { s, port } = await start(corefile(up), 2);
  assert.ok(s.pool !== null);
  assert.equal(s.pool.threadIds().filter((t) => t !== null).length, 2);
  assert.notEqual(port, 0);

  const n = 40;
  const answers = await Promise.all(Array.from({ length: n }, (_, i) => ask(port, `n${i}.example.`)));
  assert.equal(answers.filter((a) => firstA(a) === '192.0.2.1').length, n);

  // Each worker counted some of the queries (40 source ports all hashed to one worker: 2^-39).
  const snaps = await s.pool.snapshots();
  assert.equal(snaps.length, 2);
  const perWorker = snaps.map((snap) => {
    const f = snap.families.find((x) => x.name === 'coredns_dns_requests_total');
    return (f?.samples ?? []).reduce((a, x) => a + x.value, 0);
  });
  assert.ok(
    perWorker.every((c) => c > 0),
    `requests per worker: ${perWorker.join(', ')}`,
  );
  assert.equal(perWorker[0]! + perWorker[1]!, n);

  const metrics = await get(pluginPort(s, 'prometheus'), '/metrics');
  assert.equal(metrics.status, 200);
  assert.equal(metricSum(metrics.body, 'coredns_dns_requests_total'), n);
  assert.equal(metricSum(metrics.body, 'coredns_cache_misses_total'), n);
  assert.equal(metricSum(metrics.body, 'coredns_cache_entries', 'type="success"'), n);
  assert.equal(metricSum(metrics.body, 'coredns_build_info'), 1);
  assert.equal((await get(pluginPort(s, 'ready'), '/ready')).status, 200);
});

test('a killed worker is replaced within a second while its sibling keeps answering', async () => {
  const up = await ToyUpstream.start();
  upstreams.push(up);
  const log = new MemoryLogger();
  const { s, port } = await start(corefile(up), 2, log);
  const pool = s.pool!;
  // Counters seen by a scrape before the crash must not go backwards after it.
  await Promise.all(Array.from({ length: 20 }, (_, i) => ask(port, `before${i}.example.`)));
  const before = metricSum((await get(pluginPort(s, 'prometheus'), '/metrics')).body, 'coredns_dns_requests_total');
  assert.equal(before, 20);

  const [oldId] = pool.threadIds();
  const killedAt = performance.now();
  await pool.kill(0);
  const during = await Promise.all(Array.from({ length: 20 }, (_, i) => ask(port, `during${i}.example.`)));
  assert.equal(during.filter((a) => firstA(a) === '192.0.2.1').length, 20, 'the sibling answers while worker 0 is down');
  await waitFor(() => pool.threadIds()[0] !== null && pool.threadIds()[0] !== oldId && s.engine.isReady(), 5000, 'a new worker 0');
  const replacedMs = performance.now() - killedAt;
  assert.equal(pool.restarts, 1);
  assert.ok(
    log.lines.some((l) => l.includes('worker 0 exited unexpectedly')),
    log.lines.join('\n'),
  );
  await waitFor(() => log.lines.some((l) => l.includes('worker 0 restarted')), 5000, 'restart log line');
  // Generous bound (the machine may be loaded); the pool itself waits RESTART_DELAY_MS-ish.
  assert.ok(replacedMs < 5000, `replaced after ${replacedMs} ms`);

  const afterKill = await Promise.all(Array.from({ length: 20 }, (_, i) => ask(port, `after${i}.example.`)));
  assert.equal(afterKill.filter((a) => firstA(a) === '192.0.2.1').length, 20);
  const total = metricSum((await get(pluginPort(s, 'prometheus'), '/metrics')).body, 'coredns_dns_requests_total');
  assert.ok(total >= before + 40, `requests after the crash: ${total}`);
});

test('a reload reaches every worker; a config that fails to load changes nothing', async () => {
  const up1 = await ToyUpstream.start();
  const up2 = await ToyUpstream.start();
  up2.handler = (q) => q.reply(answerFor(q.msg, { ip: '192.0.2.2' }));
  upstreams.push(up1, up2);
  const { s, file, port } = await start(corefile(up1), 2);
  const first = await Promise.all(Array.from({ length: 10 }, (_, i) => ask(port, `r${i}.example.`)));
  assert.ok(first.every((a) => firstA(a) === '192.0.2.1'));

  writeFileSync(file, corefile(up2).replace('cache 30', ''));
  await s.engine.reload('test');
  const second = await Promise.all(Array.from({ length: 40 }, (_, i) => ask(port, `r${i}.example.`)));
  assert.deepEqual(new Set(second.map(firstA)), new Set(['192.0.2.2']), 'every worker forwards to the new upstream, uncached');

  writeFileSync(file, corefile(up1).replace('cache 30', 'cache 30 bogus-zone-arg-that-is-not-a-zone..'));
  await assert.rejects(s.engine.reload('test'));
  const third = await Promise.all(Array.from({ length: 20 }, (_, i) => ask(port, `x${i}.example.`)));
  assert.ok(
    third.every((a) => firstA(a) === '192.0.2.2'),
    'the previous config keeps serving',
  );
});

test('stop drains every worker: queries in flight are answered, then every worker exits', async () => {
  const up = await ToyUpstream.start();
  upstreams.push(up);
  up.handler = (q) => setTimeout(() => q.reply(answerFor(q.msg, { ip: '192.0.2.1' })), 300);
  const { s, port } = await start(corefile(up), 2);
  const inFlight = Array.from({ length: 20 }, (_, i) => ask(port, `slow${i}.example.`));
  await waitFor(() => up.received.length >= 20, 5000, 'queries at the upstream');
  await s.engine.stop();
  const answers = await Promise.all(inFlight);
  assert.equal(answers.filter((a) => firstA(a) === '192.0.2.1').length, 20);
  assert.deepEqual(s.pool!.threadIds(), [null, null]);
  assert.equal(await ask(port, 'late.example.', 500), null, 'nothing listens after stop');
});
