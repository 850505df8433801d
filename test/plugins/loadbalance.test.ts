/**
 * loadbalance end to end: the real agent forwarding to Knot (which answers in zone order),
 * queried with dig. Record order varies between answers with loadbalance and not without it;
 * CNAME chains stay first and in order; MX answers (whose glue names point into the MX records)
 * are reordered with the glue intact; cache hits are reordered too (loadbalance is before cache);
 * prefer puts preferred subnets first; coredns_plugin_enabled lists it.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { dig, startAgent, startKnot, freeEndpoint, runToExit, type AgentProcess, type Authority, type DigResult } from '../engine/harness.ts';
import { scrape, metricSum } from '../fault/lib/agent.ts';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { LB_ZONE, EXAMPLE_COM, topCounts } from './lib/lb-zone.ts';

let knot: Authority;
const agents: AgentProcess[] = [];

before(async () => {
  knot = await startKnot({ 'lb.test': LB_ZONE, 'example.com': EXAMPLE_COM });
});

after(async () => {
  for (const a of agents) await a.stop();
  await knot?.stop();
});

async function agent(body: string): Promise<{ host: string; port: number; metrics: { host: string; port: number } }> {
  const { host, port } = await freeEndpoint();
  const metrics = await freeEndpoint(host);
  agents.push(await startAgent(`lb.test:${port} example.com:${port} {\n    bind ${host}\n    prometheus ${metrics.host}:${metrics.port}\n${body}\n}\n`));
  return { host, port, metrics };
}

async function many(a: { host: string; port: number }, args: string[], n: number): Promise<DigResult[]> {
  const out: DigResult[] = [];
  for (let i = 0; i < n; i++) out.push(await dig(a.host, a.port, args));
  return out;
}

const datas = (r: DigResult) => r.answer.map((x) => `${x.type} ${x.data}`);

test('A and AAAA: every answer holds the whole RRset, the order varies; Knot alone always gives one order', async () => {
  const a = await agent(`    loadbalance\n    forward . ${knot.addr}`);
  for (const [type, count] of [
    ['A', 6],
    ['AAAA', 4],
  ] as const) {
    const rs = await many(a, ['multi.lb.test.', type], 30);
    const firsts = new Set(rs.map((r) => r.answer[0]!.data));
    for (const r of rs) {
      assert.equal(r.status, 'NOERROR');
      assert.equal(r.answer.length, count);
      assert.deepEqual([...datas(r)].sort(), [...datas(rs[0]!)].sort());
    }
    assert.ok(firsts.size >= 3, `${type}: ${[...firsts]}`);
  }
  const direct = await many(knot, ['multi.lb.test.', 'A'], 10);
  assert.equal(new Set(direct.map((r) => datas(r).join())).size, 1, 'the upstream does not shuffle');
  const b = await agent(`    forward . ${knot.addr}`);
  const plain = await many(b, ['multi.lb.test.', 'A'], 10);
  assert.equal(new Set(plain.map((r) => datas(r).join())).size, 1, "without loadbalance the order is the upstream's");
  const m = await scrape(a.metrics.host, a.metrics.port);
  assert.equal(metricSum(m, 'coredns_plugin_enabled', { name: 'loadbalance', zone: 'lb.test.' }), 1);
  assert.equal(metricSum(await scrape(b.metrics.host, b.metrics.port), 'coredns_plugin_enabled', { name: 'loadbalance' }), 0);
});

test('CNAME chain stays first and in order; the addresses behind it are shuffled', async () => {
  const a = await agent(`    loadbalance round_robin\n    forward . ${knot.addr}`);
  const rs = await many(a, ['chain.lb.test.', 'A'], 25);
  const firsts = new Set<string>();
  for (const r of rs) {
    assert.deepEqual(
      r.answer.slice(0, 2).map((x) => `${x.name} ${x.type} ${x.data}`),
      ['chain.lb.test. CNAME alias.lb.test.', 'alias.lb.test. CNAME multi.lb.test.'],
    );
    assert.equal(r.answer.length, 8);
    assert.ok(r.answer.slice(2).every((x) => x.name === 'multi.lb.test.' && x.type === 'A'));
    firsts.add(r.answer[2]!.data);
  }
  assert.ok(firsts.size >= 3);
});

test('MX: order varies, the additional glue still names the exchanges right', async () => {
  const a = await agent(`    loadbalance\n    forward . ${knot.addr}`);
  const rs = await many(a, ['lb.test.', 'MX'], 25);
  const orders = new Set<string>();
  for (const r of rs) {
    assert.deepEqual(r.answer.map((x) => x.data).sort(), ['10 mx1.lb.test.', '20 mx2.lb.test.', '30 mx3.lb.test.']);
    orders.add(r.answer.map((x) => x.data).join());
    const glue = r.additional
      .filter((x) => x.type === 'A')
      .map((x) => `${x.name} ${x.data}`)
      .sort();
    assert.deepEqual(glue, ['mx1.lb.test. 192.0.2.101', 'mx2.lb.test. 192.0.2.102', 'mx3.lb.test. 192.0.2.103']);
  }
  assert.ok(orders.size >= 3, [...orders].join(' | '));
  // Other types and single records pass as they are; NXDOMAIN too.
  assert.deepEqual(
    (await dig(a.host, a.port, ['lb.test.', 'TXT'])).answer.map((x) => x.data),
    ['"not shuffled"'],
  );
  assert.equal((await dig(a.host, a.port, ['nope.lb.test.', 'A'])).status, 'NXDOMAIN');
});

test('with cache: hits are reordered as well (loadbalance is before cache)', async () => {
  const a = await agent(`    loadbalance\n    cache 300\n    forward . ${knot.addr}`);
  const rs = await many(a, ['multi.lb.test.', 'A', '+bufsize=1232'], 30);
  const m = await scrape(a.metrics.host, a.metrics.port);
  assert.ok(metricSum(m, 'coredns_cache_hits_total') >= 29, 'answered from the cache');
  assert.equal(metricSum(m, 'coredns_cache_misses_total'), 1);
  const firsts = new Set(rs.slice(1).map((r) => r.answer[0]!.data));
  assert.ok(firsts.size >= 3, `hits start with ${[...firsts]}`);
  for (const r of rs) assert.equal(r.answer.length, 6);
});

test('prefer: addresses inside the preferred subnets come first, in subnet order', async () => {
  const a = await agent(`    loadbalance round_robin {\n        prefer 192.0.2.5/32 192.0.2.2/32\n    }\n    forward . ${knot.addr}`);
  const rs = await many(a, ['multi.lb.test.', 'A'], 15);
  const thirds = new Set<string>();
  for (const r of rs) {
    assert.deepEqual(
      r.answer.slice(0, 2).map((x) => x.data),
      ['192.0.2.5', '192.0.2.2'],
    );
    thirds.add(r.answer[2]!.data);
  }
  assert.ok(thirds.size >= 2, 'the rest still shuffled');
});

test('weighted: the weight file decides the top record, a changed file is picked up on reload, cache hits are weighted too', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'nld-lbw-'));
  try {
    const wf = path.join(dir, 'weights');
    writeFileSync(wf, 'www.example.com\n100.64.1.1 255\n');
    const a = await agent(`    loadbalance weighted ${wf} {\n        reload 1s\n    }\n    cache 300\n    forward . ${knot.addr}`);
    const first = await topCounts(a.host, a.port, 'www.example.com', 100);
    // 255 / 257 for 100.64.1.1 (the two others weigh 1).
    assert.ok((first.get('100.64.1.1') ?? 0) >= 92, [...first].join());
    writeFileSync(wf, '# changed\nwww.example.com\n100.64.1.3 255\n');
    await new Promise((r) => setTimeout(r, 2500));
    const second = await topCounts(a.host, a.port, 'www.example.com', 100);
    assert.ok((second.get('100.64.1.3') ?? 0) >= 92, [...second].join());
    const m = await scrape(a.metrics.host, a.metrics.port);
    assert.ok(metricSum(m, 'coredns_cache_hits_total') >= 199, 'all but the first from the cache');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('weighted: a weight file that does not parse stops the start; a missing one without reload too', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'nld-lbw-'));
  try {
    writeFileSync(path.join(dir, 'bad'), '100.64.1.1 3\n');
    for (const [file, reload, want] of [
      [path.join(dir, 'bad'), '10s', /missing domain name in weight file/],
      [path.join(dir, 'missing'), '0s', /weight file open error/],
    ] as const) {
      const { host, port } = await freeEndpoint();
      writeFileSync(
        path.join(dir, 'Corefile'),
        `.:${port} {\n    bind ${host}\n    loadbalance weighted ${file} {\n        reload ${reload}\n    }\n    forward . ${knot.addr}\n}\n`,
      );
      const r = await runToExit(['-conf', path.join(dir, 'Corefile')]);
      assert.notEqual(r.code, 0);
      assert.match(r.stdout + r.stderr, want);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
