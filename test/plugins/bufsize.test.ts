/**
 * bufsize end to end: the real agent between dig and (a) a capturing toy upstream, which shows
 * the EDNS payload size forward sent on, and (b) NSD, which truncates to the size it was asked
 * for. Also: cache hits see the lowered size (bufsize is before cache), the client's UDP limit
 * is the lowered size, coredns_plugin_enabled lists it.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { dig, startAgent, freeEndpoint, type AgentProcess } from '../engine/harness.ts';
import { scrape, metricSum } from '../fault/lib/agent.ts';
import { startNsd, type RunningServer } from '../forward/servers.ts';
import { startToyUpstream, type ToyUpstream } from './lib/toy-upstream.ts';
import { parseRR } from '../../src/wire/codec.ts';

let toy: ToyUpstream;
let nsd: RunningServer;
const agents: AgentProcess[] = [];

before(async () => {
  [toy, nsd] = await Promise.all([
    startToyUpstream((q) => {
      const name = q.question[0]!.name;
      // ~1500 bytes of TXT for big.*, one A otherwise.
      if (name.startsWith('big.')) return [parseRR(`${name} 300 IN TXT ${Array.from({ length: 6 }, () => `"${'x'.repeat(250)}"`).join(' ')}`)];
      return [parseRR(`${name} 300 IN A 192.0.2.1`)];
    }),
    startNsd(),
  ]);
});

after(async () => {
  for (const a of agents) await a.stop();
  await Promise.all([toy?.stop(), nsd?.stop()]);
});

async function agent(body: string): Promise<{ host: string; port: number; metrics: { host: string; port: number } }> {
  const { host, port } = await freeEndpoint();
  const metrics = await freeEndpoint(host);
  const a = await startAgent(`.:${port} {\n    bind ${host}\n    prometheus ${metrics.host}:${metrics.port}\n${body}\n}\n`);
  agents.push(a);
  return { host, port, metrics };
}

function lastToyQuerySize(name: string): number | null {
  const q = [...toy.queries].reverse().find((m) => m.question[0]?.name === name);
  assert.ok(q, `toy upstream saw ${name}`);
  return q.edns === null ? null : q.edns.udpSize;
}

test('upstream receives the lowered size; smaller sizes and queries without EDNS unchanged; plugin_enabled', async () => {
  const a = await agent(`    bufsize 1100\n    forward . ${toy.addr}`);
  const cases: [string, string[], number | null][] = [
    ['s4096.example.', ['+bufsize=4096'], 1100],
    ['s1232.example.', ['+bufsize=1232'], 1100],
    ['s1100.example.', ['+bufsize=1100'], 1100],
    ['s1000.example.', ['+bufsize=1000'], 1000],
    ['s512.example.', ['+bufsize=512'], 512],
    ['noedns.example.', ['+noedns'], null],
    ['tcp.example.', ['+tcp', '+bufsize=4096'], 1100],
  ];
  for (const [name, args, want] of cases) {
    const r = await dig(a.host, a.port, [name, 'A', ...args]);
    assert.equal(r.status, 'NOERROR', name);
    assert.equal(r.answer[0]?.data, '192.0.2.1', name);
    assert.equal(lastToyQuerySize(name), want, name);
  }
  const m = await scrape(a.metrics.host, a.metrics.port);
  assert.equal(metricSum(m, 'coredns_plugin_enabled', { name: 'bufsize' }), 1);
});

test('default size is 1232; without the plugin forward passes the client size on (control)', async () => {
  const a = await agent(`    bufsize\n    forward . ${toy.addr}`);
  await dig(a.host, a.port, ['d4096.example.', 'A', '+bufsize=4096']);
  assert.equal(lastToyQuerySize('d4096.example.'), 1232);
  const b = await agent(`    forward . ${toy.addr}`);
  await dig(b.host, b.port, ['c4096.example.', 'A', '+bufsize=4096']);
  assert.equal(lastToyQuerySize('c4096.example.'), 4096);
  const m = await scrape(b.metrics.host, b.metrics.port);
  assert.equal(metricSum(m, 'coredns_plugin_enabled', { name: 'bufsize' }), 0);
});

test('NSD answers the lowered size: a 1.5 kB TXT comes back truncated over UDP, whole without bufsize', async () => {
  const a = await agent(`    bufsize 1232\n    forward . ${nsd.addr}`);
  const r = await dig(a.host, a.port, ['big.example.test.', 'TXT', '+bufsize=4096', '+ignore']);
  assert.ok(r.flags.includes('tc'), `flags ${r.flags}`);
  assert.equal(r.answer.length, 0);
  // dig retrying over TCP gets it whole (TCP through forward).
  const t = await dig(a.host, a.port, ['big.example.test.', 'TXT', '+bufsize=4096']);
  assert.equal(t.answer.length, 1);
  const b = await agent(`    forward . ${nsd.addr}`);
  const u = await dig(b.host, b.port, ['big.example.test.', 'TXT', '+bufsize=4096', '+ignore']);
  assert.ok(!u.flags.includes('tc'));
  assert.equal(u.answer.length, 1);
  assert.equal(u.proto, 'UDP');
});

test('with cache: hits advertise the lowered size and are cut to it for the client over UDP', async () => {
  const a = await agent(`    bufsize 1100\n    cache 300\n    forward . ${toy.addr}`);
  // The toy upstream ignores the size and sends ~1.5 kB: the agent cuts it to 1100 for the client.
  const miss = await dig(a.host, a.port, ['big.cached.', 'TXT', '+bufsize=4096', '+ignore']);
  assert.ok(miss.flags.includes('tc'), 'miss cut to the lowered size');
  const seen = toy.queries.length;
  const hit = await dig(a.host, a.port, ['big.cached.', 'TXT', '+bufsize=4096', '+ignore']);
  assert.equal(toy.queries.length, seen, 'second answer came from the cache');
  assert.ok(hit.flags.includes('tc'), 'hit cut to the lowered size');
  assert.ok(hit.size <= 1100, `${hit.size}`);
  const tcp = await dig(a.host, a.port, ['big.cached.', 'TXT', '+tcp']);
  assert.equal(tcp.answer.length, 1, 'the cache holds the whole answer');
  // A small answer: the hit's OPT advertises the lowered size.
  await dig(a.host, a.port, ['www.cached.', 'A', '+bufsize=4096']);
  const h2 = await dig(a.host, a.port, ['www.cached.', 'A', '+bufsize=4096']);
  assert.equal(h2.edns?.udp, 1100);
  assert.equal(h2.answer[0]?.data, '192.0.2.1');
  const m = await scrape(a.metrics.host, a.metrics.port);
  assert.ok(metricSum(m, 'coredns_cache_hits_total') >= 2);
});
