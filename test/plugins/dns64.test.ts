/**
 * dns64 end to end: the real agent between dig and Knot. Over IPv6 (::1) AAAA questions of
 * names with only A records get AAAA records under the prefix; names with AAAA, NXDOMAIN and
 * IPv4 clients are left alone; cache holds the upstream AAAA NODATA and the A records dns64
 * asked for (dns64 is before cache); coredns_dns64_requests_translated_total{server} counts.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { dig, type AgentProcess, type Authority } from '../engine/harness.ts';
import { scrape, metricSum } from '../fault/lib/agent.ts';
import { startDns64Agent, startDns64Knot, type Dns64Block } from './lib/dns64.ts';

let knot: Authority;
let agent: AgentProcess;
let metrics: { host: string; port: number };
const plain: Dns64Block = { body: '    dns64' };
const cached: Dns64Block = { body: '    dns64\n    cache 30' };
const all: Dns64Block = { body: '    dns64 {\n        translate_all\n        prefix 2001:db8:64::/64\n    }' };
const v4ok: Dns64Block = { body: '    dns64 {\n        allow_ipv4\n    }' };
const logged: Dns64Block = { body: '    log . "{type} {name} {rcode} {remote}"\n    dns64' };

before(async () => {
  knot = await startDns64Knot();
  ({ agent, metrics } = await startDns64Agent(knot, [plain, all, v4ok, cached, logged]));
});

after(async () => {
  await agent?.stop();
  await knot?.stop();
});

const v6 = (b: Dns64Block, args: string[]) => dig('::1', b.port!, args);
const v4 = (b: Dns64Block, args: string[]) => dig(b.v4!, b.port!, args);
const rrs = (r: Awaited<ReturnType<typeof dig>>) => r.answer.map((a) => `${a.name} ${a.ttl} ${a.type} ${a.data}`);

test('AAAA of an A-only name over IPv6: AAAA under 64:ff9b::/96, TTL min(A TTL 300, TTL of the NODATA SOA: 60)', async () => {
  const r = await v6(plain, ['v4only.dns64.test', 'AAAA']);
  assert.equal(r.status, 'NOERROR');
  assert.deepEqual(rrs(r).sort(), ['v4only.dns64.test. 60 AAAA 64:ff9b::c000:201', 'v4only.dns64.test. 60 AAAA 64:ff9b::c000:202']);
  assert.ok(r.flags.includes('qr') && r.flags.includes('rd'));
  const short = await v6(plain, ['short.dns64.test', 'AAAA', '+tcp']);
  assert.deepEqual(rrs(short), ['short.dns64.test. 30 AAAA 64:ff9b::c633:6407'], 'A TTL below the SOA TTL is kept; TCP too');
});

test('CNAME chain kept, the A records at its end translated', async () => {
  const r = await v6(plain, ['alias.dns64.test', 'AAAA']);
  assert.deepEqual(rrs(r).slice(0, 1), ['alias.dns64.test. 300 CNAME v4only.dns64.test.']);
  // The SOA of the NODATA answer for alias AAAA bounds the TTL of the translated records.
  assert.deepEqual(rrs(r).slice(1).sort(), ['v4only.dns64.test. 60 AAAA 64:ff9b::c000:201', 'v4only.dns64.test. 60 AAAA 64:ff9b::c000:202']);
});

test('left alone: existing AAAA, NXDOMAIN, no address at all (NODATA with the SOA), A questions, IPv4 clients', async () => {
  assert.deepEqual(rrs(await v6(plain, ['dual.dns64.test', 'AAAA'])), ['dual.dns64.test. 300 AAAA 2001:db8::3']);
  const nx = await v6(plain, ['missing.dns64.test', 'AAAA']);
  assert.equal(nx.status, 'NXDOMAIN');
  assert.equal(nx.answer.length, 0);
  const none = await v6(plain, ['txtonly.dns64.test', 'AAAA']);
  assert.equal(none.status, 'NOERROR');
  assert.equal(none.answer.length, 0);
  assert.equal(none.authority[0]?.type, 'SOA');
  assert.deepEqual(rrs(await v6(plain, ['v4only.dns64.test', 'A'])).sort(), ['v4only.dns64.test. 300 A 192.0.2.1', 'v4only.dns64.test. 300 A 192.0.2.2']);
  const ipv4 = await v4(plain, ['v4only.dns64.test', 'AAAA']);
  assert.equal(ipv4.status, 'NOERROR');
  assert.equal(ipv4.answer.length, 0, 'no translation for a client over IPv4');
});

test('translate_all replaces real AAAA records; a /64 prefix puts the address around the u octet', async () => {
  const r = await v6(all, ['dual.dns64.test', 'AAAA']);
  assert.deepEqual(rrs(r), ['dual.dns64.test. 300 AAAA 2001:db8:64:0:c0:2:300:0']);
});

test('allow_ipv4 translates for IPv4 clients too', async () => {
  const r = await v4(v4ok, ['v4only.dns64.test', 'AAAA']);
  assert.deepEqual(rrs(r).sort(), ['v4only.dns64.test. 60 AAAA 64:ff9b::c000:201', 'v4only.dns64.test. 60 AAAA 64:ff9b::c000:202']);
});

test('before cache: the AAAA NODATA and the A lookup are cached (hits count up), answers stay synthesized; the metric counts per server', async () => {
  const label = `dns://[::1]:${cached.port}`;
  // This node-local-dns labels a block's cache counters with the block's first address.
  const cacheLabel = `dns://${cached.v4}:${cached.port}`;
  const count = async () => {
    const m = await scrape(metrics.host, metrics.port);
    return {
      hits: metricSum(m, 'coredns_cache_hits_total', { server: cacheLabel }),
      misses: metricSum(m, 'coredns_cache_misses_total', { server: cacheLabel }),
      translated: metricSum(m, 'coredns_dns64_requests_translated_total', { server: label }),
      m,
    };
  };
  const c0 = await count();
  const a = await v6(cached, ['short.dns64.test', 'AAAA']);
  assert.deepEqual(rrs(a), ['short.dns64.test. 30 AAAA 64:ff9b::c633:6407']);
  const c1 = await count();
  assert.equal(c1.misses - c0.misses, 2, 'the AAAA question and the A lookup both went to Knot through cache');
  assert.equal(c1.hits - c0.hits, 0);
  const b = await v6(cached, ['short.dns64.test', 'AAAA']);
  assert.deepEqual(
    b.answer.map((x) => x.data),
    ['64:ff9b::c633:6407'],
    'the synthesized answer again, from cached AAAA and A',
  );
  assert.ok(b.answer[0]!.ttl <= 30);
  const c2 = await count();
  assert.equal(c2.hits - c1.hits, 2, 'both the AAAA NODATA and the A records were cache hits');
  assert.equal(c2.misses - c1.misses, 0);
  // A client's own A question is a hit of the lookup dns64 made.
  await v4(cached, ['short.dns64.test', 'A']);
  const c3 = await count();
  assert.equal(c3.hits - c2.hits, 1, "the client's A question hit the A records dns64 had cached");
  assert.equal(c3.translated - c0.translated, 2);
  const fam = c3.m.get('coredns_dns64_requests_translated_total');
  assert.equal(fam?.type, 'counter');
  assert.ok(
    fam!.samples.every((x) => Object.keys(x.labels).join() === 'server'),
    'one label: server',
  );
  assert.equal(
    metricSum(c3.m, 'coredns_dns64_requests_translated_total', { server: `dns://${cached.v4}:${cached.port}` }),
    0,
    'IPv4 clients of this block were never translated',
  );
});

test("the A lookup goes through the server again, as CoreDNS's upstream lookup: log (before dns64) logs it, then the AAAA", async () => {
  const r = await v6(logged, ['v4only.dns64.test', 'AAAA']);
  assert.equal(r.answer.length, 2);
  const end = performance.now() + 5000;
  const lines = () =>
    agent
      .output()
      .split('\n')
      .filter((l) => / v4only\.dns64\.test\. /.test(l) && l.startsWith('[INFO] A'));
  while (lines().length < 2 && performance.now() < end) await new Promise((res) => setTimeout(res, 20));
  assert.deepEqual(lines(), ['[INFO] A v4only.dns64.test. NOERROR [::1]', '[INFO] AAAA v4only.dns64.test. NOERROR [::1]']);
});
