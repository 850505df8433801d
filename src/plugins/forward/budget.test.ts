import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_INFLIGHT_TOTAL } from './budget.ts';
import { ForwardErrorCode, type ForwardError } from './errors.ts';
import type { ForwardPlugin, ForwardTuning } from './forward.ts';
import { makeForwardSetup } from './setup.ts';
import { NextHandler, ToyUpstream, clientQuery, decode, forwardDirective, setupContext } from '../../../test/lib/forward-testing.ts';

/** Forward instances built as one config load builds them: one SetupContext, so one `shared` map. */
function load(bodies: string[], tuning: Partial<ForwardTuning> = {}): ForwardPlugin[] {
  const ctx = setupContext();
  return bodies.map((b) => {
    const p = makeForwardSetup(tuning).setup(forwardDirective(b), ctx) as ForwardPlugin;
    p.compose(new NextHandler());
    p.start();
    return p;
  });
}

test('without max_concurrent, the instances of one config load split the default in-flight budget; past its share a query is REFUSED and counted', async (t) => {
  const up = await ToyUpstream.start();
  t.after(() => up.close());
  up.handler = () => {}; // never answers: every query stays in flight
  const [a, b, unlimited] = load([`forward . ${up.addr}`, `forward . ${up.addr}`, `forward . ${up.addr} {\nmax_concurrent 0\n}`], { inflightBudgetTotal: 5 });
  t.after(() => [a, b, unlimited].forEach((p) => p!.stop()));
  assert.equal(a!.maxConcurrent, 2, 'floor(5 / 2): an explicit max_concurrent takes an instance out of the split');
  assert.equal(b!.maxConcurrent, 2);
  assert.equal(unlimited!.maxConcurrent, 0);
  const qs = [1, 2, 3].map((i) => clientQuery(`c${i}.example.org`));
  for (const q of qs) a!.serve(q.req);
  const third = decode(await qs[2]!.out.response(500));
  assert.equal(third.rcode, 'REFUSED');
  assert.equal(a!.stats.maxConcurrentRejects, 1);
  const err = qs[2]!.errors[0] as ForwardError;
  assert.equal(err.code, ForwardErrorCode.LIMIT_EXCEEDED);
  assert.equal(err.message, 'concurrent queries exceeded maximum 2');
  assert.equal(qs[0]!.out.sent.length + qs[1]!.out.sent.length, 0, 'the first two are in flight');
  // b has its own share: a's queries do not count against it.
  const qb = [1, 2].map((i) => clientQuery(`b${i}.example.org`));
  for (const q of qb) b!.serve(q.req);
  assert.equal(b!.stats.maxConcurrentRejects, 0);
  assert.equal(b!.concurrent, 2);
  // max_concurrent 0: no limit.
  const qu = Array.from({ length: 10 }, (_, i) => clientQuery(`u${i}.example.org`));
  for (const q of qu) unlimited!.serve(q.req);
  assert.equal(unlimited!.concurrent, 10);
  assert.equal(unlimited!.stats.maxConcurrentRejects, 0);
});

test(`the default total is ${DEFAULT_INFLIGHT_TOTAL}; the shipped Corefile's four forward blocks get a quarter each; an explicit max_concurrent N is N`, () => {
  const four = load(['forward . 127.0.0.1', 'forward . 127.0.0.1', 'forward . 127.0.0.1', 'forward . 127.0.0.1']);
  assert.deepEqual(
    four.map((p) => p.maxConcurrent),
    [2500, 2500, 2500, 2500],
  );
  const [alone] = load(['forward . 127.0.0.1']);
  assert.equal(alone!.maxConcurrent, DEFAULT_INFLIGHT_TOTAL);
  const [explicit] = load(['forward . 127.0.0.1 {\nmax_concurrent 7\n}']);
  assert.equal(explicit!.maxConcurrent, 7);
});
