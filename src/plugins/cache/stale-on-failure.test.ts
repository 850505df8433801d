/**
 * `serve_stale_on_failure` (node-local-dns's default-on stale fallback for the cluster zones,
 * RFC 8767): parsing, the default per zone, the wiring in cacheSetup, and the client response
 * timer (a stale answer after 1.8 s while upstream keeps being asked in the background).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseCorefile } from '../../corefile/parser.ts';
import { CorefileError } from '../../corefile/errors.ts';
import { defaultServerConfig, type EngineHooks, type SetupContext } from '../../plugin.ts';
import type { Request } from '../../server/request.ts';
import { Rcode } from '../../wire/codes.ts';
import { type CachePlugin, DEFAULT_STALE_FALLBACK } from './cache.ts';
import { CLUSTER_ZONES_ENV, cacheSetup, clusterZonesFrom, isClusterZone, parseCacheDirective, staleFallbackFor } from './setup.ts';
import { ToyNext, TestClock, a, makeQuery, makeResponse } from '../../../test/lib/cache-testing.ts';

function directive(zones: string, body: string) {
  const blocks = parseCorefile(`${zones} {\n${body}\n}\n`, 'Corefile', {});
  const d = blocks[0]!.directives.find((x) => x.name === 'cache');
  assert.ok(d, 'cache directive present');
  return d;
}

function ctxFor(zones: string[], clock: () => number = () => 0, env: Record<string, string | undefined> = {}): SetupContext {
  return {
    zones,
    port: 53,
    serverLabels: ['dns://127.0.0.1:53'],
    server: defaultServerConfig(['127.0.0.1']),
    blockIndex: 0,
    file: 'Corefile',
    shared: new Map(),
    env,
    clock,
    log: { info() {}, warn() {}, error() {} },
    engine: {} as EngineHooks,
  };
}

function plugin(zones: string[], body: string, clock?: () => number): CachePlugin {
  return cacheSetup.setup(directive(zones.join(' '), body), ctxFor(zones, clock)) as CachePlugin;
}

test('cluster zones: cluster.local and below, in-addr.arpa and ip6.arpa and below; nothing else', () => {
  for (const z of ['cluster.local.', 'svc.cluster.local.', 'Cluster.Local.', 'in-addr.arpa.', '10.in-addr.arpa.', 'ip6.arpa.', '0.0.ip6.arpa.']) {
    assert.equal(isClusterZone(z), true, z);
  }
  for (const z of ['.', 'local.', 'xcluster.local.', 'cluster.local.example.', 'arpa.', 'example.org.', 'notin-addr.arpa.']) {
    assert.equal(isClusterZone(z), false, z);
  }
});

test(`cluster zones named by ${CLUSTER_ZONES_ENV} (the agent sets it from the template) replace the default list`, () => {
  assert.deepEqual(clusterZonesFrom({}), ['cluster.local.', 'in-addr.arpa.', 'ip6.arpa.']);
  assert.deepEqual(clusterZonesFrom({ [CLUSTER_ZONES_ENV]: ' ' }), ['cluster.local.', 'in-addr.arpa.', 'ip6.arpa.']);
  const named = clusterZonesFrom({ [CLUSTER_ZONES_ENV]: 'Corp.Example, in-addr.arpa.' });
  assert.deepEqual(named, ['corp.example.', 'in-addr.arpa.']);
  assert.equal(isClusterZone('svc.corp.example.', named), true);
  assert.equal(isClusterZone('cluster.local.', named), false);
  const env = { [CLUSTER_ZONES_ENV]: 'corp.example' };
  const setup = (zones: string[]) => cacheSetup.setup(directive(zones.join(' '), 'cache 30'), ctxFor(zones, undefined, env)) as CachePlugin;
  assert.equal(setup(['corp.example.']).staleFallback()?.zones.join(), 'corp.example.');
  assert.equal(setup(['cluster.local.']).staleFallback(), null);
});

test('default: on for the cluster zones of the cache, with RFC 8767 values; off for the . block', () => {
  const cluster = plugin(['cluster.local.'], 'cache 30');
  assert.deepEqual(cluster.staleFallback(), { zones: ['cluster.local.'], ...DEFAULT_STALE_FALLBACK });
  assert.equal(DEFAULT_STALE_FALLBACK.answerTtlSec, 30);
  assert.equal(DEFAULT_STALE_FALLBACK.recheckMs, 30_000);
  assert.equal(DEFAULT_STALE_FALLBACK.clientTimeoutMs, 1_800);
  assert.equal(plugin(['in-addr.arpa.'], 'cache 30').staleFallback()?.zones.join(), 'in-addr.arpa.');
  assert.equal(plugin(['ip6.arpa.'], 'cache 30').staleFallback()?.zones.join(), 'ip6.arpa.');
  assert.equal(plugin(['.'], 'cache 30').staleFallback(), null);
  // A block serving both kinds: only the cluster zone falls back.
  assert.deepEqual(plugin(['cluster.local.', 'example.org.'], 'cache 30').staleFallback()?.zones, ['cluster.local.']);
  // The cache's own zones decide, not the block's.
  assert.equal(plugin(['.'], 'cache 30 cluster.local').staleFallback()?.zones.join(), 'cluster.local.');
  assert.equal(plugin(['cluster.local.'], 'cache 30 example.org').staleFallback(), null);
});

test('serve_stale_on_failure: written values apply to every zone of the cache; off disables', () => {
  const root = plugin(['.'], 'cache 30 {\n serve_stale_on_failure\n}');
  assert.deepEqual(root.staleFallback(), { ...DEFAULT_STALE_FALLBACK, zones: ['.'] });
  const custom = plugin(['example.org.'], 'cache {\n serve_stale_on_failure 10m 15\n}');
  assert.deepEqual(custom.staleFallback(), { ...DEFAULT_STALE_FALLBACK, zones: ['example.org.'], maxStaleMs: 600_000, answerTtlSec: 15 });
  assert.equal(plugin(['cluster.local.'], 'cache {\n serve_stale_on_failure off\n}').staleFallback(), null);
  assert.equal(plugin(['cluster.local.'], 'cache {\n serve_stale_on_failure OFF\n}').staleFallback(), null);
  const cfg = parseCacheDirective(directive('cluster.local', 'cache {\n serve_stale_on_failure 2h\n}'), ['cluster.local.']);
  assert.deepEqual(cfg.staleOnFailure, { enabled: true, maxStaleMs: 7_200_000, answerTtlSec: 30 });
  assert.deepEqual(staleFallbackFor(cfg)?.maxStaleMs, 7_200_000);
});

const invalid: Array<[string, string]> = [
  ['cache {\n serve_stale_on_failure 1h 30 now\n}', "Corefile:3 - Error during parsing: Wrong argument count or unexpected line ending after 'now'"],
  ['cache {\n serve_stale_on_failure soon\n}', 'Corefile:3 - Error during parsing: time: invalid duration "soon"'],
  ['cache {\n serve_stale_on_failure 0s\n}', 'Corefile:3 - Error during parsing: serve_stale_on_failure duration must be at least 1s (or "off"): 0s'],
  ['cache {\n serve_stale_on_failure -1h\n}', 'Corefile:3 - Error during parsing: serve_stale_on_failure duration must be at least 1s (or "off"): -1h'],
  ['cache {\n serve_stale_on_failure 1h 0\n}', 'Corefile:3 - Error during parsing: serve_stale_on_failure TTL must be between 1 and 3600: 0'],
  ['cache {\n serve_stale_on_failure 1h 30s\n}', 'Corefile:3 - Error during parsing: strconv.Atoi: parsing "30s": invalid syntax'],
  ['cache {\n\n serve_stale_on_failure off 1h\n}', 'Corefile:4 - Error during parsing: time: invalid duration "off"'],
];

for (const [body, message] of invalid) {
  test(`rejects: ${body.replace(/\n/g, ' ')}`, () => {
    assert.throws(
      () => parseCacheDirective(directive('cluster.local', body), ['cluster.local.']),
      (err: unknown) => err instanceof CorefileError && err.message === message,
    );
  });
}

/** An upstream that answers after `delayMs` of real time (SERVFAIL when `fail`), like a slow kube-dns. */
class SlowNext extends ToyNext {
  delayMs = 0;
  fail = false;
  override serve(req: Request): void {
    this.calls.push(req);
    const resp = this.fail ? makeResponse(req, { rcode: Rcode.SERVFAIL }) : this.respond(req);
    if (this.delayMs === 0) req.reply(resp, resp.length, 'toy');
    else setTimeout(() => req.reply(resp, resp.length, 'toy'), this.delayMs);
  }
}

function waitMs(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

test('client response timer: a slow upstream gets the client a stale answer at 1.8 s; its late answer refreshes the entry', async () => {
  const clock = new TestClock();
  let addr = '192.0.2.1';
  const next = new SlowNext((req) => makeResponse(req, { answers: [a(req.name().slice(0, -1), 5, addr)] }));
  const cache = plugin(['cluster.local.'], 'cache 30', clock.read);
  const handler = cache.compose(next);
  const first = makeQuery('svc.cluster.local');
  handler.serve(first.req);
  assert.equal(first.out.sent.length, 1);
  clock.advance(60_000);

  // Upstream takes 2.5 s (real time): the client gets the stale entry (TTL 30) after ~1.8 s.
  next.delayMs = 2_500;
  addr = '192.0.2.2';
  const q = makeQuery('svc.cluster.local', 'A', { id: 99 });
  const t0 = performance.now();
  handler.serve(q.req);
  while (q.out.sent.length === 0 && performance.now() - t0 < 5_000) await waitMs(20);
  const elapsed = performance.now() - t0;
  assert.equal(q.out.sent.length, 1);
  assert.ok(elapsed < 2_400, `stale answer came after the upstream answer (${elapsed.toFixed(0)} ms)`);
  const stale = q.out.last;
  assert.equal(stale.id, 99);
  assert.equal(stale.rcode, 'NOERROR');
  assert.deepEqual(
    stale.answers!.map((r) => [(r as { data: string }).data, (r as { ttl: number }).ttl]),
    [['192.0.2.1', 30]],
  );
  assert.equal(q.req.respondedBy, 'cache');
  assert.equal(cache.servedStale, 1);

  // The upstream's late answer is not sent again, but refreshes the entry.
  await waitMs(1_000);
  assert.equal(q.out.sent.length, 1, 'the client got exactly one answer');
  next.delayMs = 0;
  const after = makeQuery('svc.cluster.local');
  handler.serve(after.req);
  assert.equal(after.req.respondedBy, 'cache');
  assert.deepEqual(
    after.out.last.answers!.map((r) => (r as { data: string }).data),
    ['192.0.2.2'],
  );
  assert.equal(next.calls.length, 2);
});

test('client response timer: a late failure starts the recheck timer; an answer before 1.8 s goes through unchanged', async () => {
  const clock = new TestClock();
  const next = new SlowNext((req) => makeResponse(req, { answers: [a(req.name().slice(0, -1), 5)] }));
  const cache = plugin(['cluster.local.'], 'cache 30', clock.read);
  const handler = cache.compose(next);
  handler.serve(makeQuery('a.cluster.local').req);
  handler.serve(makeQuery('b.cluster.local').req);
  clock.advance(60_000);

  next.delayMs = 2_000;
  next.fail = true;
  const q = makeQuery('a.cluster.local');
  handler.serve(q.req);
  await waitMs(2_300);
  assert.equal(q.out.sent.length, 1);
  assert.equal(cache.servedStale, 1);
  // The SERVFAIL that followed set the recheck timer: stale at once, upstream not asked.
  const calls = next.calls.length;
  const again = makeQuery('a.cluster.local');
  handler.serve(again.req);
  assert.equal(again.out.sent.length, 1);
  assert.deepEqual(
    again.out.last.answers!.map((r) => (r as { ttl: number }).ttl),
    [30],
  );
  assert.equal(next.calls.length, calls);
  assert.equal(cache.servedStale, 2);

  // Upstream healthy and quick: its answer is the one the client gets.
  next.delayMs = 300;
  next.fail = false;
  const fresh = makeQuery('b.cluster.local');
  handler.serve(fresh.req);
  await waitMs(600);
  assert.equal(fresh.out.sent.length, 1);
  assert.equal(fresh.req.respondedBy, 'toy');
  assert.deepEqual(
    fresh.out.last.answers!.map((r) => (r as { ttl: number }).ttl),
    [5],
  );
  assert.equal(cache.servedStale, 2);
});
