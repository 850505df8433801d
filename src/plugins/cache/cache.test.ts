import { test } from 'node:test';
import assert from 'node:assert/strict';
import dnsPacket from 'dns-packet';
import type { Answer } from 'dns-packet';
import { Proto, type Request } from '../../server/request.ts';
import { Rcode } from '../../wire/codes.ts';
import { CachePlugin } from './cache.ts';
import type { Entry, EntryStore } from './store.ts';
import { ToyNext, TestClock, cacheFrom, ask, makeResponse, makeQuery, a, soa } from '../../../test/lib/cache-testing.ts';

/** An upstream answering A queries with one record of the given TTL. */
function upstreamA(ttl: number, addr = '192.0.2.1'): ToyNext {
  return new ToyNext((req) => makeResponse(req, { answers: [a(req.name().slice(0, -1), ttl, addr)] }));
}

function setup(corefileBody: string, next: ToyNext, zones: string[] = ['.']) {
  const clock = new TestClock();
  const cache = cacheFrom(`. {\n${corefileBody}\n}\n`, clock, zones);
  const handler = cache.compose(next);
  return { clock, cache, handler };
}

function answerTtls(resp: dnsPacket.DecodedPacket): number[] {
  return [...(resp.answers ?? []), ...(resp.authorities ?? [])].map((r) => (r as { ttl: number }).ttl);
}

test('a miss goes upstream and is stored; a hit is answered from the cache with the client ID', () => {
  const next = upstreamA(300);
  const { cache, handler } = setup('cache', next);
  const first = ask(handler, 'example.org', 'A', { id: 1 });
  assert.equal(first.req.respondedBy, 'toy');
  assert.equal(next.calls.length, 1);
  const second = ask(handler, 'example.org', 'A', { id: 777 });
  assert.equal(second.req.respondedBy, 'cache');
  assert.equal(next.calls.length, 1);
  assert.equal(second.resp.id, 777);
  assert.equal(second.resp.type, 'response');
  assert.equal(second.resp.flag_aa, true);
  assert.equal(second.resp.flag_rd, true);
  assert.equal(second.resp.flag_ra, true);
  assert.equal(second.resp.rcode, 'NOERROR');
  assert.deepEqual(
    second.resp.answers!.map((r) => (r as { data: string }).data),
    ['192.0.2.1'],
  );
  assert.equal(cache.requests, 2);
  assert.equal(cache.misses, 1);
  assert.equal(cache.hitsSuccess, 1);
  assert.equal(cache.entries('success'), 1);
});

test('TTLs age on hits in whole seconds, and the entry expires when the TTL reaches 0', () => {
  const next = upstreamA(300);
  const { clock, handler } = setup('cache', next);
  ask(handler, 'age.example');
  clock.advance(10_500);
  assert.deepEqual(answerTtls(ask(handler, 'age.example').resp), [290]);
  clock.advance(289_000);
  assert.deepEqual(answerTtls(ask(handler, 'age.example').resp), [1]);
  assert.equal(next.calls.length, 1);
  clock.advance(1_000);
  const r = ask(handler, 'age.example');
  assert.equal(r.req.respondedBy, 'toy');
  assert.equal(next.calls.length, 2);
});

test('TTL cap: max TTL of `cache 30`, and the default 3600 cap even with a larger TTL', () => {
  const n1 = upstreamA(7200);
  const s1 = setup('cache 30', n1);
  // The miss itself carries the cached duration (CoreDNS rewrites the TTLs it passes on).
  assert.deepEqual(answerTtls(ask(s1.handler, 'cap.example').resp), [30]);
  assert.deepEqual(answerTtls(ask(s1.handler, 'cap.example').resp), [30]);

  const n2 = upstreamA(86400);
  const s2 = setup('cache 86400', n2);
  assert.deepEqual(answerTtls(ask(s2.handler, 'cap.example').resp), [3600]);
});

test('TTL floor: a record TTL below MINTTL is cached for MINTTL', () => {
  const next = upstreamA(1);
  const { clock, handler } = setup('cache', next);
  assert.deepEqual(answerTtls(ask(handler, 'floor.example').resp), [5]);
  clock.advance(4_000);
  const r = ask(handler, 'floor.example');
  assert.equal(r.req.respondedBy, 'cache');
  assert.deepEqual(answerTtls(r.resp), [1]);
  clock.advance(1_000);
  ask(handler, 'floor.example');
  assert.equal(next.calls.length, 2);
});

test('TTL 0 with MINTTL 0 is not cached; with the default MINTTL it is cached for 5 s', () => {
  const n1 = upstreamA(0);
  const s1 = setup('cache {\n success 9984 3600 0\n}', n1);
  assert.deepEqual(answerTtls(ask(s1.handler, 'zero.example').resp), [0]);
  ask(s1.handler, 'zero.example');
  assert.equal(n1.calls.length, 2);
  assert.equal(s1.cache.entries('success'), 0);

  const n2 = upstreamA(0);
  const s2 = setup('cache', n2);
  ask(s2.handler, 'zero.example');
  assert.deepEqual(answerTtls(ask(s2.handler, 'zero.example').resp), [5]);
  assert.equal(n2.calls.length, 1);
});

test('the smallest record TTL of all sections sets the duration', () => {
  const next = new ToyNext((req) =>
    makeResponse(req, {
      answers: [a('multi.example', 300), a('multi.example', 120, '192.0.2.2')],
      additionals: [a('ns.multi.example', 60, '192.0.2.53')],
    }),
  );
  const { handler } = setup('cache', next);
  ask(handler, 'multi.example');
  const r = ask(handler, 'multi.example').resp;
  assert.deepEqual(
    r.answers!.map((x) => (x as { ttl: number }).ttl),
    [60, 60],
  );
  assert.equal(r.additionals!.filter((x) => x.type === 'A').length, 1);
});

test('RFC 2308: NXDOMAIN and NODATA are cached as denial for min(SOA TTL, SOA MINIMUM)', () => {
  const next = new ToyNext((req) =>
    makeResponse(req, {
      rcode: req.qtype === 28 ? Rcode.NOERROR : Rcode.NXDOMAIN,
      authorities: [soa('example', 300, 60)],
    }),
  );
  const { clock, cache, handler } = setup('cache', next);
  const nx = ask(handler, 'nx.example', 'A');
  assert.equal(nx.resp.rcode, 'NXDOMAIN');
  assert.deepEqual(answerTtls(nx.resp), [60]);
  const nodata = ask(handler, 'nodata.example', 'AAAA');
  assert.equal(nodata.resp.rcode, 'NOERROR');
  assert.equal(cache.entries('denial'), 2);
  clock.advance(30_000);
  const hit = ask(handler, 'nx.example', 'A');
  assert.equal(hit.req.respondedBy, 'cache');
  assert.equal(hit.resp.rcode, 'NXDOMAIN');
  assert.deepEqual(answerTtls(hit.resp), [30]);
  const hit2 = ask(handler, 'nodata.example', 'AAAA');
  assert.equal(hit2.req.respondedBy, 'cache');
  assert.equal(hit2.resp.answers!.length, 0);
  assert.equal(cache.hitsDenial, 2);
  assert.equal(next.calls.length, 2);
  clock.advance(30_000);
  ask(handler, 'nx.example', 'A');
  assert.equal(next.calls.length, 3);
});

test('denial TTL is capped by the denial max TTL', () => {
  const next = new ToyNext((req) => makeResponse(req, { rcode: Rcode.NXDOMAIN, authorities: [soa('example', 3000, 3000)] }));
  const { handler } = setup('cache {\n denial 9984 5\n}', next);
  assert.deepEqual(answerTtls(ask(handler, 'nx.example').resp), [5]);
});

test('NXDOMAIN without SOA is not cached (CoreDNS OtherError)', () => {
  const next = new ToyNext((req) => makeResponse(req, { rcode: Rcode.NXDOMAIN }));
  const { cache, handler } = setup('cache', next);
  ask(handler, 'nosoa.example');
  ask(handler, 'nosoa.example');
  assert.equal(next.calls.length, 2);
  assert.equal(cache.entries('denial'), 0);
});

test('NOERROR without answer and without SOA is cached as success for 5 s', () => {
  const next = new ToyNext((req) => makeResponse(req));
  const { clock, cache, handler } = setup('cache', next);
  ask(handler, 'empty.example');
  ask(handler, 'empty.example');
  assert.equal(next.calls.length, 1);
  assert.equal(cache.entries('success'), 1);
  clock.advance(5_000);
  ask(handler, 'empty.example');
  assert.equal(next.calls.length, 2);
});

test('SERVFAIL is cached for `servfail` (default 5 s); servfail 0 disables it', () => {
  const n1 = new ToyNext((req) => makeResponse(req, { rcode: Rcode.SERVFAIL }));
  const s1 = setup('cache', n1);
  ask(s1.handler, 'fail.example');
  const hit = ask(s1.handler, 'fail.example');
  assert.equal(hit.req.respondedBy, 'cache');
  assert.equal(hit.resp.rcode, 'SERVFAIL');
  assert.equal(s1.cache.hitsDenial, 1);
  s1.clock.advance(5_000);
  ask(s1.handler, 'fail.example');
  assert.equal(n1.calls.length, 2);

  const n2 = new ToyNext((req) => makeResponse(req, { rcode: Rcode.SERVFAIL }));
  const s2 = setup('cache {\n servfail 0\n}', n2);
  ask(s2.handler, 'fail.example');
  ask(s2.handler, 'fail.example');
  assert.equal(n2.calls.length, 2);

  const n3 = new ToyNext((req) => makeResponse(req, { rcode: Rcode.SERVFAIL }));
  const s3 = setup('cache {\n servfail 30s\n}', n3);
  ask(s3.handler, 'fail.example');
  s3.clock.advance(29_000);
  ask(s3.handler, 'fail.example');
  assert.equal(n3.calls.length, 1);
});

test('REFUSED and FORMERR are not cached (Typify: OtherError)', () => {
  for (const rcode of [Rcode.REFUSED, Rcode.FORMERR]) {
    const next = new ToyNext((req) => makeResponse(req, { rcode }));
    const { cache, handler } = setup('cache', next);
    ask(handler, 'err.example');
    ask(handler, 'err.example');
    assert.equal(next.calls.length, 2, `rcode ${rcode}`);
    assert.equal(cache.entries('success') + cache.entries('denial'), 0);
  }
});

test('NOTIMP is cached like SERVFAIL, in the denial cache for `servfail` (Typify: ServerError)', () => {
  const next = new ToyNext((req) => makeResponse(req, { rcode: Rcode.NOTIMP }));
  const { clock, cache, handler } = setup('cache', next);
  ask(handler, 'notimp.example');
  const hit = ask(handler, 'notimp.example');
  assert.equal(hit.req.respondedBy, 'cache');
  assert.equal(hit.resp.rcode, 'NOTIMP');
  assert.equal(cache.entries('denial'), 1);
  clock.advance(5_000);
  ask(handler, 'notimp.example');
  assert.equal(next.calls.length, 2);
});

test('a truncated answer is passed on but not cached', () => {
  const next = new ToyNext((req) => makeResponse(req, { flags: dnsPacket.TRUNCATED_RESPONSE, answers: [a('tc.example', 300)] }));
  const { cache, handler } = setup('cache', next);
  const r = ask(handler, 'tc.example');
  assert.equal(r.resp.flag_tc, true);
  ask(handler, 'tc.example');
  assert.equal(next.calls.length, 2);
  assert.equal(cache.entries('success'), 0);
});

test('an answer for another question is passed on, not cached, and counted as a drop', () => {
  const next = new ToyNext((req) => makeResponse(req, { questionName: 'other.example', answers: [a('other.example', 300)] }));
  const { cache, handler } = setup('cache', next);
  ask(handler, 'asked.example');
  ask(handler, 'asked.example');
  assert.equal(next.calls.length, 2);
  assert.equal(cache.drops, 2);
  assert.equal(cache.entries('success'), 0);
});

test('a malformed answer is passed on unchanged and not cached', () => {
  const next = new ToyNext((req) => {
    const good = makeResponse(req, { answers: [a('bad.example', 300)] });
    return good.subarray(0, good.length - 3);
  });
  const { cache, handler } = setup('cache', next);
  const { req, out } = makeQuery('bad.example');
  handler.serve(req);
  assert.equal(out.sent.length, 1);
  assert.equal(out.sent[0]!.length, next.respond(req).length);
  handler.serve(makeQuery('bad.example').req);
  assert.equal(next.calls.length, 2);
  assert.equal(cache.entries('success'), 0);
});

test('the client gets its own letter case back in the question of a hit', () => {
  const next = upstreamA(300);
  const { handler } = setup('cache', next);
  ask(handler, 'example.com');
  const r = ask(handler, 'ExAmPle.CoM');
  assert.equal(r.req.respondedBy, 'cache');
  assert.equal(r.resp.questions![0]!.name, 'ExAmPle.CoM');
  const raw = r.out.sent[0]!;
  assert.equal(raw.subarray(13, 20).toString('latin1'), 'ExAmPle');
});

test('DO and CD are part of the key', () => {
  const next = upstreamA(300);
  const { handler } = setup('cache', next);
  ask(handler, 'key.example');
  ask(handler, 'key.example', 'A', { dnssecOk: true });
  ask(handler, 'key.example', 'A', { checkingDisabled: true });
  ask(handler, 'key.example', 'A', { dnssecOk: true, checkingDisabled: true });
  assert.equal(next.calls.length, 4);
  ask(handler, 'key.example', 'A', { edns: true });
  ask(handler, 'key.example', 'A', { dnssecOk: true });
  ask(handler, 'key.example', 'A', { checkingDisabled: true });
  assert.equal(next.calls.length, 4);
  const cd = ask(handler, 'key.example', 'A', { checkingDisabled: true });
  assert.equal(cd.resp.flag_cd, true);
  ask(handler, 'key.example', 'AAAA');
  assert.equal(next.calls.length, 5);
});

test('EDNS: an OPT (client payload size and DO echoed, as in CoreDNS SizeAndDo) is added iff the client sent one; the upstream OPT is not stored', () => {
  const next = upstreamA(300);
  const { handler } = setup('cache', next);
  ask(handler, 'edns.example', 'A', { edns: true, udpSize: 4096 });
  const plain = ask(handler, 'edns.example');
  assert.equal(plain.req.respondedBy, 'cache');
  assert.equal((plain.resp.additionals ?? []).length, 0);
  assert.equal(plain.out.sent[0]!.readUInt16BE(10), 0);

  const withEdns = ask(handler, 'edns.example', 'A', { edns: true });
  const opt = withEdns.resp.additionals!.find((r) => r.type === 'OPT') as { udpPayloadSize: number; flags: number } | undefined;
  assert.ok(opt);
  assert.equal(opt.udpPayloadSize, 4096);
  assert.equal(opt.flags & dnsPacket.DNSSEC_OK, 0);
  assert.equal(withEdns.out.sent[0]!.readUInt16BE(10), 1);

  ask(handler, 'edns.example', 'A', { dnssecOk: true });
  const withDo = ask(handler, 'edns.example', 'A', { dnssecOk: true });
  assert.equal(withDo.req.respondedBy, 'cache');
  const opt2 = withDo.resp.additionals!.find((r) => r.type === 'OPT') as { flags: number };
  assert.equal(opt2.flags & dnsPacket.DNSSEC_OK, dnsPacket.DNSSEC_OK);
});

test('a response whose OPT is not the last record is not cached', () => {
  const next = new ToyNext((req) => {
    const b = dnsPacket.encode({
      type: 'response',
      id: req.id,
      flags: dnsPacket.RECURSION_AVAILABLE | dnsPacket.RECURSION_DESIRED,
      questions: [{ type: 'A', name: 'optmid.example', class: 'IN' }],
      answers: [a('optmid.example', 300)],
      additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 1232, flags: 0 } as Answer, a('x.optmid.example', 300)],
    });
    return b;
  });
  const { cache, handler } = setup('cache', next);
  ask(handler, 'optmid.example', 'A', { edns: true });
  ask(handler, 'optmid.example', 'A', { edns: true });
  assert.equal(next.calls.length, 2);
  assert.equal(cache.entries('success'), 0);
});

test('AD is kept only for clients that set DO or AD (RFC 6840 §5.7)', () => {
  const next = new ToyNext((req) => makeResponse(req, { flags: dnsPacket.AUTHENTIC_DATA, answers: [a('ad.example', 300)] }));
  const { handler } = setup('cache', next);
  assert.equal(ask(handler, 'ad.example').resp.flag_ad, false);
  assert.equal(ask(handler, 'ad.example').resp.flag_ad, false);
  assert.equal(ask(handler, 'ad.example', 'A', { authenticData: true }).resp.flag_ad, true);
  assert.equal(next.calls.length, 1);
});

test('capacity is a hard bound: a flood of unique names stays within it and evictions are counted', () => {
  const next = upstreamA(300);
  const { cache, handler } = setup('cache {\n success 1024\n denial 1024\n}', next);
  for (let i = 0; i < 5000; i++) handler.serve(makeQuery(`n${i}.flood.example`).req);
  assert.equal(cache.entries('success'), 1024);
  assert.equal(cache.evictionsSuccess, 5000 - 1024);
  assert.equal(cache.evictionsDenial, 0);
  let hits = 0;
  for (let i = 0; i < 5000; i++) {
    const q = makeQuery(`n${i}.flood.example`);
    handler.serve(q.req);
    if (q.req.respondedBy === 'cache') hits++;
  }
  assert.ok(hits > 0 && hits <= 1024);
  assert.ok(cache.entries('success') <= 1024);
});

test('eviction prefers entries that expire first', () => {
  const next = new ToyNext((req) => makeResponse(req, { answers: [a(req.name().slice(0, -1), req.name().startsWith('short') ? 10 : 3000)] }));
  const { clock, cache, handler } = setup('cache {\n success 1024\n}', next);
  for (let i = 0; i < 1024; i++) handler.serve(makeQuery(`${i % 2 === 0 ? 'short' : 'long'}${i}.example`).req);
  clock.advance(20_000);
  for (let i = 0; i < 300; i++) handler.serve(makeQuery(`new${i}.example`).req);
  let longs = 0;
  for (let i = 1; i < 1024; i += 2) {
    const q = makeQuery(`long${i}.example`);
    handler.serve(q.req);
    if (q.req.respondedBy === 'cache') longs++;
  }
  // Random eviction alone would keep about 512 * (1023/1024)^300 ≈ 382 of the 512 long-lived entries.
  assert.ok(longs > 420, `long-lived entries kept: ${longs}`);
  assert.equal(cache.entries('success'), 1024);
});

test('prefetch: a popular entry is refreshed through next when its TTL falls below the percentage', () => {
  let addr = '192.0.2.1';
  const next = new ToyNext((req) => makeResponse(req, { answers: [a('pop.example', 10, addr)] }));
  const { clock, cache, handler } = setup('cache {\n prefetch 2 1m 50%\n}', next);
  ask(handler, 'pop.example');
  clock.advance(1_000);
  ask(handler, 'pop.example');
  assert.equal(next.calls.length, 1);
  clock.advance(5_000);
  addr = '192.0.2.99';
  const r = ask(handler, 'pop.example');
  // The client got the cached answer; a refresh went upstream over TCP.
  assert.equal(r.req.respondedBy, 'cache');
  assert.deepEqual(
    r.resp.answers!.map((x) => (x as { data: string }).data),
    ['192.0.2.1'],
  );
  assert.deepEqual(answerTtls(r.resp), [4]);
  assert.equal(next.calls.length, 2);
  const refresh = next.calls[1]!;
  assert.equal(refresh.proto, Proto.TCP);
  assert.equal(refresh.name(), 'pop.example.');
  assert.equal(refresh.qtype, 1);
  assert.equal(cache.prefetches, 1);
  const after = ask(handler, 'pop.example');
  assert.equal(after.req.respondedBy, 'cache');
  assert.deepEqual(
    after.resp.answers!.map((x) => (x as { data: string }).data),
    ['192.0.2.99'],
  );
  assert.deepEqual(answerTtls(after.resp), [10]);
});

test('prefetch needs AMOUNT hits within the window, and only one refresh is in flight', () => {
  const next = upstreamA(10);
  const { clock, cache, handler } = setup('cache {\n prefetch 3 2s 50%\n}', next);
  ask(handler, 'win.example');
  clock.advance(5_000);
  ask(handler, 'win.example');
  clock.advance(3_000);
  ask(handler, 'win.example');
  assert.equal(cache.prefetches, 0, 'hits more than 2 s apart do not add up');
  next.hold = true;
  clock.advance(500);
  ask(handler, 'win.example');
  clock.advance(500);
  ask(handler, 'win.example');
  assert.equal(cache.prefetches, 1);
  ask(handler, 'win.example');
  assert.equal(cache.prefetches, 1, 'no second refresh while one is pending');
  assert.equal(next.calls.length, 2);
  next.release();
  assert.deepEqual(answerTtls(ask(handler, 'win.example').resp), [10]);
});

test('serve_stale immediate: an expired entry is answered with TTL 0 and refreshed in the background', () => {
  let fail = false;
  const next = new ToyNext((req) => (fail ? makeResponse(req, { rcode: Rcode.SERVFAIL }) : makeResponse(req, { answers: [a('stale.example', 10)] })));
  const { clock, cache, handler } = setup('cache {\n serve_stale 1m\n}', next);
  ask(handler, 'stale.example');
  clock.advance(15_000);
  fail = true;
  const s1 = ask(handler, 'stale.example');
  assert.equal(s1.req.respondedBy, 'cache');
  assert.equal(s1.resp.rcode, 'NOERROR');
  assert.deepEqual(answerTtls(s1.resp), [0]);
  assert.equal(cache.servedStale, 1);
  assert.equal(cache.prefetches, 1);
  assert.equal(next.calls.length, 2);
  // The refresh got SERVFAIL: the stale entry stays.
  const s2 = ask(handler, 'stale.example');
  assert.equal(s2.resp.rcode, 'NOERROR');
  assert.deepEqual(answerTtls(s2.resp), [0]);
  fail = false;
  const s3 = ask(handler, 'stale.example');
  assert.deepEqual(answerTtls(s3.resp), [0]);
  assert.deepEqual(answerTtls(ask(handler, 'stale.example').resp), [10]);
  // Past the stale window: a plain miss.
  clock.advance(75_000);
  const m = ask(handler, 'stale.example');
  assert.equal(m.req.respondedBy, 'toy');
});

test('serve_stale verify: upstream first; the stale entry only when upstream fails', () => {
  let fail = true;
  let addr = '192.0.2.1';
  const next = new ToyNext((req) => (fail ? makeResponse(req, { rcode: Rcode.SERVFAIL }) : makeResponse(req, { answers: [a('verify.example', 10, addr)] })));
  fail = false;
  const { clock, cache, handler } = setup('cache {\n serve_stale 1h verify\n}', next);
  ask(handler, 'verify.example');
  clock.advance(20_000);
  fail = true;
  const s = ask(handler, 'verify.example', 'A', { id: 9 });
  assert.equal(next.calls.length, 2);
  assert.equal(s.req.respondedBy, 'cache');
  assert.equal(s.resp.rcode, 'NOERROR');
  assert.equal(s.resp.id, 9);
  assert.deepEqual(answerTtls(s.resp), [0]);
  assert.equal(cache.servedStale, 1);
  assert.equal(cache.prefetches, 0);
  fail = false;
  addr = '192.0.2.7';
  const fresh = ask(handler, 'verify.example');
  assert.equal(fresh.req.respondedBy, 'toy');
  assert.deepEqual(
    fresh.resp.answers!.map((x) => (x as { data: string }).data),
    ['192.0.2.7'],
  );
  assert.equal(cache.servedStale, 1);
  assert.equal(ask(handler, 'verify.example').req.respondedBy, 'cache');
});

test('keepttl: hits carry the stored TTL, not the remaining one', () => {
  const next = upstreamA(120);
  const { clock, handler } = setup('cache {\n keepttl\n}', next);
  ask(handler, 'keep.example');
  clock.advance(60_000);
  assert.deepEqual(answerTtls(ask(handler, 'keep.example').resp), [120]);
  clock.advance(60_000);
  ask(handler, 'keep.example');
  assert.equal(next.calls.length, 2);
});

test('disable success|denial ZONES: those answers are not stored', () => {
  const next = new ToyNext((req) =>
    req.name().startsWith('nx')
      ? makeResponse(req, { rcode: Rcode.NXDOMAIN, authorities: [soa('example', 300, 300)] })
      : makeResponse(req, { answers: [a(req.name().slice(0, -1), 300)] }),
  );
  const { cache, handler } = setup('cache {\n disable success no.example\n disable denial .\n}', next);
  ask(handler, 'a.no.example');
  ask(handler, 'a.no.example');
  ask(handler, 'a.yes.example');
  ask(handler, 'a.yes.example');
  ask(handler, 'nx.yes.example');
  ask(handler, 'nx.yes.example');
  assert.equal(next.calls.length, 5);
  assert.equal(cache.entries('success'), 1);
  assert.equal(cache.entries('denial'), 0);
});

test('queries outside the cache zones pass through untouched and uncounted', () => {
  const next = upstreamA(300);
  const { cache, handler } = setup('cache 30 cluster.local', next);
  ask(handler, 'svc.cluster.local');
  ask(handler, 'svc.CLUSTER.local');
  assert.equal(next.calls.length, 1);
  ask(handler, 'example.org');
  ask(handler, 'example.org');
  ask(handler, 'local');
  assert.equal(next.calls.length, 4);
  assert.equal(cache.requests, 2);
});

test('a key stored as success replaces a denial entry for the same key', () => {
  let exists = false;
  const next = new ToyNext((req) =>
    exists ? makeResponse(req, { answers: [a('flip.example', 300)] }) : makeResponse(req, { rcode: Rcode.NXDOMAIN, authorities: [soa('example', 10, 10)] }),
  );
  const { clock, cache, handler } = setup('cache {\n serve_stale 1h verify\n}', next);
  ask(handler, 'flip.example');
  assert.equal(cache.entries('denial'), 1);
  clock.advance(11_000);
  exists = true;
  const r = ask(handler, 'flip.example');
  assert.equal(r.resp.rcode, 'NOERROR');
  assert.equal(cache.entries('denial'), 0);
  assert.equal(cache.entries('success'), 1);
  assert.equal(ask(handler, 'flip.example').resp.rcode, 'NOERROR');
});

test('stale fallback: expired cluster entries are served with TTL 30 when upstream fails, then rechecked', () => {
  let fail = false;
  const next = new ToyNext((req) => (fail ? makeResponse(req, { rcode: Rcode.SERVFAIL }) : makeResponse(req, { answers: [a(req.name().slice(0, -1), 5)] })));
  const { clock, cache, handler } = setup('cache 30', next);
  cache.setStaleFallback({ zones: ['Cluster.Local'], maxStaleMs: 600_000, answerTtlSec: 30, recheckMs: 30_000 });
  assert.deepEqual(cache.staleFallback()?.zones, ['cluster.local.']);
  ask(handler, 'svc.cluster.local');
  ask(handler, 'example.org');
  clock.advance(60_000);
  fail = true;
  const s = ask(handler, 'svc.cluster.local');
  assert.equal(s.resp.rcode, 'NOERROR');
  assert.deepEqual(answerTtls(s.resp), [30]);
  assert.equal(cache.servedStale, 1);
  assert.equal(next.calls.length, 3);
  // Outside the fallback zones: the failure goes to the client.
  assert.equal(ask(handler, 'example.org').resp.rcode, 'SERVFAIL');
  assert.equal(next.calls.length, 4);
  // Within the recheck time: stale at once, no upstream query.
  clock.advance(10_000);
  assert.deepEqual(answerTtls(ask(handler, 'svc.cluster.local').resp), [30]);
  assert.equal(next.calls.length, 4);
  assert.equal(cache.servedStale, 2);
  // After it: upstream is asked again and its answer refreshes the entry.
  clock.advance(25_000);
  fail = false;
  const fresh = ask(handler, 'svc.cluster.local');
  assert.equal(fresh.req.respondedBy, 'toy');
  assert.equal(next.calls.length, 5);
  // Beyond maxStaleMs nothing stale is served.
  clock.advance(700_000);
  fail = true;
  assert.equal(ask(handler, 'svc.cluster.local').resp.rcode, 'SERVFAIL');
  cache.setStaleFallback(null);
  assert.equal(cache.staleFallback(), null);
});

test('configKey and adoptEntriesFrom: a reload with equal settings keeps the entries', () => {
  const next = upstreamA(300);
  const clock = new TestClock();
  const old = cacheFrom('. {\n cache 30\n}\n', clock);
  old.compose(next).serve(makeQuery('keep.example').req);
  assert.equal(old.entries('success'), 1);
  const same = cacheFrom('. {\n cache 30 {\n }\n}\n', clock);
  const other = cacheFrom('. {\n cache 60\n}\n', clock);
  assert.equal(same.configKey(), old.configKey());
  assert.notEqual(other.configKey(), old.configKey());
  assert.equal(other.adoptEntriesFrom(old), false);
  assert.equal(other.entries('success'), 0);
  assert.equal(same.adoptEntriesFrom(old), true);
  assert.equal(same.entries('success'), 1);
  const q = makeQuery('keep.example');
  same.compose(next).serve(q.req);
  assert.equal(q.req.respondedBy, 'cache');
  same.adoptCountersFrom(old);
  assert.equal(same.misses, 1);
  assert.equal(same.hitsSuccess, 1);
});

test('the query path never throws on odd names and types (root, long names, ANY)', () => {
  const next = new ToyNext((req: Request) => makeResponse(req, { answers: [] }));
  const { handler } = setup('cache', next);
  ask(handler, '.', 'NS');
  ask(handler, '.', 'NS');
  const long = Array.from({ length: 4 }, () => 'x'.repeat(60)).join('.');
  ask(handler, long, 'TXT');
  ask(handler, long.toUpperCase(), 'TXT');
  assert.equal(next.calls.length, 2);
});

test('a CachePlugin needs no Corefile: the constructor takes settings', () => {
  const clock = new TestClock();
  const cache = cacheFrom('. {\n cache\n}\n', clock);
  assert.ok(cache instanceof CachePlugin);
  assert.equal(cache.capacity('success'), 9984);
});

test('serve_stale verify: the entry being verified is evicted meanwhile; its stale answer still carries its own bytes', () => {
  const failNames = new Set(['victim.example.']);
  let failing = false;
  const next = new ToyNext((req) =>
    failing && failNames.has(req.name())
      ? makeResponse(req, { rcode: Rcode.SERVFAIL })
      : makeResponse(req, { answers: [a(req.name().slice(0, -1), 10, req.name() === 'victim.example.' ? '192.0.2.1' : '198.51.100.9')] }),
  );
  const { clock, cache, handler } = setup('cache {\n success 1\n serve_stale 1h verify\n}', next);
  ask(handler, 'victim.example');
  clock.advance(20_000);
  // The verification waits for upstream while a flood of other names fills the store: the
  // expired victim is the first entry eviction picks, and its arena chunk and object would be
  // reused at once if the in-flight verification did not hold them.
  next.hold = true;
  const q = makeQuery('victim.example', 'A', { id: 77 });
  handler.serve(q.req);
  next.hold = false;
  const capacity = cache.capacity('success');
  for (let i = 0; i < 3 * capacity; i++) ask(handler, `flood-${i}.example`);
  assert.equal(cache.entries('success'), capacity);
  assert.ok(cache.evictionsSuccess >= 2 * capacity);
  assert.equal(ask(handler, 'victim.example').req.respondedBy, 'toy', 'the victim was evicted');
  failNames.add('victim.example.');
  failing = true;
  next.release();
  assert.equal(q.out.sent.length, 1);
  const stale = q.out.last;
  assert.equal(q.req.respondedBy, 'cache');
  assert.equal(stale.id, 77);
  assert.deepEqual(
    stale.answers!.map((r) => [r.name, (r as { data: string }).data]),
    [['victim.example', '192.0.2.1']],
  );
  assert.equal(cache.servedStale, 1);
});

test('prefetch: a refresh whose next plugin wraps the writer and then throws gives its hold on the entry back', () => {
  const next = new ToyNext((req) => makeResponse(req, { answers: [a('pop.example', 10)] }));
  const { clock, cache, handler } = setup('cache {\n prefetch 1 1m 50%\n}', next);
  ask(handler, 'pop.example');
  const throwing = {
    serve(req: Request): void {
      if (req.proto !== Proto.TCP) return next.serve(req);
      const inner = req.writer;
      req.writer = { writeMsg: (r, m, l) => inner.writeMsg(r, m, l) };
      throw new Error('boom');
    },
  };
  const failing = cache.compose(throwing);
  clock.advance(6_000);
  assert.equal(ask(failing, 'pop.example').req.respondedBy, 'cache');
  assert.equal(cache.prefetches, 1);
  const entries: Entry[] = [];
  (cache as unknown as { success: EntryStore }).success.forEach((e) => entries.push(e));
  assert.equal(entries.length, 1);
  assert.equal(entries[0]!.holders, 0);
  assert.equal(entries[0]!.refreshSinceMs, -1);
});
