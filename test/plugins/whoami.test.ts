/**
 * whoami end to end: the real agent, dig (bound to a known source address and port) over UDP
 * and TCP, IPv4 and IPv6 loopback. In the same block forward sends lb.test to Knot, except
 * who.test, which falls through to whoami (last in the order). Also: its answer is cached by
 * `cache` (CoreDNS's order puts cache first; the TTL-0 answer is kept for the 5 s minimum TTL),
 * and coredns_dns_responses_total counts it under plugin="whoami".
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { dig, startAgent, startKnot, freeEndpoint, type AgentProcess, type Authority } from '../engine/harness.ts';
import { scrape, metricSum } from '../fault/lib/agent.ts';
import { portFree } from '../lib/net.ts';
import { LB_ZONE } from './lib/lb-zone.ts';

let knot: Authority;
const agents: AgentProcess[] = [];

before(async () => {
  knot = await startKnot({ 'lb.test': LB_ZONE });
});

after(async () => {
  for (const a of agents) await a.stop();
  await knot?.stop();
});

async function agent(body: string, extraBind = ''): Promise<{ host: string; port: number; metrics: { host: string; port: number } }> {
  const { host, port } = await freeEndpoint();
  const metrics = await freeEndpoint(host);
  agents.push(await startAgent(`.:${port} {\n    bind ${host} ${extraBind}\n    prometheus ${metrics.host}:${metrics.port}\n${body}\n}\n`));
  return { host, port, metrics };
}

/** A source port free for UDP and TCP on 127.0.0.1. */
async function sourcePort(): Promise<number> {
  for (;;) {
    const p = 20000 + Math.floor(Math.random() * 30000);
    if (await portFree('127.0.0.1', p)) return p;
  }
}

test('UDP and TCP, IPv4 and IPv6: the client address and source port in the additional section', async () => {
  const a = await agent(`    forward . ${knot.addr} {\n        except who.test\n    }\n    whoami`, '::1');
  const p1 = await sourcePort();
  const u = await dig(a.host, a.port, ['-b', `127.0.0.1#${p1}`, 'Who.Test.', 'A']);
  assert.equal(u.status, 'NOERROR');
  assert.ok(u.flags.includes('aa'));
  assert.equal(u.answer.length, 0);
  assert.deepEqual(
    u.additional.map((r) => `${r.name} ${r.ttl} ${r.class} ${r.type} ${r.data}`),
    ['Who.Test. 0 IN A 127.0.0.1', `_udp.Who.Test. 0 IN SRV 0 0 ${p1} .`],
  );
  const p2 = await sourcePort();
  const t = await dig(a.host, a.port, ['-b', `127.0.0.1#${p2}`, '+tcp', 'x.who.test.', 'TXT']);
  assert.equal(t.proto, 'TCP');
  assert.deepEqual(
    t.additional.map((r) => `${r.name} ${r.type} ${r.data}`),
    ['x.who.test. A 127.0.0.1', `_tcp.x.who.test. SRV 0 0 ${p2} .`],
  );
  const v6 = await dig('::1', a.port, ['who.test.', 'AAAA']);
  assert.equal(v6.additional[0]!.type, 'AAAA');
  assert.equal(v6.additional[0]!.data, '::1');
  assert.match(v6.additional[1]!.data, /^0 0 \d+ \.$/);
  // EDNS mirrored.
  const e = await dig(a.host, a.port, ['+bufsize=1400', 'who.test.', 'A']);
  assert.equal(e.edns?.udp, 1400);
  // The rest of the block still goes to the upstream.
  const fwd = await dig(a.host, a.port, ['single.lb.test.', 'A']);
  assert.deepEqual(
    fwd.answer.map((r) => r.data),
    ['192.0.2.99'],
  );
  assert.equal(fwd.additional.length, 0);
  const m = await scrape(a.metrics.host, a.metrics.port);
  assert.equal(metricSum(m, 'coredns_dns_responses_total', { plugin: 'whoami', rcode: 'NOERROR' }), 4);
  assert.equal(metricSum(m, 'coredns_dns_responses_total', { plugin: 'forward', rcode: 'NOERROR' }), 1);
  // One per server of the block (the IPv4 and the IPv6 listener).
  assert.equal(metricSum(m, 'coredns_plugin_enabled', { name: 'whoami', server: `dns://${a.host}:${a.port}` }), 1);
  assert.equal(metricSum(m, 'coredns_plugin_enabled', { name: 'whoami', server: `dns://[::1]:${a.port}` }), 1);
});

test("with cache: the answer is cached for the 5 s minimum TTL, so a second client sees the first one's port", async () => {
  const a = await agent('    cache 300\n    whoami');
  const p1 = await sourcePort();
  const first = await dig(a.host, a.port, ['-b', `127.0.0.1#${p1}`, 'who.test.', 'A']);
  assert.equal(first.additional[1]!.data, `0 0 ${p1} .`);
  const p2 = await sourcePort();
  const second = await dig(a.host, a.port, ['-b', `127.0.0.1#${p2}`, 'who.test.', 'A']);
  assert.equal(second.additional[1]!.data, `0 0 ${p1} .`, 'served from the cache');
  const m = await scrape(a.metrics.host, a.metrics.port);
  assert.equal(metricSum(m, 'coredns_cache_hits_total'), 1);
  assert.equal(metricSum(m, 'coredns_dns_responses_total', { plugin: 'whoami' }), 1);
  assert.equal(metricSum(m, 'coredns_dns_responses_total', { plugin: 'cache' }), 1);
});
