/**
 * rewrite end to end: the real agent (`node src/main.ts`), a real Knot DNS upstream that serves
 * only `new.test` (NSID and EDNS Client Subnet answering on), queried with dig over UDP and TCP.
 *
 *  - the domain move `rewrite name suffix .old.test .new.test answer auto`: the client asks
 *    x.old.test and gets question and answer names under old.test (Knot itself refuses old.test);
 *  - cache ahead of rewrite (CoreDNS's plugin order, whatever the line order: the Corefile lists
 *    rewrite first): the second ask is a cache hit under the client's name (forward not asked
 *    again), answered with the rewritten-back names;
 *  - type and TTL rules, EDNS(0) options reaching Knot (NSID, ECS echoed back) and `revert`;
 *  - metrics: rewrite has none in CoreDNS and none here; it is listed in coredns_plugin_enabled.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { dig, freeEndpoint, startAgent, startKnot, type AgentProcess, type Authority, type DigResult } from '../engine/harness.ts';
import { freeAddress } from '../lib/net.ts';
import { metricSum, scrape } from '../fault/lib/agent.ts';
import { NEW_TEST } from './lib/rewrite-zones.ts';

let knot: Authority;
let agent: AgentProcess;
let host: string;
let port: number;
let metrics: { host: string; port: number };

before(async () => {
  knot = await startKnot({ 'new.test': NEW_TEST }, { nsid: 'knot-rw', ecs: true });
  ({ host, port } = await freeEndpoint());
  metrics = await freeAddress(host);
  const fwd = `forward . ${knot.addr}`;
  // The domain move is the root block: new.test names reach it too (cache keys, see below).
  agent = await startAgent(`.:${port} {
    bind ${host}
    errors
    prometheus ${metrics.host}:${metrics.port}
    rewrite name suffix .old.test .new.test answer auto
    cache 30
    ${fwd}
}
plain.test:${port} {
    bind ${host}
    errors
    rewrite name suffix .plain.test .new.test
    ${fwd}
}
opts.test:${port} {
    bind ${host}
    errors
    rewrite continue edns0 nsid set
    rewrite continue edns0 subnet set 24 56
    rewrite name suffix .opts.test .new.test answer auto
    ${fwd}
}
revert.test:${port} {
    bind ${host}
    errors
    rewrite continue edns0 subnet set 24 56 revert
    rewrite name suffix .revert.test .new.test answer auto
    ${fwd}
}
type.test:${port} {
    bind ${host}
    errors
    prometheus ${metrics.host}:${metrics.port}
    rewrite continue type AAAA A
    rewrite name suffix .type.test .new.test answer auto
    ${fwd}
}
ttl.test:${port} {
    bind ${host}
    errors
    rewrite continue ttl suffix ttl.test 30-3600
    rewrite name suffix .ttl.test .new.test answer auto
    ${fwd}
}
`);
});

after(async () => {
  const code = await agent?.stop();
  await knot?.stop();
  assert.equal(code, 0, `agent exit status; output:\n${agent?.output()}`);
});

function q(...args: string[]): Promise<DigResult> {
  return dig(host, port, args);
}

function rows(r: DigResult): string[] {
  return r.answer.map((a) => `${a.name} ${a.type} ${a.data}`);
}

test('Knot serves new.test only: old.test is refused there', async () => {
  const direct = await dig(knot.host, knot.port, ['x.old.test', 'A', '+norec']);
  assert.equal(direct.status, 'REFUSED');
  const moved = await dig(knot.host, knot.port, ['x.new.test', 'A', '+norec']);
  assert.deepEqual(rows(moved), ['x.new.test. A 192.0.2.10']);
});

test('domain move: x.old.test answered from new.test with question and answer names under old.test', async () => {
  const r = await q('x.old.test', 'A');
  assert.equal(r.status, 'NOERROR');
  assert.match(r.question[0]!, /^x\.old\.test\.\s+IN\s+A$/);
  assert.deepEqual(rows(r), ['x.old.test. A 192.0.2.10']);
  assert.ok(r.flags.includes('aa'), 'Knot is authoritative for the new name');
  assert.doesNotMatch(r.raw, /new\.test/);

  const tcp = await q('x.old.test', 'AAAA', '+tcp');
  assert.equal(tcp.proto, 'TCP');
  assert.match(tcp.question[0]!, /^x\.old\.test\.\s+IN\s+AAAA$/);
  assert.deepEqual(rows(tcp), ['x.old.test. AAAA 2001:db8::10']);
});

test('domain move: CNAME, MX and SRV targets are mapped back too; the client spelling of the question stays', async () => {
  const cname = await q('Alias.OLD.test', 'A');
  assert.match(cname.question[0]!, /^Alias\.OLD\.test\.\s+IN\s+A$/);
  assert.deepEqual(
    rows(cname).map((s) => s.toLowerCase()),
    ['alias.old.test. cname x.old.test.', 'x.old.test. a 192.0.2.10'],
  );
  const mx = await q('mail.old.test', 'MX');
  assert.deepEqual(rows(mx), ['mail.old.test. MX 10 mx.old.test.']);
  const srv = await q('_sip._udp.old.test', 'SRV');
  assert.deepEqual(rows(srv), ['_sip._udp.old.test. SRV 0 5 5060 sip.old.test.']);
  const nx = await q('nothere.old.test', 'A');
  assert.equal(nx.status, 'NXDOMAIN');
  assert.match(nx.question[0]!, /^nothere\.old\.test\.\s+IN\s+A$/);
  // The SOA owner is new.test. itself: `.new.test.` as a suffix does not match it (as in CoreDNS).
  assert.deepEqual(
    nx.authority.map((a) => `${a.name} ${a.type}`),
    ['new.test. SOA'],
  );
});

test('without answer rules the question is still the client one, the answer names are the new ones', async () => {
  const r = await q('x.plain.test', 'A');
  assert.equal(r.status, 'NOERROR');
  assert.match(r.question[0]!, /^x\.plain\.test\.\s+IN\s+A$/);
  assert.deepEqual(rows(r), ['x.new.test. A 192.0.2.10']);
});

test('cache ahead of rewrite: the second ask is a hit under the client name, forward is not asked again', async () => {
  const name = 'short.old.test';
  const before = await scrape(metrics.host, metrics.port);
  const fwdBefore = metricSum(before, 'coredns_forward_requests_total');
  const hitsBefore = metricSum(before, 'coredns_cache_hits_total');
  const first = await q(name, 'A');
  assert.deepEqual(rows(first), ['short.old.test. A 192.0.2.11']);
  const second = await q('SHORT.old.test', 'A');
  assert.match(second.question[0]!, /^SHORT\.old\.test\.\s+IN\s+A$/);
  assert.deepEqual(
    rows(second).map((s) => s.toLowerCase()),
    ['short.old.test. a 192.0.2.11'],
  );
  const afterScrape = await scrape(metrics.host, metrics.port);
  assert.equal(metricSum(afterScrape, 'coredns_forward_requests_total') - fwdBefore, 1, 'one upstream query for two asks');
  assert.equal(metricSum(afterScrape, 'coredns_cache_hits_total') - hitsBefore, 1);
  // Knot's TTL (5 s) went through rewrite untouched and capped the cache entry.
  assert.ok(second.answer[0]!.ttl <= 5);
});

test('cache keys are the client names: the new name after an old-name answer is a miss (rewrite after cache)', async () => {
  const fwd = async (): Promise<number> => metricSum(await scrape(metrics.host, metrics.port), 'coredns_forward_requests_total');
  const start = await fwd();
  assert.deepEqual(rows(await q('long.old.test', 'A')), ['long.old.test. A 192.0.2.12']);
  assert.equal((await fwd()) - start, 1);
  // Were rewrite ahead of cache, long.old.test would have been stored as long.new.test and this a hit.
  assert.deepEqual(rows(await q('long.new.test', 'A')), ['long.new.test. A 192.0.2.12']);
  assert.equal((await fwd()) - start, 2);
  assert.deepEqual(rows(await q('long.old.test', 'A')), ['long.old.test. A 192.0.2.12']);
  assert.equal((await fwd()) - start, 2, 'the old name again: a hit');
});

test('type rule: an AAAA question is asked as A upstream and answered under the client question', async () => {
  const r = await q('x.type.test', 'AAAA');
  assert.equal(r.status, 'NOERROR');
  assert.match(r.question[0]!, /^x\.type\.test\.\s+IN\s+AAAA$/);
  assert.deepEqual(rows(r), ['x.type.test. A 192.0.2.10']);
});

test('ttl rule with a range: 5 s raised to 30, 86400 s lowered to 3600, 300 s kept', async () => {
  assert.equal((await q('short.ttl.test', 'A')).answer[0]!.ttl, 30);
  assert.equal((await q('long.ttl.test', 'A')).answer[0]!.ttl, 3600);
  assert.equal((await q('x.ttl.test', 'A')).answer[0]!.ttl, 300);
});

test('edns0 nsid and subnet reach Knot: its NSID and the echoed client subnet come back', async () => {
  const r = await q('x.opts.test', 'A');
  assert.deepEqual(rows(r), ['x.opts.test. A 192.0.2.10']);
  assert.match(r.raw, /; NSID: .*\("knot-rw"\)/);
  // The client is 127.0.0.1 (dig binds no address): /24 of it.
  assert.match(r.raw, /; CLIENT-SUBNET: 127\.0\.0\.0\/24\/0/);
  // A client without EDNS gets no OPT back, though rewrite added one upstream.
  const plain = await q('x.opts.test', 'A', '+noedns');
  assert.equal(plain.edns, null);
  assert.deepEqual(rows(plain), ['x.opts.test. A 192.0.2.10']);
});

test('edns0 revert: the subnet option rewrite added is not in the response', async () => {
  const r = await q('x.revert.test', 'A');
  assert.deepEqual(rows(r), ['x.revert.test. A 192.0.2.10']);
  assert.ok(r.edns !== null);
  assert.doesNotMatch(r.raw, /CLIENT-SUBNET/);
});

test('metrics: CoreDNS rewrite has none and neither has ours; rewrite is an enabled plugin of its zones', async () => {
  const fams = await scrape(metrics.host, metrics.port);
  assert.deepEqual(
    [...fams.keys()].filter((n) => n.includes('rewrite')),
    [],
  );
  assert.equal(metricSum(fams, 'coredns_plugin_enabled', { name: 'rewrite', zone: '.' }), 1);
  // The request metrics count the client's own question type (see README deviations).
  const typed = (f: typeof fams, type: string): number => metricSum(f, 'coredns_dns_requests_total', { zone: 'type.test.', type });
  await q('x.type.test', 'AAAA');
  const after = await scrape(metrics.host, metrics.port);
  assert.equal(typed(after, 'AAAA') - typed(fams, 'AAAA'), 1);
  assert.equal(typed(after, 'A') - typed(fams, 'A'), 0);
});
