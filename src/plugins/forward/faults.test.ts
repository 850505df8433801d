/**
 * Socket faults the kernel reports at once, and header-only error replies (issue 12,
 * findings 1 and 7), without root: a connect to 255.255.255.255 is refused by the kernel
 * itself (UDP: EACCES without SO_BROADCAST; TCP: ENETUNREACH), so nothing leaves the host.
 * The timers are set far beyond the client's wait, so an answer here came from the error
 * path, never from a timeout. The kernel-level variants (routes, iptables, EMFILE, IPv6) are
 * in test/fault/netns-upstream-faults.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Proto } from '../../server/request.ts';
import { ForwardErrorCode, type ForwardError } from './errors.ts';
import { replyFullRcode } from '../../wire/reply.ts';
import { ResponseScan } from '../../wire/message.ts';
import { CaptureLogger, ToyUpstream, answerFor, clientQuery, decode, makeForward, waitFor } from '../../../test/lib/forward-testing.ts';

/** Far longer than any wait below: no answer in these tests may come from a timer. */
const LONG = { readTimeoutMs: 60_000, deadlineMs: 120_000, healthCheckTimeoutMs: 60_000 };
const BCAST = '255.255.255.255';

async function upstream(t: { after(fn: () => void): void }): Promise<ToyUpstream> {
  const u = await ToyUpstream.start();
  t.after(() => u.close());
  return u;
}

/** A reply with the query's ID, QR set, no question, `rcode`, and optionally an OPT with `extRcode`. */
function headerOnly(query: Buffer, rcode: number, extRcode = -1): Buffer {
  const opt = extRcode >= 0 ? Buffer.from([0, 0, 41, 0x04, 0xd0, extRcode, 0, 0, 0, 0, 0]) : Buffer.alloc(0);
  const h = Buffer.alloc(12);
  h[0] = query[0]!;
  h[1] = query[1]!;
  h[2] = 0x80 | (query[2]! & 0x79);
  h[3] = rcode & 0x0f;
  h[11] = extRcode >= 0 ? 1 : 0;
  return Buffer.concat([h, opt]);
}

test('UDP: a connect the kernel refuses → SERVFAIL at once with the dial error; tried once; the health probe fails and is counted; nothing throws', async (t) => {
  const log = new CaptureLogger();
  const { plugin } = makeForward(`forward . ${BCAST}:53 {\nhealth_check 10ms\n}`, LONG, log);
  t.after(() => plugin.stop());
  const q = clientQuery('unreachable.example.org');
  plugin.serve(q.req);
  const r = decode(await q.out.response(2000));
  assert.equal(r.rcode, 'SERVFAIL');
  assert.equal(r.id, 0x1234);
  assert.equal(r.questions[0]!.name, 'unreachable.example.org');
  const err = q.errors[0] as ForwardError;
  assert.equal(err.code, ForwardErrorCode.NETWORK);
  assert.equal(err.message, `dial udp ${BCAST}:53: connect: permission denied`);
  const s = plugin.stats.upstreams[0]!;
  assert.equal(s.requests, 1, 'the upstream that failed to dial is not tried again by this query');
  assert.equal(s.networkErrors, 1);
  await waitFor(() => s.healthcheckFailures >= 2, 3000, 'failed health probes');
  assert.equal(s.udpSocketsOpen, 0);
  assert.deepEqual(
    log.lines.filter((l) => /internal error/.test(l)),
    [],
  );
});

test('TCP: a connect the kernel refuses → SERVFAIL at once with the dial error; dialled once', async (t) => {
  const log = new CaptureLogger();
  const { plugin } = makeForward(`forward . ${BCAST}:53 {\nforce_tcp\nhealth_check 10ms\n}`, LONG, log);
  t.after(() => plugin.stop());
  const q = clientQuery('unreachable.example.org');
  plugin.serve(q.req);
  assert.equal(decode(await q.out.response(2000)).rcode, 'SERVFAIL');
  assert.equal(q.errors[0]!.message, `dial tcp ${BCAST}:53: connect: network is unreachable`);
  const s = plugin.stats.upstreams[0]!;
  assert.equal(s.requests, 1);
  assert.equal(s.tcpConnsDialled, 1);
  await waitFor(() => s.healthcheckFailures >= 2, 3000, 'failed health probes');
  assert.deepEqual(
    log.lines.filter((l) => /internal error/.test(l)),
    [],
  );
});

test('several upstreams: one that fails to dial is skipped for the next at once; SERVFAIL only when every one failed', async (t) => {
  const good = await upstream(t);
  for (const proto of [Proto.UDP, Proto.TCP]) {
    const { plugin } = makeForward(`forward . ${BCAST}:53 ${good.addr} {\npolicy sequential\n}`, LONG);
    t.after(() => plugin.stop());
    const q = clientQuery('next.example.org', 'A', { proto });
    plugin.serve(q.req);
    const r = decode(await q.out.response(2000));
    assert.equal(r.rcode, 'NOERROR');
    assert.deepEqual(
      r.answers.map((a) => a.data),
      ['192.0.2.1'],
    );
    assert.equal(plugin.stats.upstreams[0]!.requests, 1);
  }
  const { plugin } = makeForward(`forward . ${BCAST}:53 ${BCAST}:54 ${BCAST}:55 {\npolicy sequential\n}`, LONG);
  t.after(() => plugin.stop());
  const q = clientQuery('none.example.org');
  plugin.serve(q.req);
  assert.equal(decode(await q.out.response(2000)).rcode, 'SERVFAIL');
  assert.equal(q.errors[0]!.message, `dial udp ${BCAST}:55: connect: permission denied`);
  assert.deepEqual(
    plugin.stats.upstreams.map((s) => s.requests),
    [1, 1, 1],
  );
});

for (const proto of [Proto.UDP, Proto.TCP]) {
  const p = proto === Proto.UDP ? 'UDP' : 'TCP';
  test(`${p}: a header-only error reply (QDCOUNT=0, REFUSED) is answered at once with the client's ID and question; one copy upstream`, async (t) => {
    const up = await upstream(t);
    up.handler = (q) => q.reply(headerOnly(q.msg, 5));
    const { plugin } = makeForward(`forward . ${up.addr}`, LONG);
    t.after(() => plugin.stop());
    const q = clientQuery('refused.example.org', 'A', { proto, id: 0x4242 });
    plugin.serve(q.req);
    const r = decode(await q.out.response(2000));
    assert.equal(r.rcode, 'REFUSED');
    assert.equal(r.id, 0x4242);
    assert.deepEqual(
      r.questions.map((x) => [x.name, x.type]),
      [['refused.example.org', 'A']],
    );
    assert.equal(up.received.length, 1);
    assert.equal(plugin.stats.upstreams[0]!.headerOnlyErrors, 1);
    assert.equal(q.errors.length, 0, 'the upstream answered: not an error of ours');
  });
}

test('a header-only reply with an extended rcode in its OPT (BADVERS) is taken; the client gets BADVERS', async (t) => {
  const up = await upstream(t);
  up.handler = (q) => q.reply(headerOnly(q.msg, 0, 1));
  const { plugin } = makeForward(`forward . ${up.addr}`, LONG);
  t.after(() => plugin.stop());
  const q = clientQuery('badvers.example.org', 'A', { edns: true });
  plugin.serve(q.req);
  const out = await q.out.response(2000);
  assert.equal(replyFullRcode(out, out.length, new ResponseScan()), 16);
  assert.equal(decode(out).questions[0]!.name, 'badvers.example.org');
});

test('still ignored: a header-only NOERROR reply, and an error reply with another question', async (t) => {
  const up = await upstream(t);
  up.handler = (q) => {
    q.reply(headerOnly(q.msg, 0));
    q.reply(answerFor(q.msg, { name: 'other.example.org', rcode: 'REFUSED' }));
  };
  const { plugin } = makeForward(`forward . ${up.addr}`, { readTimeoutMs: 100, deadlineMs: 150 });
  t.after(() => plugin.stop());
  const q = clientQuery('ignored.example.org');
  plugin.serve(q.req);
  const r = decode(await q.out.response(3000));
  assert.equal(r.rcode, 'SERVFAIL');
  assert.equal((q.errors[0] as ForwardError).code, ForwardErrorCode.TIMEOUT);
  const s = plugin.stats.upstreams[0]!;
  assert.equal(s.headerOnlyErrors, 0);
  assert.ok(s.ignoredWrongQuestion >= 4, `ignored ${s.ignoredWrongQuestion}`);
});
